"""The ``blocks`` strategy: a column clock evaluated on each row, batch by batch over ranges of heap
pages (TID range scans, ``ctid >= '(a,0)' AND ctid < '(b,0)'``): one pass over the table in total,
no sort, no index needed.

After a batch that found nothing, a read-only probe looks for the next page holding a due row
(``SELECT ctid … LIMIT 1`` over at most PROBE_BATCHES batches' worth of pages: a TID range scan
stops at the first hit) and the batches resume there: a table whose due rows sit in one part
(visits, in clock order) is not worked through in hundreds of empty transactions. Pages the probe
passed over held nothing due when it read them; the verification still counts every due row.
"""

from __future__ import annotations

from psycopg2 import sql

from governance.db import transaction
from governance.sweep.actions import Batch
from governance.sweep.counting import ROWS_PER_PAGE_GUESS
from governance.sweep.selection import FROM_PAGE, IN_PAGES, page_bounds
from governance.sweep.strategies.base import Strategy
from governance.sweep.target import split_name

PROBE_BATCHES = 64  # after an empty block-range batch, probe at most this many batches' pages ahead


class BlockRanges(Strategy):
    name = "blocks"

    def sweep(self) -> None:
        for schema, name in self.heap_relations():
            self.sweep_relation(sql.Identifier(schema, name), name)

    def heap_relations(self) -> list[tuple[str, str]]:
        """The table itself, or its leaf partitions (ctid ranges are per heap relation)."""
        t = self.runner.target
        if not t.partitioned:
            return [split_name(t.table)]
        rows = self.runner.read(
            "SELECT n.nspname, c.relname FROM pg_partition_tree(%s::regclass) p "
            "JOIN pg_class c ON c.oid = p.relid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE p.isleaf ORDER BY 1, 2",
            (t.table,),
        )
        return [(str(schema), str(name)) for schema, name in rows]

    def pages_per_batch(self, relation: sql.Identifier) -> tuple[int, int]:
        """(heap pages now, pages per batch): batch_pages, or batch_size rows at the table's density."""
        opts = self.runner.opts
        [(pages, tuples, relpages)] = self.runner.read(
            sql.SQL(
                "SELECT pg_relation_size(c.oid) / current_setting('block_size')::int, c.reltuples, c.relpages "
                "FROM pg_class c WHERE c.oid = {}::regclass"
            ).format(sql.Literal(relation.as_string(self.runner.conn)))
        )
        if opts.batch_pages:
            return pages, opts.batch_pages
        per_page = tuples / relpages if tuples and tuples > 0 and relpages else ROWS_PER_PAGE_GUESS
        return pages, max(1, int(opts.batch_size / max(per_page, 1.0)))

    def sweep_relation(self, relation: sql.Identifier, name: str) -> None:
        """Batches over ranges of the relation's heap pages, each handing the due, unheld rows it
        finds there to the action; empty stretches are skipped by probes. A blocks shard works its
        own pages [lo, hi) only (``Selection.page_range``)."""
        lo, hi = self.runner.sel.page_range()
        pages, per_batch = self.pages_per_batch(relation)
        if hi is not None:
            pages = min(pages, hi)
        due = self.row_due()
        probe = sql.SQL("SELECT (t.ctid::text::point)[0]::bigint FROM {rel} t WHERE {pages} AND {due} LIMIT 1").format(
            rel=relation, pages=IN_PAGES, due=due
        )
        start = lo
        while start + per_batch < pages:
            where = IN_PAGES + sql.SQL(" AND ") + due
            bounds = page_bounds(start, start + per_batch)
            batch = Batch(relation, where, f"{name} blocks {start}-{start + per_batch}", self.details(name), bounds)
            changed = self.action.apply(batch)
            start += per_batch
            if changed == 0 and start + per_batch < pages:
                start = self.probe_ahead(probe, start, per_batch, pages)
        # The last batch (from here to the end) always runs: pages added since the sizes were read.
        # A shard's last batch ends at its last page (the shard after it has the rest).
        if hi is not None:
            if start < hi:
                batch = Batch(
                    relation,
                    IN_PAGES + sql.SQL(" AND ") + due,
                    f"{name} blocks {start}-{hi}",
                    self.details(name),
                    page_bounds(start, hi),
                )
                self.action.apply(batch)
            return
        where = FROM_PAGE + sql.SQL(" AND ") + due
        self.action.apply(Batch(relation, where, f"{name} blocks {start}-end", self.details(name), page_bounds(start)))

    def row_due(self) -> sql.Composable:
        """A row (alias t) is due, still to handle and not held: its column clock has expired."""
        sel = self.runner.sel
        return sql.SQL(" AND ").join(
            [
                sel.row_filter("t"),
                sel.direct_due("t"),
                sql.SQL("NOT ({} OR {})").format(sel.rule_held_sql(), sel.held("t")),
            ]
        )

    def probe_ahead(self, probe: sql.Composable, start: int, per_batch: int, pages: int) -> int:
        """The page to resume at: the first holding a due row (read only, no row lock), probing at
        most PROBE_BATCHES batches' pages at a time, or the start of the last batch."""
        runner = self.runner
        while start + per_batch < pages:
            hi = min(pages, start + per_batch * PROBE_BATCHES)
            with transaction(runner.conn, statement_timeout=runner.opts.statement_timeout) as cur:
                cur.execute(probe, {**runner.sel.params, **page_bounds(start, hi)})
                found = cur.fetchone()
            runner.result.probes += 1
            if found is not None:
                return max(start, int(found[0]))
            start = hi
        return start
