"""The retention sweep: plan, execute and verify each rule of the policy at the run's "now".

How a rule is executed (every batch is one short transaction that carries its own evidence,
CONVENTIONS habit 5; nothing is fetched into Python to be deleted):

- **partitions**: a table range-partitioned on its clock (shop.visits, RET-1) loses whole expired
  partitions (``DROP TABLE``); only the partition the cut-off falls into and the default partition
  are deleted row-wise; partitions are created ahead (``governance.ensure_hourly_partitions``).
- **blocks**: a clock that is a column of the table is evaluated on each row, batch by batch over
  ranges of heap pages (TID range scans, ``ctid >= '(a,0)' AND ctid < '(b,0)'``): one pass over
  the table in total, no sort, no index needed.
- **work**: a clock given by a view (per customer, per person, several rules) is computed once
  into a temporary table of (relation, ctid, key) — one pass — and removed in batches of N rows
  by TID (``ctid = ANY(...)``), each re-checking the key so a reused slot is never hit. A direct
  clock with few due rows also goes this way (the index finds them without a full pass). When the
  clock view exposes a ``chunk`` column (include/sql/clocks/README.md), the pass is cut into
  chunks of customers, each its own short transaction (RET-3 on a large orders table).

Actions: ``delete``; ``anonymise`` (RET-8: every personal column overwritten by its masking
strategy, the marker column set, never selected again); ``purge_objects`` (CAT-5: row marked
'purging' and committed, then every object version deleted, then the row — so a crash leaves
neither orphan objects nor rows pointing at nothing; a rerun finishes 'purging' rows first).

A per-rule session advisory lock keeps two sweeps off the same rule; after execution the same
selection is counted again and must find nothing (else ``VerifyFailed``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import psycopg2.errors
from psycopg2 import sql
from psycopg2.extras import Json

from governance.errors import GovernanceError
from governance.policy import AnonymiseAction, Policy, PolicyError, check_against_database
from governance.sweep.objects import DELETE_OBJECTS_LIMIT, PurgeOutcome, purge_objects
from governance.sweep.options import Options
from governance.sweep.partitions import Partition, ensure_ahead, list_partitions
from governance.sweep.selection import Holds, Selection, Target, ident, load_target, lock_key
from governance.sweep.stages import after_cycles, sweep_stages
from governance.windows import as_utc

log = logging.getLogger(__name__)

LOCK_NAMESPACE = 0x5EE9  # first key of pg_advisory_lock(int, int): "sweep"
WORK_TABLE = "governance_sweep_work"
TRANSIENT = (
    psycopg2.errors.LockNotAvailable,
    psycopg2.errors.QueryCanceled,
    psycopg2.errors.DeadlockDetected,
    psycopg2.errors.SerializationFailure,
)
BATCH_RETRIES = 3
DENSE_FRACTION = 0.05  # a direct clock with at least this share due is swept by blocks, else by work
PROBE_BATCHES = 64  # after an empty block-range batch, probe at most this many batches' pages ahead
DROPS_PER_TRANSACTION = 8  # fully expired partitions dropped per transaction (one evidence entry each)
MAX_CHUNKS = 256  # a chunked due set is computed in at most this many transactions
# A verification chunk counts, it neither joins nor writes due rows (none are left): per row about
# half the work of a compute chunk (bench/README.md, RET-3), so its chunks hold twice the rows.
VERIFY_CHUNK_FACTOR = 2
ROWS_PER_PAGE_GUESS = 60.0  # a table never analysed: rows per heap page assumed


# --- results ------------------------------------------------------------------------------------


class SweepError(GovernanceError):
    """A sweep that did not complete. ``retryable`` says whether running it again may help.
    Messages name rules, counts and keys only, never personal data."""

    retryable = False


class VerifyFailed(SweepError):
    def __init__(self, rule_id: str, remaining: int):
        self.rule_id, self.remaining = rule_id, remaining
        super().__init__(
            f"rule {rule_id!r}: {remaining} record(s) are still due and not held after the sweep. "
            "Something keeps re-creating or changing them (a writer, a trigger) or the selection is wrong; "
            f"run 'governance plan --rule {rule_id}' and see docs/runbook.md before rerunning."
        )


# S3 error codes a retry may cure; an object lock, a legal hold on an object or a denied
# permission are not among them.
TRANSIENT_S3_CODES = {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "RequestTimeTooSkewed"}


class ObjectPurgeFailed(SweepError):
    def __init__(self, rule_id: str, failed: int, codes: dict[str, int]):
        self.rule_id, self.failed, self.codes = rule_id, failed, codes
        self.retryable = set(codes) <= TRANSIENT_S3_CODES
        reasons = ", ".join(f"{code} x{n}" for code, n in sorted(codes.items()))
        super().__init__(
            f"rule {rule_id!r}: {failed} object(s) could not be deleted ({reasons}); their rows stay in state "
            "'purging' and the next sweep finishes them once the cause (object lock, legal hold on the object, "
            "permissions) is lifted."
        )


class BatchFailed(SweepError):
    retryable = True


class LockTimeout(SweepError):
    retryable = True


class DependencyFailed(SweepError):
    pass


@dataclass
class RulePlan:
    """What a sweep of one rule would do now; no effect."""

    rule: str
    requirements: list[str]
    action: str
    table: str
    window: str
    now: str
    due: int = 0  # would be removed or anonymised
    held: int = 0  # due, but a legal hold keeps them
    partitions_to_drop: list[str] = field(default_factory=list)
    partition_rows: int = 0  # of ``due``, rows in partitions that would be dropped whole
    objects: int = 0  # objects that would be purged (one per upload; versions counted at run time)
    purging: int = 0  # rows left 'purging' by an interrupted sweep, finished first
    strategy: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RuleResult:
    rule: str
    requirements: list[str]
    action: str
    deleted: int = 0
    anonymised: int = 0
    objects_purged: int = 0  # object versions and delete markers removed
    partitions_dropped: int = 0
    rows_estimated: int = 0  # rows of dropped partitions counted by estimate (partition_counts="estimated")
    batches: int = 0
    probes: int = 0  # read-only look-aheads past pages with nothing due (block ranges)
    seconds: float = 0.0
    max_batch_seconds: float = 0.0
    skipped_locked: bool = False
    held: int = 0
    tombstoned: int = 0
    object_errors: int = 0
    partitions_created: int = 0
    strategy: str = ""
    dry_run: bool = False

    def merged(self, other: RuleResult) -> RuleResult:
        """Two passes of the same rule in one run, added up."""
        out = RuleResult(self.rule, self.requirements, self.action)
        for name in (
            "deleted",
            "anonymised",
            "objects_purged",
            "partitions_dropped",
            "rows_estimated",
            "batches",
            "probes",
            "seconds",
            "tombstoned",
            "object_errors",
            "partitions_created",
        ):
            setattr(out, name, getattr(self, name) + getattr(other, name))
        out.max_batch_seconds = max(self.max_batch_seconds, other.max_batch_seconds)
        out.held, out.strategy, out.dry_run = other.held, other.strategy or self.strategy, self.dry_run
        out.skipped_locked = self.skipped_locked or other.skipped_locked
        return out

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["seconds"] = round(self.seconds, 3)
        data["max_batch_seconds"] = round(self.max_batch_seconds, 4)
        return data


# --- the public functions -----------------------------------------------------------------------


def check_policy(conn: Any, policy: Policy) -> None:
    """Every table, column and clock view the policy names must exist, before anything runs."""
    problems = check_against_database(policy, conn)
    conn.rollback()
    problems += after_cycles(policy)
    if problems:
        raise PolicyError(policy.source_path or "<policy>", problems)


def plan(conn: Any, policy: Policy, now: datetime, rule_ids: list[str] | None = None, **options: Any) -> list[RulePlan]:
    """Per rule, what a sweep at ``now`` would remove or anonymise. Read-only (READ ONLY transactions:
    one per rule, or one per chunk for a clock view with a ``chunk`` column, RET-3)."""
    check_policy(conn, policy)
    now = as_utc(now)
    ids = list(rule_ids) if rule_ids else [r.id for r in policy.rules]
    for rule_id in ids:
        policy.rule(rule_id)  # KeyError naming the valid rules
    plans = []
    try:
        with conn.cursor() as cur:
            cur.execute("SET TRANSACTION READ ONLY")
        holds = Holds.at(conn, now)
        for rule_id in ids:
            plans.append(_plan_rule(conn, policy, rule_id, now, holds, Options(**options)))
    finally:
        conn.rollback()
    return plans


def sweep_rule(
    conn: Any,
    s3: Any,
    policy: Policy,
    rule_id: str,
    now: datetime,
    run_id: str,
    *,
    batch_size: int = 10_000,
    dry_run: bool = False,
    with_after: bool = True,
    check: bool = True,
    **options: Any,
) -> RuleResult:
    """Sweep one rule at ``now`` for run ``run_id``: plan, execute, verify.

    With ``with_after`` the rules it must come after are swept first (a no-op when done already in
    this run). A rerun of the same ``run_id`` changes nothing more and records nothing twice.
    """
    opts = Options(batch_size=batch_size, **options)
    if check:
        check_policy(conn, policy)
    now = as_utc(now)
    rule = policy.rule(rule_id)
    if dry_run:
        return _dry_result(conn, policy, rule_id, now, opts)
    if with_after:
        for dependency in rule.after:
            dep = sweep_rule(
                conn,
                s3,
                policy,
                dependency,
                now,
                run_id,
                batch_size=batch_size,
                with_after=True,
                check=False,
                **options,
            )
            if dep.skipped_locked:
                log.info("rule %s: skipped, rule %s it comes after is being swept elsewhere", rule_id, dependency)
                return RuleResult(rule.id, list(rule.requirements), rule.action.type, skipped_locked=True)
    autocommit = conn.autocommit
    conn.autocommit = False
    try:
        with _rule_lock(conn, rule_id, opts.lock_wait) as locked:
            if not locked:
                log.info("rule %s: another sweep holds its lock; skipped", rule_id)
                return RuleResult(rule.id, list(rule.requirements), rule.action.type, skipped_locked=True)
            return _Sweeper(conn, s3, policy, rule_id, now, run_id, opts).run()
    finally:
        conn.rollback()
        conn.autocommit = autocommit


def sweep(
    conn: Any,
    s3: Any,
    policy: Policy,
    now: datetime,
    run_id: str,
    rule_ids: list[str] | None = None,
    *,
    settle: bool = True,
    **kw: Any,
) -> list[RuleResult]:
    """Sweep several rules (default all) in an order that respects ``after``, then settle (below).
    Every rule is tried; failures are raised together at the end (``SweepFailed``, with the
    results of the others)."""
    check_policy(conn, policy)
    wanted = set(rule_ids) if rule_ids else {r.id for r in policy.rules}
    for rule_id in wanted:
        policy.rule(rule_id)
    order = [rule_id for stage in sweep_stages(policy) for rule_id in stage if rule_id in wanted]
    results: dict[str, RuleResult] = {}
    errors: dict[str, Exception] = {}
    for rule_id in order:
        failed_deps = [d for d in policy.rule(rule_id).after if d in errors]
        if failed_deps:
            errors[rule_id] = DependencyFailed(f"rule {rule_id!r} not swept: {', '.join(failed_deps)} failed first")
            continue
        try:
            results[rule_id] = sweep_rule(conn, s3, policy, rule_id, now, run_id, with_after=False, check=False, **kw)
        except (SweepError, psycopg2.Error) as exc:
            conn.rollback()
            errors[rule_id] = exc
    if errors:
        raise SweepFailed(list(results.values()), errors)
    skipped = {rule for rule, result in results.items() if result.skipped_locked}
    if settle and not kw.get("dry_run") and wanted - skipped:
        for extra in settle_rules(conn, s3, policy, now, run_id, sorted(wanted - skipped), **kw):
            results[extra.rule] = results[extra.rule].merged(extra) if extra.rule in results else extra
    return [results[r] for r in order if r in results]


def settle_rules(
    conn: Any,
    s3: Any,
    policy: Policy,
    now: datetime,
    run_id: str,
    rule_ids: list[str] | None = None,
    *,
    max_rounds: int = 3,
    **kw: Any,
) -> list[RuleResult]:
    """Sweep again the rules that have due records after the others ran.

    Removing records can only move other records' clocks earlier or change which rule governs them
    (a deleted account's saved products go: their photos fall to the next rule; an account goes:
    its uploads become guest uploads). A rule that already finished in this run then has new due
    records. Rounds of plan -> sweep until nothing is due (normally one plan, no sweep)."""
    merged: dict[str, RuleResult] = {}
    skipped: set[str] = set()  # another sweep holds it: that one finishes it
    for _ in range(max_rounds):
        due = [p.rule for p in plan(conn, policy, now, rule_ids) if (p.due or p.purging) and p.rule not in skipped]
        if not due:
            return list(merged.values())
        log.info("settling: %s have records due after the other rules ran", ", ".join(due))
        for result in sweep(conn, s3, policy, now, run_id, due, settle=False, **kw):
            merged[result.rule] = merged[result.rule].merged(result) if result.rule in merged else result
            if result.skipped_locked:
                skipped.add(result.rule)
    left = {
        p.rule: p.due + p.purging
        for p in plan(conn, policy, now, rule_ids)
        if (p.due or p.purging) and p.rule not in skipped
    }
    if left:
        raise SweepError(
            f"still due after {max_rounds} rounds: "
            + ", ".join(f"{rule} ({n})" for rule, n in sorted(left.items()))
            + "; rules keep making each other's records due; see docs/runbook.md"
        )
    return list(merged.values())


class SweepFailed(SweepError):
    def __init__(self, results: list[RuleResult], errors: dict[str, Exception]):
        self.results, self.errors = results, errors
        self.retryable = all(getattr(e, "retryable", True) for e in errors.values())
        lines = [f"{len(errors)} rule(s) failed:"] + [f"  - {rule}: {error}" for rule, error in errors.items()]
        super().__init__("\n".join(lines))


# --- internals ----------------------------------------------------------------------------------


@contextmanager
def _rule_lock(conn: Any, rule_id: str, wait: float) -> Iterator[bool]:
    """A session advisory lock on the rule, held across the rule's many short transactions."""
    key = lock_key(rule_id)
    deadline = time.monotonic() + max(0.0, wait)
    got = False
    while True:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(%s, %s)", (LOCK_NAMESPACE, key))
            got = cur.fetchone()[0]
        conn.commit()
        if got or time.monotonic() >= deadline:
            break
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
    try:
        yield got
    finally:
        if got:
            conn.rollback()
            with conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_NAMESPACE, key))
            conn.commit()


