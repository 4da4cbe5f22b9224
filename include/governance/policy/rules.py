"""Retention rules: what a rule removes (its table and action), from which clock, after which
window (RET-10), and the requirement IDs it enforces. Each rule is checked on its own here;
checks across rules (categories, decisions, ``after``) are in ``governance.policy.model``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, SerializeAsAny, field_validator, model_validator

from governance.policy.base import (
    REQUIREMENT_ID,
    AuditSqlFile,
    ClockSqlFile,
    ColumnName,
    RuleId,
    SchemaQualified,
    StrictModel,
    column,
)
from governance.policy.masking import MaskingStrategy, build_strategy
from governance.windows import Window

# The audit reports its own checks beside the rules: a store's objects as '<table>-object-store',
# the data's location as 'data-location' (governance.audit.report); no rule may take those ids.
AUDIT_CHECK_SUFFIX = "-object-store"
AUDIT_CHECK_IDS = ("data-location",)

# --- actions --------------------------------------------------------------------------------


class DeleteAction(StrictModel):
    type: Literal["delete"]


class AnonymiseAction(StrictModel):
    """RET-8: overwrite every personal column; the marker column says it is done, for good."""

    type: Literal["anonymise"]
    decision: str | None = None
    marker_column: ColumnName
    columns: dict[str, SerializeAsAny[MaskingStrategy]] = Field(min_length=1)

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


class KeptClock(StrictModel):
    """A per-group clock kept incrementally in a table (RET-3 at scale; ADR 0011): one row per
    group of records sharing a clock (a customer), ``key`` the group and ``clock`` its clock, kept
    by the database as the rule's table changes. ``row_key`` is a function taking a row of the
    rule's table and returning its group's key (an index on it finds a group's rows). The sweep
    computes the due set from this table (index range scan on ``clock``), in proportion to the
    groups due; the clock ``view`` stays what the audit reconciles the table against."""

    table: SchemaQualified
    key: ColumnName
    clock: ColumnName
    row_key: SchemaQualified
    # Optional: a timestamptz column of the rule's table never later than its group's clock (RET-3:
    # placed_at, the group's clock being its latest). A pass over the whole table (most groups due)
    # then probes the kept table only for rows that can be due.
    row_clock: ColumnName | None = None


class Clock(StrictModel):
    """Where a rule's clock comes from: exactly one of a ``column`` of the rule's own table
    (``timestamp with time zone``; the sweep may then cut batches by it and drop partitions), or a
    reviewed ``view`` (record_id, clock) defined in an ``sql`` file under include/sql/; a view's
    clock may also be ``kept`` per group in a table (``KeptClock``)."""

    column: ColumnName | None = None
    view: SchemaQualified | None = None
    sql: ClockSqlFile | None = None
    kept: KeptClock | None = None

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
        if self.kept is not None and self.view is None:
            raise ValueError("a clock 'kept' in a table needs the 'view' it keeps (the audit reconciles the two)")
        return self


# --- rules ----------------------------------------------------------------------------------


class DecisionRef(StrictModel):
    decision: str


class Rule(StrictModel):
    id: RuleId
    requirements: list[str] = Field(min_length=1)
    category: str
    table: SchemaQualified
    clock: Clock
    window: str | DecisionRef
    action: Action
    audit: AuditSqlFile
    after: list[str] = Field(default_factory=list)
    description: str = ""

    @field_validator("id")
    @classmethod
    def _not_an_audit_check(cls, value: str) -> str:
        if value.endswith(AUDIT_CHECK_SUFFIX) or value in AUDIT_CHECK_IDS:
            raise ValueError(
                f"{value!r} is the id of one of the audit's own checks (ids ending in {AUDIT_CHECK_SUFFIX!r}, "
                f"{', '.join(AUDIT_CHECK_IDS)}); name the rule otherwise"
            )
        return value

    @field_validator("requirements")
    @classmethod
    def _check_requirements(cls, values: list[str]) -> list[str]:
        bad = [v for v in values if not REQUIREMENT_ID.match(v)]
        if bad:
            raise ValueError(f"{bad} are not requirement IDs such as 'RET-1' or 'RET-5a' (see docs/requirements.md)")
        return values

    @field_validator("window")
    @classmethod
    def _check_window(cls, value: str | DecisionRef) -> str | DecisionRef:
        if isinstance(value, str):
            Window.parse(value)
        return value
