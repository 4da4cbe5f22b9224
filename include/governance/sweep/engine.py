"""The sweep's public API: ``check_policy``, ``plan``, ``sweep_rule``, ``sweep`` and
``settle_rules``. A rule is swept by ``governance.sweep.rule`` (a strategy cuts its due rows into
batches, an action acts on each, the batch runner commits each with its evidence); this module
orders rules (``after``), collects failures and settles (the settle retry layer,
``governance.retry``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import botocore.exceptions
import psycopg2
from psycopg2.extensions import connection

from governance.errors import (
    DatabaseConnectionLost,
    DependencyFailed,
    GovernanceError,
    ObjectStoreFailed,
    SweepError,
    SweepFailed,
)
from governance.notices.pseudonyms import pseudonym_key
from governance.notices.retention import KeySource
from governance.policy import Policy, require_database_match
from governance.retry import SETTLE_ROUNDS
from governance.settings import UNREACHABLE_SECTION
from governance.sweep.held import Holds
from governance.sweep.options import DEFAULT_BATCH_SIZE, Options
from governance.sweep.planning import dry_result, plan_rule
from governance.sweep.results import RulePlan, RuleResult
from governance.sweep.rule import RuleSweep, rule_lock
from governance.sweep.runner import SweepRun
from governance.sweep.stages import sweep_stages
from governance.windows import as_utc

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

# What an object-store call can raise besides our own errors (a ClientError a purge does not
# answer per key, an unreachable endpoint, missing credentials): the rule fails, not the sweep.
OBJECT_STORE_ERRORS = (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError)


def _s3_code(exc: Exception) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        return str(exc.response.get("Error", {}).get("Code") or "?")
    return "no answer" if not isinstance(exc, botocore.exceptions.NoCredentialsError) else "no credentials"


def check_policy(conn: connection, policy: Policy) -> None:
    """Every table, column, clock column and clock view the policy names must exist, before anything
    runs (the model itself refused cycles in ``after`` when the policy was loaded)."""
    require_database_match(policy, conn)


def plan(
    conn: connection, policy: Policy, now: datetime, rule_ids: list[str] | None = None, **options: Any
) -> list[RulePlan]:
    """Per rule, what a sweep at ``now`` would remove or anonymise. Read-only (READ ONLY transactions:
    one per rule, or one per chunk for a clock view with a ``chunk`` column, RET-3)."""
    check_policy(conn, policy)
    now = as_utc(now)
    ids = list(rule_ids) if rule_ids else [r.id for r in policy.rules]
    for rule_id in ids:
        policy.rule(rule_id)  # UnknownRule naming the valid rules
    plans = []
    try:
        with conn.cursor() as cur:
            cur.execute("SET TRANSACTION READ ONLY")
        holds = Holds.at(conn, now, policy)
        for rule_id in ids:
            plans.append(plan_rule(conn, policy, rule_id, now, holds, Options(**options)))
    finally:
        conn.rollback()
    return plans


def sweep_dependencies(
    conn: connection,
    s3: S3Client | None,
    policy: Policy,
    dependencies: Iterable[str],
    now: datetime,
    run_id: str,
    *,
    batch_size: int,
    notice_key: KeySource,
    **options: Any,
) -> bool:
    """Sweep the rules a rule comes ``after`` (whole; a no-op when done already in this run); False
    as soon as one is being swept elsewhere (its lock taken), so the rule is skipped this time."""
    for dependency in dependencies:
        done = sweep_rule(
            conn,
            s3,
            policy,
            dependency,
            now,
            run_id,
            batch_size=batch_size,
            check=False,
            notice_key=notice_key,
            **options,
        )
        if done.skipped_locked:
            log.info("rule %s is being swept elsewhere", dependency)
            return False
    return True


def sweep_rule(
    conn: connection,
    s3: S3Client | None,
    policy: Policy,
    rule_id: str,
    now: datetime,
    run_id: str,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    dry_run: bool = False,
    with_after: bool = True,
    check: bool = True,
    notice_key: KeySource = pseudonym_key,
    **options: Any,
) -> RuleResult:
    """Sweep one rule at ``now`` for run ``run_id``: plan, execute, verify.

    With ``with_after`` the rules it must come after are swept first (a no-op when done already in
    this run). A rerun of the same ``run_id`` changes nothing more and records nothing twice.
    ``notice_key``: the recipient pseudonym key, read when a batch queues notices (TP-5).
    """
    opts = Options(batch_size=batch_size, **options)
    if check:
        check_policy(conn, policy)
    now = as_utc(now)
    rule = policy.rule(rule_id)
    if dry_run:
        return dry_result(conn, policy, rule_id, now, opts)
    skipped = RuleResult(rule.id, list(rule.requirements), rule.action.type, skipped_locked=True)
    if with_after and not sweep_dependencies(
        conn, s3, policy, rule.after, now, run_id, batch_size=batch_size, notice_key=notice_key, **options
    ):
        log.info("rule %s: skipped, a rule it comes after is being swept elsewhere", rule_id)
        return skipped
    with rule_session(conn, rule_id):
        with rule_lock(conn, rule_id, opts.lock_wait) as locked:
            if not locked:
                log.info("rule %s: another sweep holds its lock; skipped", rule_id)
                return skipped
            return RuleSweep(conn, s3, SweepRun(policy, now, run_id, opts, notice_key), rule_id).run()


@contextmanager
def rule_session(conn: connection, rule_id: str) -> Iterator[None]:
    """A rule's work on ``conn``: its own transactions (autocommit off, restored after), a closed
    connection as one ``DatabaseConnectionLost``, an object store's error as ``ObjectStoreFailed``."""
    try:
        autocommit = conn.autocommit
        conn.autocommit = False
        try:
            yield
        finally:
            conn.rollback()
            conn.autocommit = autocommit
    except psycopg2.Error:
        if conn.closed:  # one message, not the chain of "connection already closed" of every cleanup
            raise DatabaseConnectionLost() from None
        raise
    except OBJECT_STORE_ERRORS as exc:
        raise ObjectStoreFailed(
            f"rule {rule_id!r}: object store: {type(exc).__name__} ({_s3_code(exc)}); the rule's records stay "
            f"until it answers, the other rules run; see {UNREACHABLE_SECTION}"
        ) from None