def _dry_result(conn: Any, policy: Policy, rule_id: str, now: datetime, opts: Options) -> RuleResult:
    try:
        with conn.cursor() as cur:
            cur.execute("SET TRANSACTION READ ONLY")
        p = _plan_rule(conn, policy, rule_id, now, Holds.at(conn, now), opts)
    finally:
        conn.rollback()
    rule = policy.rule(rule_id)
    result = RuleResult(
        rule.id,
        list(rule.requirements),
        rule.action.type,
        held=p.held,
        strategy=p.strategy,
        partitions_dropped=len(p.partitions_to_drop),
        dry_run=True,
    )
    if isinstance(rule.action, AnonymiseAction):
        result.anonymised = p.due
    else:
        result.deleted = p.due + p.purging
    result.objects_purged = p.objects
    return result


def chunk_count(conn: Any, target: Target, opts: Options, *, removed: int = 0, per_chunk: int | None = None) -> int:
    """How many chunks a due set is computed, verified or planned in: 1 unless the clock views have
    a ``chunk`` column; else ``opts.chunks``, or one per ``per_chunk`` (default ``chunk_rows``) rows
    of the table (its statistics, or its size where it was never analysed) less the ``removed`` rows
    a sweep has already anonymised or deleted (they are no longer in the view), at most MAX_CHUNKS.
    Ends its (catalogue-only) transaction."""
    if not target.chunked:
        return 1
    if opts.chunks:
        return max(1, min(MAX_CHUNKS, opts.chunks))
    with conn.cursor() as cur:
        cur.execute(
            "SELECT coalesce(sum(CASE WHEN c.reltuples >= 0 THEN c.reltuples ELSE "
            "pg_relation_size(c.oid) / current_setting('block_size')::int * %s END), 0) "
            "FROM pg_class c WHERE c.oid = %s::regclass AND c.relkind = 'r' "
            "OR c.oid IN (SELECT relid FROM pg_partition_tree(%s::regclass) WHERE isleaf)",
            (ROWS_PER_PAGE_GUESS, target.table, target.table),
        )
        rows = max(0.0, float(cur.fetchone()[0]) - removed)
    conn.commit()
    return max(1, min(MAX_CHUNKS, math.ceil(rows / max(1, per_chunk or opts.chunk_rows))))


