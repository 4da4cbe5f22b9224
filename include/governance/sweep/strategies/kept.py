"""The ``kept`` strategy: a rule whose clock is kept per group in a table (``clock.kept``; RET-3,
ADR 0011) is swept straight from batches of due groups, with no work table and no sort; or, when
most groups are due, in one pass over the table's pages (``KeptBlocks``).

Each batch reads its upper bound, the (clock, key) of the ``n``-th next due group, from the kept
table's (clock, key) index (a short read-only transaction; the bound stays in memory, never in
evidence or logs), then hands the action one statement over the rows of the groups in that range
(``governance.sweep.kept``): the action's own transaction, with its evidence, checks each group
due again and leaves held rows (RET-8). The last batch has no upper bound. A batch holds at most
about ``batch_size`` rows (groups per batch from the table's and the kept table's sizes), fewer
when batches are slow (``next_size``); a batch that overruns ``batch_time_limit`` (a checkpoint
stalls it, say) is rolled back and swept again at half its size, so no write transaction of the
rule reaches a second. Rows left held keep their group in the kept table; the keyset moves past it,
so a pass ends.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from psycopg2 import sql

from governance.errors import BatchOverTime
from governance.sweep.actions import Action, Batch
from governance.sweep.kept import FIRST, LAST, KeptSelection
from governance.sweep.pacing import next_size
from governance.sweep.runner import BatchRunner
from governance.sweep.selection import FROM_PAGE, IN_PAGES, page_bounds
from governance.sweep.strategies.base import Strategy
from governance.sweep.strategies.blocks import BlockRanges
from governance.sweep.target import ident, split_name

# The groups per batch follow ``pacing.next_size``, between 1 and ``batch_size`` rows' worth; the
# first batch holds a 1/START_FRACTION of that. On a slow or contended disk the batches shrink, so
# the transaction that holds the orders' row locks stays short; on a quiet machine they grow to
# ``batch_size``.
START_FRACTION = 4


log = logging.getLogger(__name__)


def time_limit(runner: BatchRunner, size: int) -> str | None:
    """The time limit of a batch of ``size`` groups or pages: none for one, which cannot be cut."""
    return runner.opts.batch_time_limit if size > 1 else None


def applied(action: Action, batch: Batch) -> bool:
    """Apply ``batch``; False when it overran its time limit and was rolled back (cut it smaller)."""
    try:
        action.apply(batch)
    except BatchOverTime as exc:
        log.info("%s; trying again at half the size", exc)
        return False
    return True


DENSE_FRACTION = 0.05  # due groups, of all groups, from which one pass over the pages is cheaper


class KeptBlocks(BlockRanges):
    """A kept clock's rows swept over ranges of heap pages (``blocks``), each row's group probed in
    the kept table: for a due set that spans most of the table (evidence details ``path: blocks``).
    No probes ahead (most pages hold due rows); batches adapt their size as the groups' do."""

    name = "kept"

    def __init__(self, runner: BatchRunner, action: Action, kept: KeptSelection):
        super().__init__(runner, action)
        self.kept = kept

    def row_due(self) -> sql.Composable:
        return self.kept.row_due()

    def sweep_relation(self, relation: sql.Identifier, name: str) -> None:
        """Batches over ranges of the heap's pages, in order, sized like the groups' batches: a
        quarter of ``batch_size`` rows' worth of pages first, then halved or doubled by the time
        each took (``next_size``); the last batch runs to the end of the relation."""
        pages, most = self.pages_per_batch(relation)
        per_batch = max(1, most // START_FRACTION)
        due = self.row_due()
        start = 0
        while True:
            last = start + per_batch >= pages
            if last:
                where = FROM_PAGE + sql.SQL(" AND ") + due
                step, bounds = f"{name} blocks {start}-end", page_bounds(start)
            else:
                where = IN_PAGES + sql.SQL(" AND ") + due
                step, bounds = f"{name} blocks {start}-{start + per_batch}", page_bounds(start, start + per_batch)
            limit = time_limit(self.runner, per_batch)
            began = time.perf_counter()
            if not applied(self.action, Batch(relation, where, step, self.details(name), bounds, time_limit=limit)):
                per_batch = max(1, per_batch // 2)
                continue
            if last:
                return
            start += per_batch
            per_batch = next_size(per_batch, most, time.perf_counter() - began)

    def details(self, relation: str) -> dict[str, str]:
        return {**super().details(relation), "path": "blocks"}


class KeptGroups(Strategy):
    name = "kept"

    def sweep(self) -> None:
        runner = self.runner
        sel = runner.sel
        if sel.rule_held:
            return  # every record of the rule is held (RET-8): counted as held by the verification
        kept = KeptSelection(sel)
        if self.dense(kept):
            KeptBlocks(runner, self.action, kept).sweep()
            return
        name = split_name(runner.target.table)[1]
        most = self.groups_per_batch(kept)
        per_batch = max(1, most // START_FRACTION)
        position: dict[str, Any] = dict(FIRST)
        done = 0
        while True:
            bound = runner.read(kept.next_bound(), {**sel.params, **position, "groups": per_batch})
            upto = {"upto_clock": bound[0][0], "upto_key": bound[0][1]} if bound else dict(LAST)
            step = f"{name} groups {done}-{done + per_batch if bound else 'end'}"
            details = {**self.details(name), "path": "groups", "groups_per_batch": per_batch}
            batch = Batch(
                ident(runner.target.table),
                kept.batch_rows(),
                step,
                details,
                {**position, **upto},
                time_limit=time_limit(runner, per_batch),
            )
            start = time.perf_counter()
            if not applied(self.action, batch):
                per_batch = max(1, per_batch // 2)
                continue
            if not bound:
                break  # the last batch: every due group after the position
            done += per_batch
            position = {"after_clock": upto["upto_clock"], "after_key": upto["upto_key"]}
            per_batch = next_size(per_batch, most, time.perf_counter() - start)

    def dense(self, kept: KeptSelection) -> bool:
        """Whether most of the table is likely due: at least DENSE_FRACTION of the groups, and a
        ``row_clock`` to skip the rows that cannot be. Then one pass over the heap's pages in order
        (``KeptBlocks``) writes each page once; batches of groups would visit pages all over it."""
        if kept.spec.row_clock is None:
            return False
        [(due, groups)] = self.runner.read(kept.due_groups_count(), self.runner.sel.params)
        return bool(groups and groups > 0 and due >= DENSE_FRACTION * groups)

    def groups_per_batch(self, kept: KeptSelection) -> int:
        """Groups per batch so that a batch holds about ``batch_size`` rows: the table's rows per
        kept group, from the statistics (one row per group when either was never analysed)."""
        runner = self.runner
        [(rows, groups)] = runner.read(
            "SELECT (SELECT reltuples FROM pg_class WHERE oid = %s::regclass), "
            "(SELECT reltuples FROM pg_class WHERE oid = %s::regclass)",
            (runner.target.table, kept.spec.table),
        )
        per_group = rows / groups if rows and groups and rows > 0 and groups > 0 else 1.0
        return max(1, int(runner.opts.batch_size / max(per_group, 1.0)))
