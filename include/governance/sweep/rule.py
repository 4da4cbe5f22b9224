"""One rule's sweep, after its lock is taken: finish what an interrupted sweep left ('purging'
rows), choose the strategy, run passes until verification finds nothing due (the pass policy,
``governance.retry.MAX_PASSES``), create partitions ahead, and record the rule's summary.

A per-rule session advisory lock (``rule_lock``) keeps two sweeps off the same rule; after each
pass the same selection is counted again and must find nothing (else ``VerifyFailed``). A shard of
the rule (``governance.sweep.sharded``) holds the rule's lock shared and its own shard's lock
(``shard_lock``): shards run beside each other, never beside a whole-rule sweep.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from psycopg2 import sql
from psycopg2.extensions import connection

from governance.db import transaction
from governance.errors import ObjectPurgeFailed, VerifyFailed
from governance.retry import MAX_PASSES
from governance.sweep.actions import action_named
from governance.sweep.counting import count_due, purging_counts
from governance.sweep.held import Holds
from governance.sweep.partitions import ensure_ahead, list_partitions
from governance.sweep.results import RuleResult
from governance.sweep.runner import BatchRunner, SweepRun
from governance.sweep.selection import Selection
from governance.sweep.shards import Shard, partition_shard
from governance.sweep.strategies import choose, strategy_named
from governance.sweep.target import load_target, lock_key

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

LOCK_NAMESPACE = 0x5EE9  # first key of pg_advisory_lock(int, int): "sweep"
SHARD_NAMESPACE = 0x5EEA  # a shard of a rule: pg_advisory_lock(SHARD_NAMESPACE, key of "rule#k/N")


@contextmanager
def rule_lock(conn: connection, rule_id: str, wait: float) -> Iterator[bool]:
    """A session advisory lock on the rule, held across the rule's many short transactions; yields
    whether it was taken (within ``wait`` seconds)."""
    with _session_locks(conn, [(LOCK_NAMESPACE, lock_key(rule_id), False)], wait) as got:
        yield got


@contextmanager
def shard_lock(conn: connection, rule_id: str, label: str, wait: float) -> Iterator[bool]:
    """The rule's lock shared (other shards may hold it too, a whole-rule sweep may not) and the
    shard's own (``label`` k/N) exclusive; yields whether both were taken within ``wait`` seconds."""
    keys = [(LOCK_NAMESPACE, lock_key(rule_id), True), (SHARD_NAMESPACE, lock_key(f"{rule_id}#{label}"), False)]
    with _session_locks(conn, keys, wait) as got:
        yield got


@contextmanager
def _session_locks(conn: connection, keys: list[tuple[int, int, bool]], wait: float) -> Iterator[bool]:
    """Session advisory locks (namespace, key, shared), all or none, retried until ``wait`` has passed."""
    deadline = time.monotonic() + max(0.0, wait)
    while True:
        taken: list[tuple[int, int, bool]] = []
        with transaction(conn) as cur:
            for namespace, key, shared in keys:
                fn = "pg_try_advisory_lock_shared" if shared else "pg_try_advisory_lock"
                cur.execute(f"SELECT {fn}(%s, %s)", (namespace, key))
                row = cur.fetchone()
                if not (row and row[0]):
                    break
                taken.append((namespace, key, shared))
        got = len(taken) == len(keys)
        if not got:
            _unlock(conn, taken)
        if got or time.monotonic() >= deadline:
            break
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
    try:
        yield got
    finally:
        if got:
            conn.rollback()
            _unlock(conn, keys)


def _unlock(conn: connection, keys: list[tuple[int, int, bool]]) -> None:
    if not keys:
        return
    with transaction(conn) as cur:
        for namespace, key, shared in reversed(keys):
            fn = "pg_advisory_unlock_shared" if shared else "pg_advisory_unlock"
            cur.execute(f"SELECT {fn}(%s, %s)", (namespace, key))


