"""What every part of the policy model shares: the strict frozen base model, where the policy's
files live (the SQL directory, the default policy), and the shapes of the names a policy may use
(schema-qualified tables and views, columns, rule and requirement ids).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import AfterValidator, BaseModel, ConfigDict

INCLUDE_DIR = Path(__file__).resolve().parents[2]
SQL_DIR = INCLUDE_DIR / "sql"
DEFAULT_POLICY_PATH = INCLUDE_DIR / "policies" / "photo_shop.yaml"

REQUIREMENT_ID = re.compile(r"^[A-Z]{2,4}-\d+[a-z]?$")
QUALIFIED_NAME = re.compile(r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$")
COLUMN_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
RULE_ID = re.compile(r"^[a-z][a-z0-9-]*$")
CATEGORY_ID = re.compile(r"^CAT-\d+$")


class StrictModel(BaseModel):
    """Unknown keys are refused (a misspelt key is an error, not a silent default); models are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy, ``update`` applied, without what this model cached from its fields (its
        ``cached_property`` values, e.g. ``Policy.rules_by_table``): the copy works them out again
        from its own fields."""
        copied = super().model_copy(update=update, deep=deep)
        for cls in type(self).__mro__:
            for name, attribute in vars(cls).items():
                if isinstance(attribute, cached_property):
                    copied.__dict__.pop(name, None)
        return copied


def qualified(value: str) -> str:
    if not QUALIFIED_NAME.match(value):
        raise ValueError(f"{value!r} must be a schema-qualified lower-case name such as 'shop.orders'")
    return value


def column(value: str) -> str:
    if not COLUMN_NAME.match(value):
        raise ValueError(f"{value!r} is not a plain lower-case column name")
    return value


def sql_file(value: str, what: str) -> str:
    """A file under include/sql/ that must exist (a clock view's or an audit predicate's SQL): a
    relative path that stays inside it, also once symlinks are resolved (#9)."""
    root = SQL_DIR.resolve()
    if Path(value).is_absolute() or not (SQL_DIR / value).resolve().is_relative_to(root):
        raise ValueError(
            f"{what} SQL file {value!r} is outside {SQL_DIR}; give a path relative to it, e.g. 'clocks/FILE.sql' "
            "(no '..', no absolute path, no symlink leading out)"
        )
    if not (SQL_DIR / value).is_file():
        raise ValueError(f"{what} SQL file {value!r} not found under {SQL_DIR}")
    return value


def _matching(pattern: re.Pattern[str], otherwise: str) -> AfterValidator:
    """A validator: the value matches ``pattern``, else "'value' <otherwise>"."""

    def check(value: str) -> str:
        if not pattern.match(value):
            raise ValueError(f"{value!r} {otherwise}")
        return value

    return AfterValidator(check)


# The field types a policy's names are declared with (validated where the policy is loaded).
SchemaQualified = Annotated[str, AfterValidator(qualified)]
ColumnName = Annotated[str, AfterValidator(column)]
RuleId = Annotated[str, _matching(RULE_ID, "must be lower-case words joined by '-', e.g. 'visit-data'")]
CategoryId = Annotated[str, _matching(CATEGORY_ID, "is not a category ID such as 'CAT-1'")]
ClockSqlFile = Annotated[str, AfterValidator(lambda value: sql_file(value, "clock"))]
AuditSqlFile = Annotated[str, AfterValidator(lambda value: sql_file(value, "audit"))]