def count_due(
    conn: Any, sel: Selection, opts: Options, *, removed: int = 0, read_only: bool = False
) -> tuple[int, int]:
    """(due and not held, due but held) of a selection, chunk by chunk for a clock view with a
    ``chunk`` column (RET-3), each chunk its own short transaction (READ ONLY and rolled back with
    ``read_only``, as a plan's): a record is in one chunk, so the sums are the counts. Chunks hold
    VERIFY_CHUNK_FACTOR x ``chunk_rows`` rows (a count neither joins nor writes); one transaction
    for other clocks."""
    chunks = chunk_count(conn, sel.target, opts, removed=removed, per_chunk=VERIFY_CHUNK_FACTOR * opts.chunk_rows)
    due = held = 0
    for chunk in range(chunks):
        with conn.cursor() as cur:
            if read_only:
                cur.execute("SET TRANSACTION READ ONLY")
            cur.execute(sel.counts(chunked=chunks > 1), {**sel.params, "chunks": chunks, "chunk": chunk})
            chunk_due, chunk_held = cur.fetchone()
        if read_only:
            conn.rollback()
        else:
            conn.commit()
        due, held = due + chunk_due, held + chunk_held
    return due, held


def _plan_rule(conn: Any, policy: Policy, rule_id: str, now: datetime, holds: Holds, opts: Options) -> RulePlan:
    target = load_target(conn, policy, rule_id)
    sel = Selection(target, now, holds)
    rule = target.rule
    p = RulePlan(
        rule=rule.id,
        requirements=list(rule.requirements),
        action=rule.action.type,
        table=rule.table,
        window=target.window.iso,
        now=now.isoformat().replace("+00:00", "Z"),
    )
    with conn.cursor() as cur:
        if target.drops_partitions:
            p.strategy = "partitions"
            for part in list_partitions(conn, target.table, now, target.window):
                if part.none_expired:
                    continue
                if part.fully_expired and not _has_held_rows(cur, sel, part):
                    cur.execute(sql.SQL("SELECT count(*) FROM {}").format(part.ident))
                    rows = cur.fetchone()[0]
                    p.partitions_to_drop.append(part.qualified)
                    p.partition_rows += rows
                    p.due += rows
                    continue
                cur.execute(sel.counts(relation=part.ident), sel.params)
                due, held = cur.fetchone()
                p.due, p.held = p.due + due, p.held + held
        else:
            p.strategy = _choose_strategy(cur, sel, opts)
            conn.rollback()
            p.due, p.held = count_due(conn, sel, opts, read_only=True)  # as the sweep verifies
            cur.execute("SET TRANSACTION READ ONLY")
        if target.purges_objects:
            cur.execute(
                sql.SQL("SELECT count(*) FROM ({}) x").format(
                    sel.purging_rows(sql.SQL("t.{}").format(sql.Identifier(target.key)))
                ),
                sel.params,
            )
            p.purging = cur.fetchone()[0]
            p.objects = p.due + p.purging
    return p


