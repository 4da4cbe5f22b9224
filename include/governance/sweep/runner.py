"""The batch runner: every write of a rule's sweep goes through it as one short transaction that
carries its own evidence (CONTRIBUTING.md habit 5: the effect and its record commit together or not at
all). It owns the transaction (``governance.db.transaction``: statement and lock timeouts and
durability in one round trip), the batch retry policy (``governance.retry``), the evidence append
(``governance.evidence.append``; a batch's step is numbered, step#n, when a step of the same name
was recorded earlier in the run) and the tally of the rule's ``RuleResult``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg2.errors
from psycopg2.extensions import connection, cursor

from governance import evidence
from governance.db import transaction
from governance.errors import BatchFailed, BatchOverTime
from governance.notices.pseudonyms import pseudonym_key
from governance.notices.retention import KeySource, RetentionNotices
from governance.policy import Policy
from governance.retry import BATCH_RETRIES, retry_transient
from governance.sweep.options import Options
from governance.sweep.results import RuleResult
from governance.sweep.selection import Selection
from governance.sweep.target import Target

BatchWork = Callable[[cursor], dict[str, int]]


@dataclass(frozen=True)
class SweepRun:
    """One run of the sweep: the policy, the run's "now" (as_of of every entry), its id and options,
    and where the recipient pseudonym key comes from when a batch queues notices (TP-5)."""

    policy: Policy
    now: datetime
    run_id: str
    opts: Options
    notice_key: KeySource = field(default=pseudonym_key)


class BatchRunner:
    """Runs one rule's batches; strategies and actions reach the rule's selection, options and
    connection through it."""

    def __init__(self, conn: connection, run: SweepRun, sel: Selection, result: RuleResult):
        self.conn, self.sel, self.result = conn, sel, result
        self.policy, self.now, self.run_id, self.opts = run.policy, run.now, run.run_id, run.opts
        # TP-5: the recipients told of this rule's retention ends (None: nobody), called by the action
        self.notices = RetentionNotices.for_rule(run.policy, sel.target.rule, run.run_id, run.now, run.notice_key)

    @property
    def target(self) -> Target:
        return self.sel.target

    def run(
        self,
        step: str,
        work: BatchWork,
        details: dict[str, Any],
        *,
        durable: bool = False,
        evidence: bool = True,
        time_limit: str | None = None,
    ) -> dict[str, int]:
        """One batch: ``work`` (the effect, returning its counts), then its evidence unless the counts
        are all zero or ``work`` records its own (``evidence=False``), then commit. Durable when
        asked or ``synchronous_commit``; else a crash may lose the batch and its evidence together.
        Retried on transient errors (``retry_transient``); the counts are added to the result.
        With a ``time_limit`` (a statement timeout) a statement that overruns it rolls the batch
        back and raises ``BatchOverTime`` at once, not retried: the caller cuts the batch smaller."""

        def attempt() -> tuple[dict[str, int], float]:
            start = time.perf_counter()
            try:
                with transaction(
                    self.conn,
                    statement_timeout=time_limit or self.opts.statement_timeout,
                    lock_timeout=self.opts.lock_timeout,
                    durable=durable or self.opts.synchronous_commit,
                ) as cur:
                    counts = work(cur)
                    if evidence and any(counts.values()):
                        seconds = round(time.perf_counter() - start, 4)
                        self.record_batch(cur, step, counts, {**details, "seconds": seconds})
            except psycopg2.errors.QueryCanceled:
                if time_limit is None:
                    raise
                self.result.batches_over_time += 1
                raise BatchOverTime(
                    f"rule {self.target.rule.id!r}, batch {step}: over its time limit of {time_limit}; rolled back"
                ) from None
            return counts, time.perf_counter() - start

        def give_up(exc: Exception) -> BatchFailed:
            return BatchFailed(
                f"rule {self.target.rule.id!r}, batch {step}: {type(exc).__name__} "
                f"{BATCH_RETRIES + 1} times (the shop holds locks or the batch is too big; lower --batch-size)"
            )

        counts, elapsed = retry_transient(attempt, give_up)
        self.result.batches += 1
        self.result.max_batch_seconds = max(self.result.max_batch_seconds, elapsed)
        self.result.add_counts(counts)
        return counts

    def record_batch(self, cur: cursor, step: str, counts: dict[str, int], details: dict[str, Any]) -> None:
        """Evidence of kind 'sweep_batch' (numbered: rows that became due in a range an earlier
        attempt of this run had swept are recorded as step#n, never lost)."""
        self.record(cur, "sweep_batch", step, counts, details, numbered=True)

    def record(
        self,
        cur: cursor,
        kind: str,
        step: str,
        counts: dict[str, int],
        details: dict[str, Any],
        *,
        numbered: bool = False,
    ) -> None:
        t = self.target
        if self.sel.shard is not None:  # a sharded sweep's entries name their shard (k/N)
            details = {**details, "shard": self.sel.shard.label}
        evidence.append(
            cur,
            kind=kind,
            run_id=self.run_id,
            rule_id=t.rule.id,
            step=step,
            requirements=list(t.rule.requirements),
            as_of=self.now,
            policy_version=self.policy.version or None,
            counts=counts,
            details={"table": t.table, "action": t.action, "window": t.window.iso, **details},
            numbered=numbered,
        )

    def read(self, statement: Any, params: Any = None) -> list[tuple[Any, ...]]:
        """The rows of one catalogue or work-table query, in its own short transaction."""
        with transaction(self.conn) as cur:
            cur.execute(statement, params)
            rows: list[tuple[Any, ...]] = cur.fetchall()
            return rows
