"""The ``kept`` strategy: a rule whose clock is kept per group in a table (``clock.kept``; RET-3,
ADR 0011) is swept straight from batches of due groups, with no work table and no sort.

Each batch reads the next due groups from the kept table's (clock, key) index (a short read-only
transaction; the keys stay in memory, never in evidence or logs), then hands the action one
statement over those groups' rows (``governance.sweep.kept``): the action's own transaction, with
its evidence, checks each group due again and leaves held rows (RET-8). A batch holds about
``batch_size`` rows: groups per batch from the table's and the kept table's sizes. Rows left held
keep their group in the kept table; the keyset moves past it, so a pass ends.
"""

from __future__ import annotations

from typing import Any

from governance.sweep.actions import Batch
from governance.sweep.kept import FIRST, KeptSelection
from governance.sweep.strategies.base import Strategy
from governance.sweep.target import ident, split_name


class KeptGroups(Strategy):
    name = "kept"

    def sweep(self) -> None:
        runner = self.runner
        sel = runner.sel
        if sel.rule_held:
            return  # every record of the rule is held (RET-8): counted as held by the verification
        kept = KeptSelection(sel)
        name = split_name(runner.target.table)[1]
        per_batch = self.groups_per_batch(kept)
        position: dict[str, Any] = dict(FIRST)
        done = 0
        while True:
            [(keys, last_clock, last_key)] = runner.read(
                kept.next_groups(), {**sel.params, **position, "groups": per_batch}
            )
            if not keys:
                break
            step = f"{name} groups {done}-{done + len(keys)}"
            details = {**self.details(name), "groups": len(keys)}
            batch = Batch(ident(runner.target.table), kept.batch_rows(), step, details, {"groups": list(keys)})
            self.action.apply(batch)
            done += len(keys)
            position = {"after_clock": last_clock, "after_key": last_key}
            if len(keys) < per_batch:
                break

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