def sweep(
    conn: connection,
    s3: S3Client | None,
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
        except DatabaseConnectionLost:
            raise  # no rule can run on a closed connection
        except (GovernanceError, psycopg2.Error) as exc:  # this rule fails; unrelated rules still run
            conn.rollback()
            errors[rule_id] = exc
    if errors:
        raise SweepFailed(list(results.values()), errors)
    unlocked = wanted - {rule for rule, result in results.items() if result.skipped_locked}
    if settle and not kw.get("dry_run") and unlocked:
        for extra in settle_rules(conn, s3, policy, now, run_id, sorted(unlocked), **kw):
            results[extra.rule] = results[extra.rule].merged(extra) if extra.rule in results else extra
    return [results[r] for r in order if r in results]


def settle_rules(
    conn: connection,
    s3: S3Client | None,
    policy: Policy,
    now: datetime,
    run_id: str,
    rule_ids: list[str],
    *,
    max_rounds: int = SETTLE_ROUNDS,
    **kw: Any,
) -> list[RuleResult]:
    """Sweep again the rules that have due records after the others ran.

    Removing records can only move other records' clocks earlier or change which rule governs them
    (a deleted account's saved products go: their photos fall to the next rule; an account goes:
    its uploads become guest uploads). A rule that already finished in this run then has new due
    records. Rounds of plan -> sweep until nothing is due (normally one plan, no sweep)."""
    merged: dict[str, RuleResult] = {}
    skipped: set[str] = set()  # another sweep holds it: that one finishes it

    def still_due() -> dict[str, int]:
        plans = plan(conn, policy, now, rule_ids)
        return {p.rule: p.due + p.purging for p in plans if (p.due or p.purging) and p.rule not in skipped}

    for _ in range(max_rounds):
        due = list(still_due())
        if not due:
            return list(merged.values())
        log.info("settling: %s have records due after the other rules ran", ", ".join(due))
        for result in sweep(conn, s3, policy, now, run_id, due, settle=False, **kw):
            merged[result.rule] = merged[result.rule].merged(result) if result.rule in merged else result
            if result.skipped_locked:
                skipped.add(result.rule)
    left = still_due()
    if left:
        raise SweepError(
            f"still due after {max_rounds} rounds: "
            + ", ".join(f"{rule} ({n})" for rule, n in sorted(left.items()))
            + "; rules keep making each other's records due; see docs/runbook.md"
        )
    return list(merged.values())
