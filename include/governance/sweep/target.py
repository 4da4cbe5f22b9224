"""A rule's target: the rule, its table and everything the sweep needs to know about that table
(partitioning, referencing tables, clock sources), read from the catalogue once per sweep.

A rule's clock is declared in the policy (``clock: {column: ...}`` or ``clock: {view, sql}``),
never inferred from SQL text: a column clock of a table no other rule shares is evaluated on each
row (block ranges, and whole-partition drops when the table is range-partitioned on it).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from psycopg2 import sql
from psycopg2.extensions import connection, cursor

from governance.db import advisory_key, ident, split_name
from governance.policy import AnonymiseAction, KeptClock, Policy, PurgeObjectsAction, Rule, Store
from governance.windows import Window

__all__ = ["ident", "split_name"]  # re-exported: the sweep's modules import them from here

log = logging.getLogger(__name__)

# The optional chunking column of a clock view (include/sql/clocks/README.md) and the types it may have.
CHUNK_COLUMN = "chunk"
CHUNK_TYPES = ("smallint", "integer", "bigint")


def lock_key(rule_id: str) -> int:
    """A stable 32-bit advisory-lock key for a rule (pg_try_advisory_lock(namespace, key))."""
    return advisory_key(rule_id)


def clock_source(rule: Rule, key: str) -> sql.Composable:
    """The relation (record_id, clock) of a rule's clock: its view, or its column projected."""
    if rule.clock.column is not None:
        return sql.SQL("(SELECT {key} AS record_id, {column} AS clock FROM {table})").format(
            key=sql.Identifier(key), column=sql.Identifier(rule.clock.column), table=ident(rule.table)
        )
    assert rule.clock.view is not None  # the policy model holds one or the other
    return ident(rule.clock.view)


@dataclass(frozen=True)
class Child:
    """A table of the data map whose rows reference the rule's table (a foreign key).

    Removing a parent cascades to (``on_delete='c'``) or rewrites (``'n'``, SET NULL) these rows,
    so a held child keeps its parent.
    """

    table: str
    column: str
    on_delete: str  # 'c' cascade, 'n' set null
    store: Store
    rules: tuple[str, ...]


@dataclass
class Target:
    """A rule and everything about its table the engine needs, read once per sweep."""

    policy: Policy
    rule: Rule
    store: Store
    window: Window
    siblings: list[Rule]  # rules on the same table, policy order; the record goes to the latest expiry
    rank: int  # this rule's position among the siblings
    direct_clock: str | None = None  # the clock column, when the rule alone governs the table
    partitioned: bool = False
    partition_key: str | None = None  # the RANGE key column of a partitioned table
    children: list[Child] = field(default_factory=list)
    chunked: bool = False  # every clock view of the table exposes an integer ``chunk`` column
    kept: KeptClock | None = None  # the clock kept per group in a table (governance.sweep.kept), one rule only

    @property
    def table(self) -> str:
        return self.rule.table

    @property
    def key(self) -> str:
        return self.store.key

    @property
    def action(self) -> str:
        return self.rule.action.type

    @property
    def shared(self) -> bool:
        return len(self.siblings) > 1

    @property
    def marker(self) -> str | None:
        return self.rule.action.marker_column if isinstance(self.rule.action, AnonymiseAction) else None

    @property
    def purges_objects(self) -> bool:
        return isinstance(self.rule.action, PurgeObjectsAction)

    @property
    def drops_partitions(self) -> bool:
        return self.partitioned and self.direct_clock is not None and self.partition_key == self.direct_clock


_REFERENCING_TABLES = """
    SELECT cn.nspname || '.' || cc.relname, a.attname, con.confdeltype
    FROM pg_constraint con
    JOIN pg_class cc ON cc.oid = con.conrelid JOIN pg_namespace cn ON cn.oid = cc.relnamespace
    JOIN pg_class pc ON pc.oid = con.confrelid JOIN pg_namespace pn ON pn.oid = pc.relnamespace
    JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = con.conkey[1]
    WHERE con.contype = 'f' AND pn.nspname = %s AND pc.relname = %s
      AND cardinality(con.conkey) = 1 AND con.confdeltype IN ('c', 'n')
    ORDER BY 1, 2
"""


def load_target(conn: connection, policy: Policy, rule_id: str) -> Target:
    rule = policy.rule(rule_id)
    siblings = policy.rules_by_table[rule.table]
    target = Target(
        policy=policy,
        rule=rule,
        store=policy.store(rule.table),
        window=policy.window(rule),
        siblings=list(siblings),
        rank=[r.id for r in siblings].index(rule.id),
    )
    schema, name = split_name(rule.table)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT c.relkind = 'p', CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
            (schema, name),
        )
        target.partitioned, partkeydef = _one(cur)
        # Tables of the data map whose rows reference this one: a held child keeps its parent.
        target.children = referencing_children(cur, policy, rule.table)
        target.chunked = all(_chunk_type(cur, r) in CHUNK_TYPES for r in siblings)
    target.direct_clock = rule.clock.column if not target.shared else None
    target.kept = rule.clock.kept if not target.shared else None
    if rule.clock.kept is not None and target.shared:
        log.warning("rule %s: a kept clock on a table several rules share is not used; the view decides", rule.id)
    # The catalogue's partition key (not SQL text): RANGE on one column.
    match = re.fullmatch(r"RANGE \((\w+)\)", partkeydef or "")
    target.partition_key = match.group(1) if match else None
    return target


def referencing_children(cur: cursor, policy: Policy, table: str) -> list[Child]:
    """The data map's tables whose rows reference ``table`` by a foreign key that cascades or sets
    NULL (the catalogue's, not the policy's): removing a row of ``table`` changes theirs."""
    cur.execute(_REFERENCING_TABLES, split_name(table))
    children = []
    for child, column, on_delete in cur.fetchall():
        try:
            store = policy.store(child)
        except KeyError:
            continue  # link tables outside the data map hold no personal data of their own
        rules = tuple(r.id for r in policy.rules_by_table.get(child, []))
        children.append(Child(child, column, on_delete, store, rules))
    return children


def _one(cur: cursor) -> tuple[bool, str | None]:
    row = cur.fetchone()
    assert row is not None, "the rule's table exists (check_policy ran first)"
    return bool(row[0]), row[1]


def _chunk_type(cur: cursor, rule: Rule) -> str | None:
    """The type of the rule's clock view's ``chunk`` column, or None without one (or a column clock)."""
    view = rule.clock.view
    if view is None:
        return None
    cur.execute(
        "SELECT format_type(a.atttypid, NULL) FROM pg_attribute a "
        "WHERE a.attrelid = %s::regclass AND a.attname = %s AND a.attnum > 0 AND NOT a.attisdropped",
        (view, CHUNK_COLUMN),
    )
    row = cur.fetchone()
    if row and row[0] not in CHUNK_TYPES:
        log.warning(
            "clock view %s: column %s is %s, not an integer; the due set is computed in one pass",
            view,
            CHUNK_COLUMN,
            row[0],
        )
    return str(row[0]) if row else None
