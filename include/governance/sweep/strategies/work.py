"""The ``work`` strategy: the due set computed once into a temporary (relation, ctid, key) table in
ctid order (``work_table``), then handed to the action slice by slice (ranges of the work table's
own pages), each slice by TID. Used for clock views (per customer, per person, several rules) and
for a column clock with few due rows (the index finds them without a full pass).

Each work row names its row by (ctid, key): joined, the planner runs a parameterised TID scan per
work row (no index, no hash, no sort), and the key check means a slot reused by another row since
the work table was computed is never touched.
"""

from __future__ import annotations

from typing import Any

from psycopg2 import sql

from governance.db import transaction
from governance.sweep.actions import Batch
from governance.sweep.objects import DELETE_OBJECTS_LIMIT
from governance.sweep.selection import page_bounds
from governance.sweep.strategies import work_table
from governance.sweep.strategies.base import Strategy
from governance.sweep.strategies.work_table import WORK

_IN_SLICE = sql.SQL("w.ctid >= %(lo)s::tid AND w.ctid < %(hi)s::tid")


class WorkTable(Strategy):
    name = "work"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.names: dict[int, tuple[str, str]] = {}  # relation oid -> (schema, name)

    def sweep(self) -> None:
        try:
            rows, pages = work_table.compute(self.runner)
            for bounds in self.slices(rows, pages):
                self.sweep_slice(bounds)
        finally:
            work_table.drop(self.runner)

    def slices(self, rows: int, pages: int) -> list[dict[str, str]]:
        """Bounds (lo, hi) of the slices: ranges of the work table's pages of ~batch_size rows. For an
        object purge, slices of whole thousands of rows: DeleteObjects takes up to 1,000 keys, so n
        objects cost ceil(n / 1,000) requests."""
        batch_size = self.runner.opts.batch_size
        per_batch = max(1, int(batch_size * pages / rows)) if rows else 1
        if not (self.runner.target.purges_objects and rows):
            return [page_bounds(start, start + per_batch) for start in range(0, pages, per_batch)]
        size = -(-max(1, batch_size) // DELETE_OBJECTS_LIMIT) * DELETE_OBJECTS_LIMIT
        starts = [
            str(row[0])
            for row in self.runner.read(
                sql.SQL(
                    "SELECT min(x.ctid)::text FROM (SELECT ctid, (row_number() OVER (ORDER BY ctid) - 1) / %s "
                    "AS s FROM pg_temp.{work}) x GROUP BY x.s ORDER BY x.s"
                ).format(work=WORK),
                (size,),
            )
        ]
        ends = starts[1:] + [f"({pages + 1},0)"]
        return [{"lo": lo, "hi": hi} for lo, hi in zip(starts, ends, strict=True)]

    def sweep_slice(self, bounds: dict[str, Any]) -> None:
        """One slice: a batch per relation it spans (one, unless a partition boundary falls in it)."""
        t, sel = self.runner.target, self.runner.sel
        using = sql.SQL("SELECT w.tid, w.rec FROM pg_temp.{work} w WHERE {slice} AND w.rel = %(rel)s").format(
            work=WORK, slice=_IN_SLICE
        )
        conds = [sql.SQL("t.ctid = w.tid"), sql.SQL("t.{} = w.rec").format(sql.Identifier(t.key)), sel.row_filter("t")]
        if t.direct_clock:
            conds.append(sel.direct_due("t"))
        where = sql.SQL(" AND ").join(conds)
        for rel, lo, hi in self.relations_of(bounds):
            schema, name = self.names[rel]
            step = f"{name} tid {lo}-{hi}"
            self.action.apply(
                Batch(sql.Identifier(schema, name), where, step, self.details(name), {**bounds, "rel": rel}, using)
            )

    def relations_of(self, bounds: dict[str, Any]) -> list[tuple[int, str, str]]:
        """(relation oid, first tid, last tid) of each relation in the slice; their names are
        looked up (once per sweep) in the same transaction."""
        with transaction(self.runner.conn) as cur:
            cur.execute(
                sql.SQL(
                    "SELECT w.rel, min(w.tid)::text, max(w.tid)::text FROM pg_temp.{work} w "
                    "WHERE {slice} GROUP BY 1 ORDER BY 1"
                ).format(work=WORK, slice=_IN_SLICE),
                bounds,
            )
            parts = [(int(rel), str(lo), str(hi)) for rel, lo, hi in cur.fetchall()]
            for rel, _, _ in parts:
                if rel not in self.names:
                    cur.execute(
                        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n "
                        "ON n.oid = c.relnamespace WHERE c.oid = %s",
                        (rel,),
                    )
                    row = cur.fetchone()
                    assert row is not None, "a relation of the work table exists"
                    self.names[rel] = (str(row[0]), str(row[1]))
        return parts