class RuleSweep:
    """One rule's execution at ``now`` for run ``run_id``: passes, verification, summary."""

    def __init__(self, conn: connection, s3: S3Client | None, run: SweepRun, rule_id: str, shard: Shard | None = None):
        self.conn, self.now, self.opts = conn, run.now, run.opts
        holds = Holds.at(conn, run.now, run.policy)
        conn.commit()
        target = load_target(conn, run.policy, rule_id)
        conn.commit()
        self.sel = Selection(target, run.now, holds, shard)
        rule = target.rule
        self.result = RuleResult(rule.id, list(rule.requirements), rule.action.type)
        self.runner = BatchRunner(conn, run, self.sel, self.result)
        self.action = action_named(rule.action.type)(self.runner, s3)

    def run(self) -> RuleResult:
        start = time.perf_counter()
        t, r = self.sel.target, self.result
        self.action.resume()
        with transaction(self.conn) as cur:
            r.strategy = choose(cur, self.sel, self.opts)
        remaining = self.sweep_until_verified()
        if t.drops_partitions and self.sel.shard is None:  # a sharded rule's finish creates them
            self.create_partitions_ahead()
        r.seconds = time.perf_counter() - start
        if self.action.failures:
            codes = dict(Counter(self.action.failures.values()))
            raise ObjectPurgeFailed(t.rule.id, len(self.action.failures), codes)
        if remaining:
            raise VerifyFailed(t.rule.id, remaining)
        self.record_summary()
        log.info("rule %s: %s", t.rule.id, r.to_dict())
        return r

    def sweep_until_verified(self) -> int | None:
        """Passes of the strategy until verification finds nothing due (at most MAX_PASSES), or an
        object could not be purged; returns what the last verification found due (None: none ran)."""
        strategy = strategy_named(self.result.strategy)(self.runner, self.action)
        remaining = None
        for attempt in range(MAX_PASSES):
            before = self.result.records_changed
            strategy.sweep()
            if self.action.failures:
                break
            remaining, self.result.held = self.verify()
            if remaining == 0:
                break
            # Rows changed under the pass: moved by an update, or newly governed by this rule because a
            # rule running beside it removed what another rule's clock hung on (a deleted account's saved
            # products). Another pass picks them up; what survives MAX_PASSES fails verification.
            log.info(
                "rule %s: %d due record(s) left after pass %d (%d removed in it); sweeping again",
                self.result.rule,
                remaining,
                attempt + 1,
                self.result.records_changed - before,
            )
        return remaining

    def finish(self, shards: int) -> RuleResult:
        """After the ``shards`` shards of a sharded sweep: the whole rule verified (its selection
        counts nothing due), partitions created ahead, and the rule's summary of every batch of the
        run (all shards). Anything still due (rows an update moved to pages a shard had done, a
        shard that failed) is swept by whole-rule passes first, as ``run`` would."""
        start = time.perf_counter()
        t, r = self.sel.target, self.result
        r.strategy = "shards"
        remaining, r.held = self.verify()
        if remaining:
            log.info(
                "rule %s: %d due record(s) left after its %d shards; sweeping the whole rule",
                t.rule.id,
                remaining,
                shards,
            )
            with transaction(self.conn) as cur:
                r.strategy = choose(cur, self.sel, self.opts)
            remaining = self.sweep_until_verified() or 0
        if t.drops_partitions:
            self.create_partitions_ahead()
        r.seconds = time.perf_counter() - start
        if remaining:
            raise VerifyFailed(t.rule.id, remaining)
        self.record_summary(shards=shards)
        log.info("rule %s: finished %d shards: %s", t.rule.id, shards, r.to_dict())
        return r

    def verify(self) -> tuple[int, int]:
        """The same selection again: (due and not held, due but held); the first must be 0.
        Tombstones this sweep could not finish fail it before (ObjectPurgeFailed); 'purging' rows
        another rule is finishing right now are that rule's. Counted of the rows still in the view
        (those this sweep anonymised or deleted are out of it). A shard counts its own rows."""
        if self.sel.shard is not None and self.sel.shard.kind == "partitions":
            self.sel.params["shard_relations"] = self.shard_partitions()
        due, held = count_due(self.conn, self.sel, self.opts, removed=self.result.anonymised + self.result.deleted)
        if self.sel.target.purges_objects:  # held tombstones stay 'purging' and count as held (RET-8)
            with transaction(self.conn) as cur:
                held += purging_counts(cur, self.sel)[1]
        return due, held

    def shard_partitions(self) -> list[int]:
        """The oids of a partitions shard's partitions now (``shards.partition_shard``)."""
        shard, t = self.sel.shard, self.sel.target
        assert shard is not None
        with transaction(self.conn):
            parts = list_partitions(self.conn, t.table, self.now, t.window)
        return [p.oid for p in parts if partition_shard(p, shard.count) == shard.index]

    def create_partitions_ahead(self) -> None:
        t, opts = self.sel.target, self.opts
        created, conflicts = ensure_ahead(
            self.conn,
            t.table,
            self.now,
            behind=opts.partitions_behind,
            ahead=opts.partitions_ahead,
            lock_timeout=opts.lock_timeout,
        )
        self.result.partitions_created = created
        if conflicts:
            log.warning(
                "rule %s: %d hour(s) not partitioned, the default partition holds rows of them",
                t.rule.id,
                len(conflicts),
            )

    def record_summary(self, *, shards: int | None = None) -> None:
        """kind='sweep_rule': totals of every batch of this run for the rule (all attempts).
        Cumulative over the run; a later pass with an effect (a retry, settling) adds summary#n; a
        rerun that changed nothing records nothing. A shard records kind='sweep_shard' (step
        ``shard k/N``) with the totals of its own batches. The finish of a sharded sweep
        (``shards``) records summary#n when the totals differ from the last summary's."""
        r, run_id, shard = self.result, self.runner.run_id, self.sel.shard
        kind = "sweep_rule" if shard is None else "sweep_shard"
        step = "summary" if shard is None else f"shard {shard.label}"
        of_shard = sql.SQL("") if shard is None else sql.SQL(" AND e.details->>'shard' = %(shard)s")
        params = {"run": run_id, "rule": r.rule, "shard": shard.label if shard else None, "kind": kind, "step": step}
        with transaction(self.conn) as cur:
            cur.execute(
                sql.SQL(
                    "SELECT c.key, sum(c.value::bigint) FROM governance.evidence e, jsonb_each_text(e.counts) c "
                    "WHERE e.kind = 'sweep_batch' AND e.run_id = %(run)s AND e.rule_id = %(rule)s{} "
                    "GROUP BY c.key ORDER BY 1"
                ).format(of_shard),
                params,
            )
            totals = {str(key): int(value) for key, value in cur.fetchall()}
            totals["held"] = r.held
            cur.execute(
                "SELECT count(*), (array_agg(counts ORDER BY entry_id DESC))[1] FROM governance.evidence "
                "WHERE kind = %(kind)s AND run_id = %(run)s AND rule_id = %(rule)s "
                "AND (step = %(step)s OR step LIKE %(step)s || '#%%')",
                params,
            )
            row = cur.fetchone()
            summaries, last = (int(row[0]), row[1]) if row else (0, None)
            if summaries and (last == totals if shards else not r.records_changed):
                return  # committing a read-only transaction: nothing written
            details = {
                "strategy": r.strategy,
                "verified_remaining": 0,
                "attempt_seconds": round(r.seconds, 3),
                "attempt_batches": r.batches,
                "batches_over_time": r.batches_over_time,  # rolled back at their time limit, swept smaller
                "max_batch_seconds": round(r.max_batch_seconds, 4),
                "partitions_created": r.partitions_created,
            }
            if shards:
                details["shards"] = shards
            step = step if not summaries else f"{step}#{summaries + 1}"
            self.runner.record(cur, kind, step, totals, details)
