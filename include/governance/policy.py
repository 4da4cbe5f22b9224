"""The policy as code: typed, validated models of a company's privacy policy (pydantic v2).

A policy file (YAML) holds the data map (where each category's personal data lives), the
retention rules (clock, window, action, the requirement IDs each enforces) and the decisions a
deployment may change. ``load_policy`` validates all of it where it is loaded, so nothing runs on
a policy that failed: every problem is reported with the file, the rule and the field.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from governance.errors import PolicyError, UnknownRule
from governance.windows import Window, WindowError

INCLUDE_DIR = Path(__file__).resolve().parent.parent
SQL_DIR = INCLUDE_DIR / "sql"
DEFAULT_POLICY_PATH = INCLUDE_DIR / "policies" / "photo_shop.yaml"

REQUIREMENT_ID = re.compile(r"^[A-Z]{2,4}-\d+[a-z]?$")
QUALIFIED_NAME = re.compile(r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$")
COLUMN_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
RULE_ID = re.compile(r"^[a-z][a-z0-9-]*$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _qualified(value: str) -> str:
    if not QUALIFIED_NAME.match(value):
        raise ValueError(f"{value!r} must be a schema-qualified lower-case name such as 'shop.orders'")
    return value


def _column(value: str) -> str:
    if not COLUMN_NAME.match(value):
        raise ValueError(f"{value!r} is not a plain lower-case column name")
    return value


QualifiedName = Annotated[str, Field(min_length=3)]


# --- the data map ---------------------------------------------------------------------------


class PersonKey(_Model):
    """How a record names its person: an account, an e-mail address, or both."""

    account_id: str | None = None
    email: str | None = None

    _check_account = field_validator("account_id", "email")(lambda v: v if v is None else _column(v))

    @model_validator(mode="after")
    def _one_at_least(self) -> PersonKey:
        if self.account_id is None and self.email is None:
            raise ValueError("person needs 'account_id' or 'email' (the column naming the person)")
        return self


class ObjectStoreLink(_Model):
    """Objects (photo and text bytes) that rows of a store point at."""

    bucket_column: str
    key_column: str
    buckets: list[str] = Field(min_length=1)
    prefix: str = ""

    _check_columns = field_validator("bucket_column", "key_column")(lambda v: _column(v))


class Store(_Model):
    table: str
    key: str
    person: PersonKey | None = None
    personal_columns: list[str] = Field(min_length=1)
    objects: ObjectStoreLink | None = None

    _check_table = field_validator("table")(lambda v: _qualified(v))
    _check_key = field_validator("key")(lambda v: _column(v))

    @field_validator("personal_columns")
    @classmethod
    def _check_columns(cls, values: list[str]) -> list[str]:
        return [_column(v) for v in values]

    def columns(self) -> set[str]:
        names = {self.key, *self.personal_columns}
        if self.person:
            names |= {c for c in (self.person.account_id, self.person.email) if c}
        if self.objects:
            names |= {self.objects.bucket_column, self.objects.key_column}
        return names


class Category(_Model):
    id: str
    name: str
    legal_basis: str
    stores: list[Store] = Field(min_length=1)

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not re.match(r"^CAT-\d+$", value):
            raise ValueError(f"{value!r} is not a category ID such as 'CAT-1'")
        return value


# --- actions --------------------------------------------------------------------------------


class MaskingStrategy(_Model):
    """One way to overwrite a personal column; looked up by ``strategy`` name (fides style)."""

    name: ClassVar[str]
    registry: ClassVar[dict[str, type[MaskingStrategy]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        MaskingStrategy.registry[cls.name] = cls

    def sql_value(self) -> tuple[str, list[Any]]:
        """An SQL value expression (with %s placeholders) and its parameters."""
        raise NotImplementedError


class SetNull(MaskingStrategy):
    name: ClassVar[str] = "set_null"

    def sql_value(self) -> tuple[str, list[Any]]:
        return "NULL", []


class FixedValue(MaskingStrategy):
    """A constant, the same for every record: anonymous, unlike a hash of the original."""

    name: ClassVar[str] = "fixed_value"
    value: str | int | float | bool

    def sql_value(self) -> tuple[str, list[Any]]:
        return "%s", [self.value]


def build_strategy(config: Any) -> MaskingStrategy:
    if isinstance(config, MaskingStrategy):
        return config
    if not isinstance(config, dict) or "strategy" not in config:
        raise ValueError("each column needs a mapping with 'strategy', e.g. {strategy: set_null}")
    options = dict(config)
    name = options.pop("strategy")
    strategy = MaskingStrategy.registry.get(name)
    if strategy is None:
        valid = ", ".join(sorted(MaskingStrategy.registry))
        raise ValueError(f"unknown strategy {name!r}; valid strategies: {valid}")
    return strategy(**options)


class DeleteAction(_Model):
    type: Literal["delete"]


class AnonymiseAction(_Model):
    """RET-8: overwrite every personal column; the marker column says it is done, for good."""

    type: Literal["anonymise"]
    decision: str | None = None
    marker_column: str
    columns: dict[str, Any] = Field(min_length=1)

    _check_marker = field_validator("marker_column")(lambda v: _column(v))

    @field_validator("columns", mode="before")
    @classmethod
    def _build(cls, value: Any) -> dict[str, MaskingStrategy]:
        if not isinstance(value, dict):
            raise ValueError("columns must be a mapping of column name to {strategy: ...}")
        return {_column(name): build_strategy(config) for name, config in value.items()}


class PurgeObjectsAction(_Model):
    """CAT-5: remove the objects, then the rows that pointed at them."""

    type: Literal["purge_objects"]


Action = Annotated[DeleteAction | AnonymiseAction | PurgeObjectsAction, Field(discriminator="type")]


# --- rules ----------------------------------------------------------------------------------


class Clock(_Model):
    """Where a rule's clock comes from: a timestamptz ``column`` of the rule's own table (the sweep
    evaluates it on each row: block ranges, whole-partition drops), or a reviewed ``view``
    (record_id, clock) defined in an ``sql`` file. Exactly one of the two."""

    view: str | None = None
    sql: str | None = None
    column: str | None = None

    _check_view = field_validator("view")(lambda v: v if v is None else _qualified(v))
    _check_column = field_validator("column")(lambda v: v if v is None else _column(v))

    @field_validator("sql")
    @classmethod
    def _sql_exists(cls, value: str | None) -> str | None:
        if value is not None and not (SQL_DIR / value).is_file():
            raise ValueError(f"clock SQL file {value!r} not found under {SQL_DIR}")
        return value

    @model_validator(mode="after")
    def _column_or_view(self) -> Clock:
        if (self.column is None) == (self.view is None) or (self.view is None) != (self.sql is None):
            raise ValueError("clock needs either 'column' (a timestamptz column of the table) or 'view' and 'sql'")
        return self


class DecisionRef(_Model):
    decision: str


class Rule(_Model):
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

    _check_table = field_validator("table")(lambda v: _qualified(v))

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
    def _check_window(cls, value: Any) -> Any:
        if isinstance(value, str):
            Window.parse(value)
        return value

    @field_validator("audit")
    @classmethod
    def _audit_exists(cls, value: str) -> str:
        if not (SQL_DIR / value).is_file():
            raise ValueError(f"audit SQL file {value!r} not found under {SQL_DIR}")
        return value


class Decision(_Model):
    window: str | None = None
    expired_order_records: Literal["anonymise", "delete"] | None = None

    @field_validator("window")
    @classmethod
    def _check_window(cls, value: str | None) -> str | None:
        if value is not None:
            Window.parse(value)
        return value


class PolicyHeader(_Model):
    name: str
    title: str = ""
    last_updated: str = ""
    source: str = ""


class ObjectStore(_Model):
    uploads_bucket: str


class Enforcement(_Model):
    """How late enforcement may be: the sweep runs hourly, so a scheduled audit looks at the
    world as of ``tolerated_lateness`` ago (RET-1: at most about an hour late). Manual and
    sweep-triggered audits use their exact instant."""

    tolerated_lateness: str = "PT1H"

    @field_validator("tolerated_lateness")
    @classmethod
    def _check_lateness(cls, value: str) -> str:
        Window.parse(value)
        return value

    @property
    def lateness(self) -> Window:
        return Window.parse(self.tolerated_lateness)


class Policy(_Model):
    policy: PolicyHeader
    decisions: dict[str, Decision] = Field(default_factory=dict)
    enforcement: Enforcement = Field(default_factory=Enforcement)
    object_store: ObjectStore
    categories: list[Category] = Field(min_length=1)
    rules: list[Rule] = Field(min_length=1)

    # Set by load_policy: where it came from and the hash of its bytes (the policy version).
    source_path: str = ""
    version: str = ""

    @model_validator(mode="after")
    def _cross_check(self) -> Policy:
        problems: list[str] = []
        category_ids = [c.id for c in self.categories]
        for dup in {c for c in category_ids if category_ids.count(c) > 1}:
            problems.append(f"categories: {dup} is defined twice")
        stores = {s.table: (c, s) for c in self.categories for s in c.stores}
        rule_ids = [r.id for r in self.rules]
        for dup in {r for r in rule_ids if rule_ids.count(r) > 1}:
            problems.append(f"rules: rule id {dup!r} is used twice")
        for rule in self.rules:
            where = f"rule {rule.id!r}"
            if rule.category not in category_ids:
                problems.append(f"{where}, field 'category': {rule.category!r} is not a category of the data map")
            store = stores.get(rule.table)
            if store is None:
                problems.append(f"{where}, field 'table': {rule.table!r} is not in the data map of any category")
            elif store[0].id != rule.category:
                problems.append(f"{where}, field 'table': {rule.table!r} belongs to {store[0].id}, not {rule.category}")
            if isinstance(rule.window, DecisionRef):
                decision = self.decisions.get(rule.window.decision)
                if decision is None or decision.window is None:
                    problems.append(
                        f"{where}, field 'window': decision {rule.window.decision!r} has no window in 'decisions'"
                    )
            for other in rule.after:
                if other not in rule_ids:
                    problems.append(f"{where}, field 'after': {other!r} is not a rule id")
            if isinstance(rule.action, AnonymiseAction) and rule.action.decision:
                decision = self.decisions.get(rule.action.decision)
                if decision is None or decision.expired_order_records != "anonymise":
                    problems.append(
                        f"{where}, field 'action': decision {rule.action.decision!r} does not say 'anonymise'"
                    )
            if isinstance(rule.action, PurgeObjectsAction) and store is not None and store[1].objects is None:
                problems.append(f"{where}, field 'action': purge_objects needs 'objects' on store {rule.table!r}")
        covered = {r.category for r in self.rules}
        for category in category_ids:
            if category not in covered:
                problems.append(f"categories: {category} has no retention rule; add a rule with 'category: {category}'")
        # Rules on one table act together (latest expiry wins), so they must agree on the action.
        by_table: dict[str, set[str]] = defaultdict(set)
        for rule in self.rules:
            by_table[rule.table].add(rule.action.type)
        for table, kinds in by_table.items():
            if len(kinds) > 1:
                problems.append(f"rules on {table!r} disagree on the action ({sorted(kinds)}); they act together")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    # --- lookups used by the engine ---

    def rule(self, rule_id: str) -> Rule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise UnknownRule(rule_id, self.policy.name, [r.id for r in self.rules])

    def window(self, rule: Rule) -> Window:
        if isinstance(rule.window, DecisionRef):
            return Window.parse(self.decisions[rule.window.decision].window or "")
        return Window.parse(rule.window)

    def store(self, table: str) -> Store:
        for category in self.categories:
            for store in category.stores:
                if store.table == table:
                    return store
        raise KeyError(table)

    @cached_property
    def rules_by_table(self) -> dict[str, list[Rule]]:
        grouped: dict[str, list[Rule]] = defaultdict(list)
        for rule in self.rules:
            grouped[rule.table].append(rule)
        return dict(grouped)

    def clock_sql_files(self) -> list[str]:
        seen: dict[str, None] = {}
        for rule in self.rules:
            if rule.clock.sql is not None:  # a column clock has no SQL file
                seen.setdefault(rule.clock.sql, None)
        return list(seen)


def _format_location(policy_data: Any, loc: tuple[Any, ...]) -> str:
    """Turn a pydantic location like ('rules', 3, 'window') into 'rule "order-records", field "window"'."""
    parts: list[str] = []
    node = policy_data
    i = 0
    while i < len(loc):
        key = loc[i]
        if key == "rules" and i + 1 < len(loc) and isinstance(loc[i + 1], int):
            index = loc[i + 1]
            rule_id = None
            try:
                rule_id = policy_data["rules"][index].get("id")
            except (KeyError, IndexError, TypeError, AttributeError):
                pass
            parts.append(f"rule {rule_id!r} (rules[{index}])" if rule_id else f"rules[{index}]")
            node = None
            i += 2
            continue
        if key == "categories" and i + 1 < len(loc) and isinstance(loc[i + 1], int):
            index = loc[i + 1]
            cat_id = None
            try:
                cat_id = policy_data["categories"][index].get("id")
            except (KeyError, IndexError, TypeError, AttributeError):
                pass
            parts.append(f"category {cat_id!r} (categories[{index}])" if cat_id else f"categories[{index}]")
            i += 2
            continue
        parts.append(f"[{key}]" if isinstance(key, int) else str(key))
        i += 1
    del node
    head, fields = [], []
    for p in parts:
        (head if p.startswith(("rule ", "rules[", "category ", "categories[")) else fields).append(p)
    text = ", ".join(head)
    if fields:
        text += (", " if text else "") + "field '" + ".".join(fields).replace(".[", "[") + "'"
    return text


def parse_policy(data: Any, path: Path | str = "<policy>", raw: bytes | None = None) -> Policy:
    """Validate already-parsed YAML; raises PolicyError naming the file, the rule and the field."""
    if not isinstance(data, dict):
        raise PolicyError(path, [f"the policy must be a mapping at the top level, got {type(data).__name__}"])
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown key; remove it or check its spelling"
            elif error["type"] == "missing":
                message = "required field is missing"
            where = _format_location(data, tuple(error["loc"]))
            for line in message.split("\n"):
                problems.append(f"{where}: {line}" if where else line)
        raise PolicyError(path, problems) from None
    except WindowError as exc:  # pragma: no cover - pydantic wraps ValueErrors, kept for safety
        raise PolicyError(path, [str(exc)]) from None
    version = hashlib.sha256(raw if raw is not None else yaml.safe_dump(data, sort_keys=True).encode()).hexdigest()
    return policy.model_copy(update={"source_path": str(path), "version": version})


def load_policy(path: Path | str | None = None) -> Policy:
    """Load and validate a policy file (default: the photo shop's)."""
    path = Path(path) if path else DEFAULT_POLICY_PATH
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PolicyError(path, [f"cannot read the file: {exc.strerror}"]) from None
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise PolicyError(path, [f"not valid YAML: {exc}"]) from None
    return parse_policy(data, path, raw)


def check_against_database(policy: Policy, conn: Any) -> list[str]:
    """Every table and column the policy names must exist; returns problems (empty when fine)."""
    problems: list[str] = []
    with conn.cursor() as cur:
        cur.execute("SELECT table_schema || '.' || table_name, column_name, data_type FROM information_schema.columns")
        existing: dict[str, set[str]] = defaultdict(set)
        types: dict[tuple[str, str], str] = {}
        for table, column, data_type in cur.fetchall():
            existing[table].add(column)
            types[(table, column)] = data_type
    for category in policy.categories:
        for store in category.stores:
            where = f"category {category.id!r}, store {store.table!r}"
            if store.table not in existing:
                problems.append(f"{where}, field 'table': table {store.table!r} does not exist in the database")
                continue
            for column in sorted(store.columns() - existing[store.table]):
                problems.append(f"{where}: column {column!r} does not exist in {store.table}")
    for rule in policy.rules:
        where = f"rule {rule.id!r}"
        if rule.table in existing and isinstance(rule.action, AnonymiseAction):
            for column in sorted({rule.action.marker_column, *rule.action.columns} - existing[rule.table]):
                problems.append(f"{where}, field 'action.columns': column {column!r} does not exist in {rule.table}")
        if rule.clock.column is not None:
            found = types.get((rule.table, rule.clock.column))
            if rule.table in existing and found != "timestamp with time zone":
                problem = f"is {found}" if found else f"does not exist in {rule.table}"
                problems.append(
                    f"{where}, field 'clock.column': column {rule.clock.column!r} {problem}; "
                    "a clock column must be timestamp with time zone"
                )
        elif rule.clock.view not in existing:
            problems.append(f"{where}, field 'clock.view': view {rule.clock.view!r} does not exist (apply the schema)")
        elif not {"record_id", "clock"} <= existing[rule.clock.view]:
            problems.append(f"{where}, field 'clock.view': {rule.clock.view!r} must have columns record_id and clock")
    return problems
