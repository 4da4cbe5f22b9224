"""The ``partitions`` strategy: a table range-partitioned on its column clock (shop.visits, RET-1)
loses whole expired partitions (``DROP TABLE``), in groups of DROPS_PER_TRANSACTION; only the
partition the cut-off falls into, the default partition and partitions with held rows are swept
row-wise (``blocks``). Partitions are created ahead by the rule sweep (``ensure_ahead``).

A group is locked SHARE (writers out, readers go on) and counted in one statement; only then is
the parent locked ACCESS EXCLUSIVE, for the one DROP statement, so the shop's writes to the live
partitions wait for the drop, not for the counts. ``partition_counts="exact"`` counts the rows
(``count(*)``: what the DROP removes); ``"estimated"`` takes ``pg_class.reltuples`` (a partition
never analysed is counted exactly) and records them as ``rows_estimated``, never as ``deleted``.
"""

from __future__ import annotations

import time

from psycopg2 import sql
from psycopg2.extensions import cursor

from governance.db import transaction
from governance.sweep.partitions import Partition, list_partitions
from governance.sweep.selection import Selection
from governance.sweep.shards import partition_shard
from governance.sweep.strategies.base import Strategy
from governance.sweep.strategies.blocks import BlockRanges
from governance.sweep.target import ident

DROPS_PER_TRANSACTION = 8  # fully expired partitions dropped per transaction (one evidence entry each)


def has_held_rows(cur: cursor, sel: Selection, part: Partition) -> bool:
    """Whether a hold keeps any row of the partition (then it is swept row-wise, never dropped)."""
    if sel.rule_held:
        return True
    if not sel.held_clauses("t"):
        return False
    cur.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {} t WHERE {})").format(part.ident, sel.held("t")), sel.params)
    row = cur.fetchone()
    return bool(row and row[0])


class PartitionDrops(Strategy):
    name = "partitions"

    def sweep(self) -> None:
        """Drop partitions whose every row has expired; delete row-wise only where the cut-off falls."""
        runner = self.runner
        t, sel = runner.target, runner.sel
        if sel.rule_held:
            return
        with transaction(runner.conn):
            parts = list_partitions(runner.conn, t.table, runner.now, t.window)
        if sel.shard is not None:  # a shard's partitions only (``governance.sweep.shards``)
            parts = [p for p in parts if partition_shard(p, sel.shard.count) == sel.shard.index]
        group: list[Partition] = []  # fully expired, unheld partitions: dropped together
        row_wise = BlockRanges(runner, self.action)
        for part in parts:
            if part.none_expired:
                continue
            with transaction(runner.conn) as cur:
                held_rows = part.fully_expired and has_held_rows(cur, sel, part)
            if part.fully_expired and not held_rows:
                group.append(part)
                if len(group) >= DROPS_PER_TRANSACTION:
                    self.drop(group)
                    group = []
            else:
                row_wise.sweep_relation(part.ident, part.name)
        if group:
            self.drop(group)

    def drop(self, parts: list[Partition]) -> None:
        """Drop a group of fully expired partitions in one short transaction, one evidence entry per
        partition carrying its row count. Committed like a delete batch: a crash loses drops and
        their evidence together, and the next run redoes them."""

        def work(cur: cursor) -> dict[str, int]:
            start = time.perf_counter()
            relations = sql.SQL(", ").join(part.ident for part in parts)
            cur.execute(sql.SQL("LOCK TABLE {} IN SHARE MODE").format(relations))
            counts, exact = self.count_rows(cur, parts)
            counted = round(time.perf_counter() - start, 4)
            cur.execute(sql.SQL("LOCK TABLE ONLY {} IN ACCESS EXCLUSIVE MODE").format(ident(self.runner.target.table)))
            cur.execute(sql.SQL("DROP TABLE {}").format(relations))
            dropped = round(time.perf_counter() - start, 4)
            tally: dict[str, int] = {"deleted": 0, "rows_estimated": 0, "partitions_dropped": 0}
            for part in parts:
                rows = counts[part.qualified]
                key = "deleted" if part.qualified in exact else "rows_estimated"
                details = {
                    **self.details(part.name),
                    "group": len(parts),
                    "count": "exact" if key == "deleted" else "estimated (pg_class.reltuples)",
                    "group_counted_seconds": counted,
                    "group_dropped_seconds": dropped,
                }
                self.runner.record_batch(cur, f"drop {part.name}", {key: rows, "partitions_dropped": 1}, details)
                tally[key] += rows
                tally["partitions_dropped"] += 1
            return tally

        self.runner.run(f"drop {parts[0].name}..{parts[-1].name}", work, {}, evidence=False)

    def count_rows(self, cur: cursor, parts: list[Partition]) -> tuple[dict[str, int], set[str]]:
        """Rows per partition (qualified name), and which partitions were counted exactly."""
        estimates: dict[str, int | None] = {}
        if self.runner.opts.partition_counts == "estimated":
            cur.execute(
                "SELECT c.reltuples FROM unnest(%s::regclass[]) WITH ORDINALITY AS p(oid, i) "
                "JOIN pg_class c ON c.oid = p.oid ORDER BY p.i",
                ([part.qualified for part in parts],),
            )
            for part, (tuples,) in zip(parts, cur.fetchall(), strict=True):
                estimates[part.qualified] = int(tuples) if tuples >= 0 else None
        exact = [part for part in parts if estimates.get(part.qualified) is None]
        counts = {name: rows for name, rows in estimates.items() if rows is not None}
        if exact:
            cur.execute(
                sql.SQL(" UNION ALL ").join(
                    sql.SQL("SELECT {}::int, count(*) FROM {}").format(sql.Literal(i), part.ident)
                    for i, part in enumerate(exact)
                )
            )
            for i, rows in cur.fetchall():
                counts[exact[i].qualified] = int(rows)
        return counts, {part.qualified for part in exact}
