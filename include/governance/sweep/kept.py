"""A clock kept per group in a table (``clock.kept`` in the policy; RET-3 at scale, ADR 0011): the
SQL of the due groups, of one batch of their rows, and the counts that verify and plan the rule.

A group (a customer) is due when its kept clock has expired (RET-10: UTC calendar arithmetic),
found by an index range scan on the kept clock (``clock <= index_bound``, the exact expiry
deciding). Batches take the next due groups in (clock, key) order after the last one done
(keyset: the batch's upper bound is read first, then the batch's statement takes the range; no
sort of the whole due set, no keys sent back and forth); a batch's rows are the rule's table's rows
whose ``row_key`` is one of those groups, found by an index on the row key, still to handle
(not anonymised) and not held (RET-8), each group checked due again in the batch's own statement.
The cost follows the groups due, not the size of the table.

The kept table is the database's (kept by triggers, include/sql/schema/080_customer_last_order.sql);
the audit reconciles it with the clock view, which stays the independent definition.
"""

from __future__ import annotations

from typing import Any

from psycopg2 import sql
from psycopg2.extensions import connection

from governance.db import transaction
from governance.policy import KeptClock
from governance.sweep.selection import Selection, expiry_sql
from governance.sweep.target import ident

__all__ = ["FIRST", "LAST", "KeptSelection", "count_kept"]

FIRST = {"after_clock": "-infinity", "after_key": ""}  # keyset position before every group
LAST = {"upto_clock": None, "upto_key": None}  # no upper bound: every due group after the position


class KeptSelection:
    """The SQL of a kept-clock rule's selection (alias ``c`` for the kept table, ``t`` for the rule's)."""

    def __init__(self, sel: Selection):
        kept = sel.target.kept
        if kept is None:
            raise ValueError(f"rule {sel.target.rule.id!r} has no kept clock")
        self.sel, self.kept = sel, kept
        self.table, self.row_key = ident(kept.table), ident(kept.row_key)
        self.key, self.clock = sql.Identifier("c", kept.key), sql.Identifier("c", kept.clock)

    @property
    def spec(self) -> KeptClock:
        return self.kept

    def due(self) -> sql.Composed:
        """The predicate on a kept row (alias c): its group's clock has expired."""
        return sql.SQL("{clock} <= %(index_bound)s AND {expiry} <= %(now)s").format(
            clock=self.clock, expiry=expiry_sql(self.clock, f"w{self.sel.target.rank}")
        )

    def next_bound(self) -> sql.Composed:
        """(clock, key) of the ``%(groups)s``-th due group after the position (``%(after_clock)s``,
        ``%(after_key)s``) in (clock, key) order, or no row when fewer are left: the batch's upper
        bound, read from the kept table's (clock, key) index (one row back, never the keys)."""
        return sql.SQL(
            "SELECT {clock}, {key} FROM {table} c WHERE {due} "
            "AND ({clock}, {key}) > (%(after_clock)s::timestamptz, %(after_key)s::text) "
            "ORDER BY {clock}, {key} OFFSET %(groups)s - 1 LIMIT 1"
        ).format(key=self.key, clock=self.clock, table=self.table, due=self.due())

    def batch_rows(self) -> sql.Composed:
        """The rows (alias t) of one batch: those of the due groups after the position and up to
        the bound (``%(upto_clock)s``, ``%(upto_key)s``; a NULL clock: no bound), still to handle
        and not held. The groups are an InitPlan over the kept table's (clock, key) index, each
        checked due in this statement; the rows come from a bitmap scan of the row key's index."""
        sel = self.sel
        return sql.SQL(
            "{row_key}(t) = ANY(ARRAY(SELECT {key} FROM {table} c WHERE {due} "
            "AND ({clock}, {key}) > (%(after_clock)s::timestamptz, %(after_key)s::text) "
            "AND (%(upto_clock)s::timestamptz IS NULL "
            "OR ({clock}, {key}) <= (%(upto_clock)s::timestamptz, %(upto_key)s::text)))) "
            "AND {todo} AND NOT ({rule_held} OR {held})"
        ).format(
            row_key=self.row_key,
            key=self.key,
            clock=self.clock,
            table=self.table,
            due=self.due(),
            todo=sel.row_filter("t"),
            rule_held=sql.Literal(sel.rule_held),
            held=sel.held("t"),
        )

    def row_due(self) -> sql.Composed:
        """A row (alias t) of the rule's table is due, still to handle and not held: for a pass over
        the table's pages (most groups due). The row's own clock first (``row_clock``, never later
        than its group's), then one probe of the kept table's key per remaining row (a scalar
        subquery: never a hash of the whole kept table per batch)."""
        sel, kept = self.sel, self.kept
        parts: list[sql.Composable] = [sel.row_filter("t")]
        if kept.row_clock is not None:
            parts.append(sql.SQL("t.{} <= %(index_bound)s").format(sql.Identifier(kept.row_clock)))
        parts.append(
            sql.SQL("coalesce((SELECT true FROM {table} c WHERE {key} = {row_key}(t) AND {due}), false)").format(
                table=self.table, key=self.key, row_key=self.row_key, due=self.due()
            )
        )
        parts.append(sql.SQL("NOT ({} OR {})").format(sql.Literal(sel.rule_held), sel.held("t")))
        return sql.SQL(" AND ").join(parts)

    def due_groups_count(self) -> sql.Composed:
        """(due groups, all groups as the statistics have them, counted when never analysed)."""
        return sql.SQL(
            "SELECT (SELECT count(*) FROM {table} c WHERE {due}), "
            "(SELECT CASE WHEN reltuples >= 0 THEN reltuples ELSE (SELECT count(*) FROM {table}) END "
            "FROM pg_class WHERE oid = {name}::regclass)"
        ).format(table=self.table, due=self.due(), name=sql.Literal(self.kept.table))

    def counts(self) -> sql.Composed:
        """(due and not held, due but held) among the rows still to handle of the due groups."""
        sel = self.sel
        held = sql.SQL("({} OR {})").format(sql.Literal(sel.rule_held), sel.held("t"))
        return sql.SQL(
            "SELECT count(*) FILTER (WHERE NOT {held}), count(*) FILTER (WHERE {held}) "
            "FROM {table} c JOIN {rel} t ON {row_key}(t) = {key} WHERE {due} AND {todo}"
        ).format(
            held=held,
            table=self.table,
            rel=ident(sel.target.table),
            row_key=self.row_key,
            key=self.key,
            due=self.due(),
            todo=sel.row_filter("t"),
        )


def count_kept(conn: connection, sel: Selection, *, read_only: bool = False) -> tuple[int, int]:
    """(due and not held, due but held) of a kept-clock rule, in one short transaction: the due
    groups by their index, their rows by the row key's."""
    with transaction(conn, read_only=read_only) as cur:
        cur.execute(KeptSelection(sel).counts(), sel.params)
        row: Any = cur.fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)