def _has_held_rows(cur: Any, sel: Selection, part: Partition) -> bool:
    if sel.rule_held:
        return True
    clauses = sel.held_clauses("t")
    if not clauses:
        return False
    cur.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {} t WHERE {})").format(part.ident, sel.held("t")), sel.params)
    return cur.fetchone()[0]


def _choose_strategy(cur: Any, sel: Selection, opts: Options) -> str:
    """Blocks for a direct clock with many rows due (one pass, no sort), work otherwise."""
    target = sel.target
    if target.direct_clock is None:
        return "work"
    if opts.strategy != "auto":
        return opts.strategy
    cur.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", (target.table,))
    total = cur.fetchone()[0]
    if total is None or total <= 0:
        return "blocks"  # never analysed: a pass over a table too new to have statistics is cheap
    cur.execute(
        sql.SQL("EXPLAIN (FORMAT JSON) SELECT 1 FROM {} t WHERE t.{} <= %(index_bound)s").format(
            ident(target.table), sql.Identifier(target.direct_clock)
        ),
        sel.params,
    )
    estimate = cur.fetchone()[0][0]["Plan"]["Plan Rows"]
    return "blocks" if estimate >= DENSE_FRACTION * total else "work"


class _Sweeper:
    """One rule's execution: batches, evidence, verification."""

    def __init__(self, conn: Any, s3: Any, policy: Policy, rule_id: str, now: datetime, run_id: str, opts: Options):
        self.conn, self.s3, self.policy, self.now, self.run_id, self.opts = conn, s3, policy, now, run_id, opts
        self.holds = Holds.at(conn, now)
        conn.commit()
        self.target: Target = load_target(conn, policy, rule_id)
        conn.commit()
        self.sel = Selection(self.target, now, self.holds)
        rule = self.target.rule
        self.result = RuleResult(rule.id, list(rule.requirements), rule.action.type)
        self.object_failures: dict[tuple[str, str], str] = {}
        self.versioned: dict[str, bool] = {}

    # --- orchestration ---

    def run(self) -> RuleResult:
        start = time.perf_counter()
        t = self.target
        if t.purges_objects:
            self._finish_purging()
        with self.conn.cursor() as cur:
            strategy = "partitions" if t.drops_partitions else _choose_strategy(cur, self.sel, self.opts)
        self.conn.commit()
        self.result.strategy = strategy
        remaining = None
        for attempt in range(3):
            before = self._effect()
            if strategy == "partitions":
                self._partitions()
            elif strategy == "blocks":
                for schema, name in self._heap_relations():
                    self._blocks(sql.Identifier(schema, name), name)
            else:
                self._work()
            if self.object_failures:
                break
            remaining, held = self._remaining()
            self.result.held = held
            if remaining == 0:
                break
            # Rows changed under the pass: moved by an update, or newly governed by this rule because a
            # rule running beside it removed what another rule's clock hung on (a deleted account's saved
            # products). Another pass picks them up; what survives three passes fails verification.
            log.info(
                "rule %s: %d due record(s) left after pass %d (%d removed in it); sweeping again",
                t.rule.id,
                remaining,
                attempt + 1,
                self._effect() - before,
            )
        if t.drops_partitions:
            created, conflicts = ensure_ahead(
                self.conn,
                t.table,
                self.now,
                behind=self.opts.partitions_behind,
                ahead=self.opts.partitions_ahead,
                lock_timeout=self.opts.lock_timeout,
            )
            self.result.partitions_created = created
            if conflicts:
                log.warning(
                    "rule %s: %d hour(s) not partitioned, the default partition holds rows of them",
                    t.rule.id,
                    len(conflicts),
                )
        self.result.seconds = time.perf_counter() - start
        if self.object_failures:
            raise ObjectPurgeFailed(t.rule.id, len(self.object_failures), _count(self.object_failures.values()))
        if remaining:
            raise VerifyFailed(t.rule.id, remaining)
        self._summary()
        log.info("rule %s: %s", t.rule.id, self.result.to_dict())
        return self.result

    def _effect(self) -> int:
        r = self.result
        return r.deleted + r.anonymised + r.tombstoned + r.partitions_dropped

    def _remaining(self) -> tuple[int, int]:
        """Verify: the same selection again; due-and-not-held must be 0. Tombstones this sweep could
        not finish fail it before (ObjectPurgeFailed); 'purging' rows another rule is finishing right
        now are that rule's. Counted as ``count_due`` does, of the rows still in the view (those this
        sweep anonymised or deleted are out of it)."""
        return count_due(self.conn, self.sel, self.opts, removed=self.result.anonymised + self.result.deleted)

    # --- batches ---

    def _batch(
        self,
        step: str,
        work: Callable[[Any], dict[str, int]],
        details: dict[str, Any],
        *,
        durable: bool = False,
        evidence: bool = True,
    ) -> dict[str, int]:
        """One short transaction: the effect, then its evidence, then commit (retried when the shop's
        locks or the statement timeout got in the way)."""
        for attempt in range(BATCH_RETRIES + 1):
            start = time.perf_counter()
            try:
                with self.conn.cursor() as cur:
                    # One round trip for the batch's settings (a batch is a few milliseconds).
                    asynchronous = not (durable or self.opts.synchronous_commit)
                    cur.execute(
                        "SET LOCAL statement_timeout = %s; SET LOCAL lock_timeout = %s"
                        + ("; SET LOCAL synchronous_commit = off" if asynchronous else ""),
                        (self.opts.statement_timeout, self.opts.lock_timeout),
                    )
                    counts = work(cur)
                    if evidence and any(counts.values()):  # else ``work`` recorded its own
                        seconds = round(time.perf_counter() - start, 4)
                        self._evidence(cur, "sweep_batch", step, counts, {**details, "seconds": seconds})
                self.conn.commit()
            except TRANSIENT as exc:
                self.conn.rollback()
                if attempt == BATCH_RETRIES:
                    raise BatchFailed(
                        f"rule {self.target.rule.id!r}, batch {step}: {type(exc).__name__} "
                        f"{BATCH_RETRIES + 1} times (the shop holds locks or the batch is too big; "
                        "lower --batch-size)"
                    ) from None
                time.sleep(0.2 * 2**attempt)
                continue
            except BaseException:
                self.conn.rollback()
                raise
            elapsed = time.perf_counter() - start
            self.result.batches += 1
            self.result.max_batch_seconds = max(self.result.max_batch_seconds, elapsed)
            return counts
        raise AssertionError("unreachable")

    def _evidence(self, cur: Any, kind: str, step: str, counts: dict[str, int], details: dict[str, Any]) -> None:
        t = self.target
        details = {"table": t.table, "action": t.action, "window": t.window.iso, **details}
        params = {
            "kind": kind,
            "run": self.run_id,
            "rule": t.rule.id,
            "step": step,
            "requirements": list(t.rule.requirements),
            "as_of": self.now,
            "version": self.policy.version or None,
            "counts": Json(counts),
            "details": Json(details),
        }
        if kind == "sweep_batch":
            # A step already recorded in this run with a different effect (rows that became due after
            # the first attempt of this run, in the same range): recorded under step#n, never lost.
            # Counted and appended in one statement (one round trip per batch).
            cur.execute(
                "SELECT governance.append_evidence(%(kind)s, %(run)s, %(rule)s, "
                "CASE WHEN taken.n = 0 THEN %(step)s ELSE %(step)s || '#' || (taken.n + 1) END, "
                "%(requirements)s, %(as_of)s, %(version)s, %(counts)s, %(details)s) "
                "FROM (SELECT count(*) AS n FROM governance.evidence WHERE kind = %(kind)s AND run_id = %(run)s "
                "AND rule_id = %(rule)s AND (step = %(step)s OR left(step, length(%(step)s) + 1) = %(step)s || '#')"
                ") AS taken",
                params,
            )
            return
        cur.execute(
            "SELECT governance.append_evidence(%(kind)s, %(run)s, %(rule)s, %(step)s, %(requirements)s, "
            "%(as_of)s, %(version)s, %(counts)s, %(details)s)",
            params,
        )

    def _tally(self, counts: dict[str, int]) -> None:
        r = self.result
        r.deleted += counts.get("deleted", 0)
        r.anonymised += counts.get("anonymised", 0)
        r.tombstoned += counts.get("tombstoned", 0)
        r.objects_purged += counts.get("objects_deleted", 0)
        r.object_errors += counts.get("object_errors", 0)
        r.partitions_dropped += counts.get("partitions_dropped", 0)
        r.rows_estimated += counts.get("rows_estimated", 0)

    # --- what a batch does to the rows it selects ---

    def _apply(
        self,
        relation: sql.Composable,
        where: sql.Composable,
        step: str,
        details: dict[str, Any],
        params: dict[str, Any],
        using: sql.Composable | None = None,
    ) -> int | None:
        """Run the rule's action on the rows of ``relation`` (alias t) matching ``where``; ``using`` is
        a subquery (alias w) joined to them, e.g. a slice of the work table. Returns the rows changed
        (None for an object purge, whose rows go in later steps)."""
        t = self.target
        all_params = {**self.sel.params, **params}
        joined = (
            sql.SQL(" {} ({}) w").format(sql.SQL("FROM" if (t.marker or t.purges_objects) else "USING"), using)
            if using is not None
            else sql.SQL("")
        )
        if t.purges_objects:
            self._purge_batch(relation, where, step, details, all_params, joined)
            return None
        if t.marker:
            assignments, mask_params = self._masking()
            all_params.update(mask_params)
            statement = sql.SQL("UPDATE {rel} t SET {set}{joined} WHERE {where}").format(
                rel=relation, set=assignments, joined=joined, where=where
            )
            label = "anonymised"
        else:
            statement = sql.SQL("DELETE FROM {rel} t{joined} WHERE {where}").format(
                rel=relation, joined=joined, where=where
            )
            label = "deleted"

        def work(cur: Any) -> dict[str, int]:
            cur.execute(statement, all_params)
            return {label: cur.rowcount}

        counts = self._batch(step, work, details)
        self._tally(counts)
        return counts[label]

    def _masking(self) -> tuple[sql.Composable, dict[str, Any]]:
        """RET-8: each personal column gets its strategy's value (set_null, fixed_value; never a hash)."""
        action = self.target.rule.action
        assert isinstance(action, AnonymiseAction)
        parts, params = [], {}
        for i, (column, strategy) in enumerate(action.columns.items()):
            text, values = strategy.sql_value()
            pieces = text.split("%s")
            if len(pieces) - 1 != len(values):
                raise ValueError(
                    f"masking strategy {strategy.name!r} gave {len(values)} value(s) for "
                    f"{len(pieces) - 1} placeholder(s)"
                )
            expr: list[sql.Composable] = [sql.SQL(pieces[0])]
            for j, value in enumerate(values):
                name = f"mask_{i}_{j}"
                params[name] = value
                expr += [sql.Placeholder(name), sql.SQL(pieces[j + 1])]
            parts.append(sql.SQL("{} = {}").format(sql.Identifier(column), sql.Composed(expr)))
        parts.append(sql.SQL("{} = %(now)s").format(sql.Identifier(action.marker_column)))
        return sql.SQL(", ").join(parts), params

    def _purge_batch(
        self,
        relation: sql.Composable,
        where: sql.Composable,
        step: str,
        details: dict[str, Any],
        params: dict[str, Any],
        joined: sql.Composable,
    ) -> None:
        """Tombstone (commit), delete the objects, then the rows whose objects are all gone."""
        t = self.target
        objects = t.store.objects
        tombstoned: list[tuple[Any, str, str]] = []

        def mark(cur: Any) -> dict[str, int]:
            cur.execute(
                sql.SQL(
                    "UPDATE {rel} t SET state = 'purging'{joined} WHERE {where} RETURNING t.{key}, t.{b}, t.{k}"
                ).format(
                    rel=relation,
                    joined=joined,
                    where=where,
                    key=sql.Identifier(t.key),
                    b=sql.Identifier(objects.bucket_column),
                    k=sql.Identifier(objects.key_column),
                ),
                params,
            )
            tombstoned[:] = cur.fetchall()
            return {"tombstoned": len(tombstoned)}

        self._tally(self._batch(f"{step}/tombstone", mark, details, durable=True))  # before any object goes
        if tombstoned:
            self._purge_rows(tombstoned, step, details)

    def _purge_rows(self, rows: list[tuple[Any, str, str]], step: str, details: dict[str, Any]) -> None:
        objects = self.target.store.objects
        allowed, outside = [], {}
        for key, bucket, object_key in rows:
            if bucket in objects.buckets and object_key.startswith(objects.prefix):
                allowed.append((key, bucket, object_key))
            else:  # never delete what the policy does not name; the row stays 'purging' and is reported
                outside[(bucket, object_key)] = "OutsidePolicyBuckets"
        outcome: PurgeOutcome = purge_objects(self.s3, [(b, k) for _, b, k in allowed], versioned_cache=self.versioned)
        outcome.failed.update(outside)
        self.object_failures.update(outcome.failed)
        done = [key for key, bucket, object_key in allowed if (bucket, object_key) in outcome.gone]
        failed = len(rows) - len(done)

        def remove(cur: Any) -> dict[str, int]:
            cur.execute(
                sql.SQL("DELETE FROM {tbl} t WHERE t.{key} = ANY(%(done)s) AND t.state = 'purging'").format(
                    tbl=ident(self.target.table), key=sql.Identifier(self.target.key)
                ),
                {"done": done},
            )
            return {"deleted": cur.rowcount, "objects_deleted": outcome.versions_deleted, "object_errors": failed}

        counts = self._batch(
            step, remove, {**details, "object_error_codes": outcome.error_codes} if failed else details
        )
        self._tally(counts)

    def _finish_purging(self) -> None:
        """Rows left 'purging' by an interrupted sweep: their objects may be half gone; finish them."""
        t = self.target
        objects = t.store.objects
        with self.conn.cursor() as cur:
            cur.execute(
                sql.SQL("SELECT k FROM ({}) x ORDER BY k").format(
                    self.sel.purging_rows(sql.SQL("t.{} AS k").format(sql.Identifier(t.key)))
                ),
                self.sel.params,
            )
            keys = [row[0] for row in cur.fetchall()]
        self.conn.commit()
        size = max(1, self.opts.batch_size)
        for start in range(0, len(keys), size):
            chunk = keys[start : start + size]
            with self.conn.cursor() as cur:
                cur.execute(
                    sql.SQL(
                        "SELECT t.{key}, t.{b}, t.{k} FROM {tbl} t WHERE t.{key} = ANY(%s) "
                        "AND t.state = 'purging' ORDER BY 1"
                    ).format(
                        key=sql.Identifier(t.key),
                        b=sql.Identifier(objects.bucket_column),
                        k=sql.Identifier(objects.key_column),
                        tbl=ident(t.table),
                    ),
                    (chunk,),
                )
                rows = cur.fetchall()
            self.conn.commit()
            if rows:
                self._purge_rows(rows, f"resume {chunk[0]}-{chunk[-1]}", {"strategy": "resume"})

    # --- strategies ---

    def _heap_relations(self) -> list[tuple[str, str]]:
        """The table itself, or its leaf partitions (ctid ranges are per heap relation)."""
        t = self.target
        if not t.partitioned:
            return [tuple(t.table.split(".", 1))]
        with self.conn.cursor() as cur:
            cur.execute(
                "SELECT n.nspname, c.relname FROM pg_partition_tree(%s::regclass) p "
                "JOIN pg_class c ON c.oid = p.relid JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE p.isleaf ORDER BY 1, 2",
                (t.table,),
            )
            rows = cur.fetchall()
        self.conn.commit()
        return rows

    def _pages_per_batch(self, relation: sql.Composable) -> tuple[int, int]:
        """(heap pages now, pages per batch): batch_pages, or batch_size rows at the table's density."""
        with self.conn.cursor() as cur:
            cur.execute(
                sql.SQL(
                    "SELECT pg_relation_size(c.oid) / current_setting('block_size')::int, c.reltuples, c.relpages "
                    "FROM pg_class c WHERE c.oid = {}::regclass"
                ).format(sql.Literal(relation.as_string(cur)))
            )
            pages, tuples, relpages = cur.fetchone()
        self.conn.commit()
        if self.opts.batch_pages:
            return pages, self.opts.batch_pages
        per_page = tuples / relpages if tuples and tuples > 0 and relpages else 60.0
        return pages, max(1, int(self.opts.batch_size / max(per_page, 1.0)))

    def _blocks(self, relation: sql.Identifier, name: str) -> None:
        """Batches over ranges of heap pages, each deleting the due, unheld rows it finds there.

        After a batch that found nothing, a read-only probe looks for the next page holding a due row
        (``SELECT ctid … LIMIT 1`` over at most PROBE_BATCHES batches' worth of pages: a TID range scan
        stops at the first hit) and the batches resume there: a table whose due rows sit in one part
        (visits, in clock order) is not worked through in hundreds of empty transactions. Pages the
        probe passed over held nothing due when it read them; the verification pass still counts
        every due row of the table afterwards."""
        pages, per_batch = self._pages_per_batch(relation)
        due = sql.SQL(" AND ").join(
            [
                self.sel.row_filter("t"),
                self.sel.direct_due("t"),
                sql.SQL("NOT ({} OR {})").format(self.sel.rule_held_sql(), self.sel.held("t")),
            ]
        )
        probe = sql.SQL(
            "SELECT (t.ctid::text::point)[0]::bigint FROM {rel} t WHERE t.ctid >= %(lo)s::tid "
            "AND t.ctid < %(hi)s::tid AND {due} LIMIT 1"
        ).format(rel=relation, due=due)
        start = 0
        while True:
            last = start + per_batch >= pages
            if last:
                where = sql.SQL("t.ctid >= %(lo)s::tid AND ") + due
                step, params = f"{name} blocks {start}-end", {"lo": f"({start},0)"}
            else:
                where = sql.SQL("t.ctid >= %(lo)s::tid AND t.ctid < %(hi)s::tid AND ") + due
                step = f"{name} blocks {start}-{start + per_batch}"
                params = {"lo": f"({start},0)", "hi": f"({start + per_batch},0)"}
            changed = self._apply(relation, where, step, {"strategy": "blocks", "relation": name}, params)
            if last:
                break
            start += per_batch
            while changed == 0 and start + per_batch < pages:
                # Nothing here: probe ahead (read only, no row lock) for the next page with a due row.
                hi = min(pages, start + per_batch * PROBE_BATCHES)
                with self.conn.cursor() as cur:
                    cur.execute("SET LOCAL statement_timeout = %s", (self.opts.statement_timeout,))
                    cur.execute(probe, {**self.sel.params, "lo": f"({start},0)", "hi": f"({hi},0)"})
                    found = cur.fetchone()
                self.conn.commit()
                self.result.probes += 1
                if found is not None:
                    start = max(start, int(found[0]))
                    break
                start = hi  # the last batch (from here to the end) always runs: pages added since
                changed = 0

    def _compute_work(self, work: sql.Identifier) -> int:
        """The due, unheld rows into the work table: one read-only pass, or one per chunk of the
        records (``_chunks``), each chunk its own short transaction. Returns the rows.

        One pass writes the table in (rel, tid) order; chunks are appended as they come and the table
        is then put in that order (``_order_work``): slices of its pages are ranges of the heap either way."""
        t, sel = self.target, self.sel
        chunks = chunk_count(self.conn, self.target, self.opts)
        columns = sql.SQL("t.tableoid AS rel, t.ctid AS tid, t.{} AS rec").format(sql.Identifier(t.key))
        rows = 0
        for chunk in range(chunks):
            due = sql.SQL("SELECT * FROM ({}) c").format(
                sel.candidates(lambda _: columns, not_held=True, chunked=chunks > 1)
            )
            params = {**sel.params, "chunks": chunks, "chunk": chunk}
            with self.conn.cursor() as cur:
                cur.execute("SET LOCAL statement_timeout = %s", (self.opts.compute_timeout,))
                if chunk == 0:
                    cur.execute(sql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(work))
                if chunks == 1:
                    cur.execute(sql.SQL("CREATE TEMP TABLE {} AS {} ORDER BY rel, tid").format(work, due), params)
                else:
                    if chunk == 0:  # the columns' types, then every chunk alike (ordered by _order_work)
                        cur.execute(sql.SQL("CREATE TEMP TABLE {} AS {} WITH NO DATA").format(work, due), params)
                    cur.execute(sql.SQL("INSERT INTO pg_temp.{} {}").format(work, due), params)
                rows += cur.rowcount
            self.conn.commit()
        if chunks > 1 and rows:
            self._order_work(work)
        log.info("rule %s: %d row(s) due and not held, computed in %d chunk(s)", t.rule.id, rows, chunks)
        return rows

    def _order_work(self, work: sql.Identifier) -> None:
        """Put the chunked work table in (rel, tid) order: one sort of the work table alone (three
        narrow columns, ~0.25 s per 500,000 rows here), never of the rule's table.

        Why the order: slices are ranges of the work table's pages, so ordered, each slice is a
        range of the heap, each heap page is written by one batch, a slice mostly spans one
        partition, and its evidence step names a tid range no other step overlaps. Unordered, the
        N chunks' runs would make every batch touch pages all over the table (N visits per page)."""
        with self.conn.cursor() as cur:
            cur.execute("SET LOCAL statement_timeout = %s", (self.opts.compute_timeout,))
            cur.execute(
                sql.SQL("ALTER TABLE pg_temp.{} RENAME TO {}").format(work, sql.Identifier(WORK_TABLE + "_runs"))
            )
            cur.execute(
                sql.SQL("CREATE TEMP TABLE {} AS SELECT * FROM pg_temp.{} ORDER BY rel, tid").format(
                    work, sql.Identifier(WORK_TABLE + "_runs")
                )
            )
            cur.execute(sql.SQL("DROP TABLE pg_temp.{}").format(sql.Identifier(WORK_TABLE + "_runs")))
        self.conn.commit()

    def _work(self) -> None:
        """The due set computed once into a temporary (relation, ctid, key) table in ctid order, then
        removed slice by slice (ranges of the work table's own pages), each by TID."""
        work = sql.Identifier(WORK_TABLE)
        try:
            rows = self._compute_work(work)
            with self.conn.cursor() as cur:
                cur.execute(
                    sql.SQL("SELECT pg_relation_size({}) / current_setting('block_size')::int").format(
                        sql.Literal(f"pg_temp.{WORK_TABLE}")
                    )
                )
                pages = cur.fetchone()[0]
            self.conn.commit()
            self._work_slices(work, rows, pages)
        finally:
            self.conn.rollback()
            with self.conn.cursor() as cur:
                cur.execute(sql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(work))
            self.conn.commit()

    def _work_slices(self, work: sql.Identifier, rows: int, pages: int) -> None:
        t, sel = self.target, self.sel
        per_batch = max(1, int(self.opts.batch_size * pages / rows)) if rows else 1
        bounds_list = [{"lo": f"({start},0)", "hi": f"({start + per_batch},0)"} for start in range(0, pages, per_batch)]
        if t.purges_objects and rows:
            # DeleteObjects takes up to 1,000 keys: slices of whole thousands of rows, so n objects cost
            # ceil(n / 1,000) requests (page slices hold ~batch_size rows, each batch a partial request).
            size = -(-max(1, self.opts.batch_size) // DELETE_OBJECTS_LIMIT) * DELETE_OBJECTS_LIMIT
            with self.conn.cursor() as cur:
                cur.execute(
                    sql.SQL(
                        "SELECT min(x.ctid)::text FROM (SELECT ctid, (row_number() OVER (ORDER BY ctid) - 1) / %s "
                        "AS s FROM pg_temp.{work}) x GROUP BY x.s ORDER BY x.s"
                    ).format(work=work),
                    (size,),
                )
                starts = [row[0] for row in cur.fetchall()]
            self.conn.commit()
            ends = starts[1:] + [f"({pages + 1},0)"]
            bounds_list = [{"lo": lo, "hi": hi} for lo, hi in zip(starts, ends, strict=True)]
        # Each work row names its row by (ctid, key): joined, the planner runs a parameterised TID scan
        # per work row (no index, no hash, no sort), and the key check means a slot reused by another
        # row since the work table was computed is never touched.
        slice_ = sql.SQL(
            "SELECT w.tid, w.rec FROM pg_temp.{work} w WHERE w.ctid >= %(lo)s::tid "
            "AND w.ctid < %(hi)s::tid AND w.rel = %(rel)s"
        ).format(work=work)
        conds = [sql.SQL("t.ctid = w.tid"), sql.SQL("t.{} = w.rec").format(sql.Identifier(t.key)), sel.row_filter("t")]
        if t.direct_clock:
            conds.append(sel.direct_due("t"))
        where = sql.SQL(" AND ").join(conds)
        names: dict[int, tuple[str, str]] = {}
        for bounds in bounds_list:
            with self.conn.cursor() as cur:
                # the slice's relations (one, unless a partition boundary falls in it) and tid range
                cur.execute(
                    sql.SQL(
                        "SELECT w.rel, min(w.tid)::text, max(w.tid)::text FROM pg_temp.{work} w "
                        "WHERE w.ctid >= %(lo)s::tid AND w.ctid < %(hi)s::tid GROUP BY 1 ORDER BY 1"
                    ).format(work=work),
                    bounds,
                )
                parts = cur.fetchall()
                for rel, _, _ in parts:
                    if rel not in names:
                        cur.execute(
                            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n "
                            "ON n.oid = c.relnamespace WHERE c.oid = %s",
                            (rel,),
                        )
                        names[rel] = cur.fetchone()
            self.conn.commit()
            for rel, lo, hi in parts:
                schema, name = names[rel]
                self._apply(
                    sql.Identifier(schema, name),
                    where,
                    f"{name} tid {lo}-{hi}",
                    {"strategy": "work", "relation": name},
                    {**bounds, "rel": rel},
                    using=slice_,
                )

    def _partitions(self) -> None:
        """Drop partitions whose every row has expired; delete row-wise only where the cut-off falls."""
        t = self.target
        if self.sel.rule_held:
            return
        parts = list_partitions(self.conn, t.table, self.now, t.window)
        self.conn.commit()
        group: list[Partition] = []  # fully expired, unheld partitions: dropped together
        for part in parts:
            if part.none_expired:
                continue
            with self.conn.cursor() as cur:
                held_rows = part.fully_expired and _has_held_rows(cur, self.sel, part)
            self.conn.commit()
            if part.fully_expired and not held_rows:
                group.append(part)
                if len(group) >= DROPS_PER_TRANSACTION:
                    self._drop(group)
                    group = []
            else:
                self._blocks(part.ident, part.name)
        if group:
            self._drop(group)

    def _drop(self, parts: list[Partition]) -> None:
        """Drop a group of fully expired partitions in one short transaction, one evidence entry per
        partition carrying its row count. Committed like a delete batch (asynchronously unless
        ``synchronous_commit``): a crash loses drops and their evidence together, and the next run
        redoes them.

        The partitions are locked SHARE (writers out, readers go on) and counted in one statement
        (PostgreSQL may count them in parallel); only then is the parent locked ACCESS EXCLUSIVE, for
        the one DROP statement, so the shop's writes to the live partitions wait a few milliseconds,
        not for the counts. With ``partition_counts="exact"`` (the default) the count is ``count(*)``
        under that lock: what the DROP removes. With ``"estimated"`` it is ``pg_class.reltuples``
        (as of the last VACUUM or ANALYZE; a partition never analysed is counted exactly), recorded
        as ``rows_estimated``, never as ``deleted``: a sweep that skips reading the rows it drops
        (bench/README.md, "Tuning knobs") says so in its evidence."""
        parent = ident(self.target.table)
        estimated = self.opts.partition_counts == "estimated"

        def drop(cur: Any) -> dict[str, int]:
            start = time.perf_counter()
            relations = sql.SQL(", ").join(part.ident for part in parts)
            cur.execute(sql.SQL("LOCK TABLE {} IN SHARE MODE").format(relations))
            counts: dict[str, int | None] = {}
            if estimated:
                cur.execute(
                    "SELECT c.reltuples FROM unnest(%s::regclass[]) WITH ORDINALITY AS p(oid, i) "
                    "JOIN pg_class c ON c.oid = p.oid ORDER BY p.i",
                    ([part.qualified for part in parts],),
                )
                for part, (tuples,) in zip(parts, cur.fetchall(), strict=True):
                    counts[part.qualified] = int(tuples) if tuples >= 0 else None
            exact = [part for part in parts if counts.get(part.qualified) is None]
            if exact:
                cur.execute(
                    sql.SQL(" UNION ALL ").join(
                        sql.SQL("SELECT {}::int, count(*) FROM {}").format(sql.Literal(i), part.ident)
                        for i, part in enumerate(exact)
                    )
                )
                for i, rows in cur.fetchall():
                    counts[exact[i].qualified] = int(rows)
            counted = round(time.perf_counter() - start, 4)
            cur.execute(sql.SQL("LOCK TABLE ONLY {} IN ACCESS EXCLUSIVE MODE").format(parent))
            cur.execute(sql.SQL("DROP TABLE {}").format(relations))
            dropped = round(time.perf_counter() - start, 4)
            tally: dict[str, int] = {"deleted": 0, "rows_estimated": 0, "partitions_dropped": 0}
            exact_names = {part.qualified for part in exact}
            for part in parts:
                rows = counts[part.qualified] or 0
                key = "deleted" if part.qualified in exact_names else "rows_estimated"
                self._evidence(
                    cur,
                    "sweep_batch",
                    f"drop {part.name}",
                    {key: rows, "partitions_dropped": 1},
                    {
                        "strategy": "partitions",
                        "relation": part.name,
                        "group": len(parts),
                        "count": "exact" if key == "deleted" else "estimated (pg_class.reltuples)",
                        "group_counted_seconds": counted,
                        "group_dropped_seconds": dropped,
                    },
                )
                tally[key] += rows
                tally["partitions_dropped"] += 1
            return tally

        counts = self._batch(f"drop {parts[0].name}..{parts[-1].name}", drop, {}, evidence=False)
        self._tally(counts)

    # --- summary ---

    def _summary(self) -> None:
        """kind='sweep_rule': totals of every batch of this run for the rule (all attempts)."""
        t, r = self.target, self.result
        with self.conn.cursor() as cur:
            cur.execute(
                "SELECT c.key, sum(c.value::bigint) FROM governance.evidence e, jsonb_each_text(e.counts) c "
                "WHERE e.kind = 'sweep_batch' AND e.run_id = %s AND e.rule_id = %s GROUP BY c.key ORDER BY 1",
                (self.run_id, t.rule.id),
            )
            totals = {key: int(value) for key, value in cur.fetchall()}
            totals["held"] = r.held
            cur.execute(
                "SELECT count(*) FROM governance.evidence WHERE kind = 'sweep_rule' AND run_id = %s AND rule_id = %s",
                (self.run_id, t.rule.id),
            )
            summaries = cur.fetchone()[0]
            if summaries and not self._effect():
                self.conn.rollback()
                return  # a rerun that changed nothing records nothing
            # Cumulative over the run; a later pass with an effect (a retry, settling) adds summary#n.
            step = "summary" if not summaries else f"summary#{summaries + 1}"
            self._evidence(
                cur,
                "sweep_rule",
                step,
                totals,
                {
                    "strategy": r.strategy,
                    "verified_remaining": 0,
                    "attempt_seconds": round(r.seconds, 3),
                    "attempt_batches": r.batches,
                    "max_batch_seconds": round(r.max_batch_seconds, 4),
                    "partitions_created": r.partitions_created,
                },
            )
        self.conn.commit()


def _count(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out
