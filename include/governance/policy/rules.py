"""Retention rules: what a rule removes (its table and action), from which clock, after which
window (RET-10), and the requirement IDs it enforces. Each rule is checked on its own here;
checks across rules (categories, decisions, ``after``) are in ``governance.policy.model``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, SerializeAsAny, field_validator, model_validator

from governance.policy.base import REQUIREMENT_ID, RULE_ID, StrictModel, column, qualified, sql_file
from governance.policy.masking import MaskingStrategy, build_strategy
from governance.windows import Window

# --- actions --------------------------------------------------------------------------------


class DeleteAction(StrictModel):
    type: Literal["delete"]


class AnonymiseAction(StrictModel):
    """RET-8: overwrite every personal column; the marker column says it is done, for good."""

    type: Literal["anonymise"]
    decision: str | None = None
    marker_column: str
    columns: dict[str, SerializeAsAny[MaskingStrategy]] = Field(min_length=1)

    @field_validator("marker_column")
    @classmethod
    def _check_marker(cls, value: str) -> str:
        return column(value)

    @field_validator("columns", mode="before")
    @classmethod
    def _build(cls, value: Any) -> dict[str, MaskingStrategy]:
        if not isinstance(value, dict):
            raise ValueError("columns must be a mapping of column name to {strategy: ...}")
        return {column(name): build_strategy(config) for name, config in value.items()}


class PurgeObjectsAction(StrictModel):
    """CAT-5: remove the objects, then the rows that pointed at them."""

    type: Literal["purge_objects"]


Action = Annotated[DeleteAction | AnonymiseAction | PurgeObjectsAction, Field(discriminator="type")]


# --- clocks ---------------------------------------------------------------------------------

_CLOCK_FORMS = "{column: NAME} (a timestamptz column of the rule's table) or {view: SCHEMA.VIEW, sql: clocks/FILE.sql}"


class Clock(StrictModel):
    """Where a rule's clock comes from: exactly one of a ``column`` of the rule's own table
    (``timestamp with time zone``; the sweep may then cut batches by it and drop partitions), or a
    reviewed ``view`` (record_id, clock) defined in an ``sql`` file under include/sql/."""

    column: str | None = None
    view: str | None = None
    sql: str | None = None

    @field_validator("column")
    @classmethod
    def _check_column(cls, value: str | None) -> str | None:
        return None if value is None else column(value)

    @field_validator("view")
    @classmethod
    def _check_view(cls, value: str | None) -> str | None:
        return None if value is None else qualified(value)

    @field_validator("sql")
    @classmethod
    def _sql_exists(cls, value: str | None) -> str | None:
        return None if value is None else sql_file(value, "clock")

    @model_validator(mode="after")
    def _exactly_one_form(self) -> Clock:
        if self.column is not None and (self.view is not None or self.sql is not None):
            raise ValueError(f"a clock is either {_CLOCK_FORMS}, not both")
        if self.column is None and self.view is None and self.sql is None:
            raise ValueError(f"a clock needs {_CLOCK_FORMS}")
        if self.column is None and self.sql is None:
            raise ValueError("a clock view needs 'sql', the file under include/sql/ defining it (clocks/FILE.sql)")
        if self.column is None and self.view is None:
            raise ValueError("a clock's 'sql' needs 'view', the schema-qualified view it defines")
        return self


# --- rules ----------------------------------------------------------------------------------


class DecisionRef(StrictModel):
    decision: str


class Rule(StrictModel):
    id: str
    requirements: list[str] = Field(min_length=1)
    category: str
    table: str
    clock: Clock
    window: str | DecisionRef
    action: Action
    audit: str
    after: list[str] = Field(default_factory=list)
    description: str = ""

    @field_validator("table")
    @classmethod
    def _check_table(cls, value: str) -> str:
        return qualified(value)

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not RULE_ID.match(value):
            raise ValueError(f"{value!r} must be lower-case words joined by '-', e.g. 'visit-data'")
        return value

    @field_validator("requirements")
    @classmethod
    def _check_requirements(cls, values: list[str]) -> list[str]:
        bad = [v for v in values if not REQUIREMENT_ID.match(v)]
        if bad:
            raise ValueError(f"{bad} are not requirement IDs such as 'RET-1' or 'RET-5a' (see REQUIREMENTS.md)")
        return values

    @field_validator("window")
    @classmethod
    def _check_window(cls, value: str | DecisionRef) -> str | DecisionRef:
        if isinstance(value, str):
            Window.parse(value)
        return value

    @field_validator("audit")
    @classmethod
    def _audit_exists(cls, value: str) -> str:
        return sql_file(value, "audit")
