"""Running a sharded sweep (#14): ``sweep_shard`` sweeps one shard of a rule, ``finish_rule``
verifies the whole rule after its shards and records its summary; ``sweep_sharded`` does both
in one process (the CLI's ``--shards N`` without ``--shard``, the tests, the benchmark).

A shard (``governance.sweep.shards``) runs like a rule: its own session advisory locks (the rule's
shared, the shard's exclusive: shards run side by side, a whole-rule sweep of the rule waits),
batches each committed with their evidence (details name the shard, ``k/N``), passes until the
shard's own selection counts nothing due, and a kind='sweep_shard' entry with its totals. A
``whole`` shard (a rule that cannot be cut, or N = 1) is ``sweep_rule`` itself. The finish takes
the rule's lock exclusively, so it runs after every shard has let go: the whole rule's selection
must count nothing due (what is, is swept by whole-rule passes first), and the kind='sweep_rule'
summary totals every batch of the run, whichever shard committed it: the same entry, with the
same counts, as an unsharded sweep's.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from psycopg2.extensions import connection

from governance.errors import OptionError
from governance.notices.pseudonyms import pseudonym_key
from governance.notices.retention import KeySource
from governance.policy import Policy
from governance.sweep.engine import check_policy, rule_session, sweep_dependencies, sweep_rule
from governance.sweep.options import DEFAULT_BATCH_SIZE, Options
from governance.sweep.results import RuleResult
from governance.sweep.rule import RuleSweep, rule_lock, shard_lock
from governance.sweep.runner import SweepRun
from governance.sweep.shards import Shard, plan_shards, shard_kind
from governance.sweep.target import load_target
from governance.windows import as_utc

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)


def sweep_shard(
    conn: connection,
    s3: S3Client | None,
    policy: Policy,
    shard: Shard,
    now: datetime,
    run_id: str,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    dry_run: bool = False,
    check: bool = True,
    notice_key: KeySource = pseudonym_key,
    **options: Any,
) -> RuleResult:
    """Sweep one shard of a rule at ``now`` for run ``run_id``; a rerun changes and records nothing
    more. The rules the rule comes ``after`` are swept first (whole; a no-op when done already in
    this run). A dry run reports the whole rule's plan (shards cut execution, not the plan)."""
    if shard.count == 1 or dry_run:
        return sweep_rule(
            conn,
            s3,
            policy,
            shard.rule_id,
            now,
            run_id,
            batch_size=batch_size,
            dry_run=dry_run,
            check=check,
            notice_key=notice_key,
            **options,
        )
    opts = Options(batch_size=batch_size, **options)
    if check:
        check_policy(conn, policy)
    now = as_utc(now)
    rule = policy.rule(shard.rule_id)
    kind = shard_kind(load_target(conn, policy, rule.id))
    conn.rollback()
    if kind != shard.kind:
        raise OptionError(f"rule {rule.id!r} is cut into {kind} shards, not {shard.kind}")
    skipped = RuleResult(rule.id, list(rule.requirements), rule.action.type, skipped_locked=True)
    if not sweep_dependencies(
        conn, s3, policy, rule.after, now, run_id, batch_size=batch_size, notice_key=notice_key, **options
    ):
        log.info("rule %s shard %s: skipped, a rule it comes after is being swept elsewhere", rule.id, shard.label)
        return skipped
    with rule_session(conn, rule.id):
        with shard_lock(conn, rule.id, shard.label, opts.lock_wait) as locked:
            if not locked:
                log.info(
                    "rule %s shard %s: a whole-rule sweep or this shard's holds the lock; skipped", rule.id, shard.label
                )
                return skipped
            run = SweepRun(policy, now, run_id, opts, notice_key)
            return RuleSweep(conn, s3, run, rule.id, shard).run()


def finish_rule(
    conn: connection,
    s3: S3Client | None,
    policy: Policy,
    rule_id: str,
    shards: int,
    now: datetime,
    run_id: str,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    check: bool = True,
    notice_key: KeySource = pseudonym_key,
    **options: Any,
) -> RuleResult:
    """After the ``shards`` shards of ``rule_id``: verify the whole rule and record its summary
    (``RuleSweep.finish``). The result counts only what the finish itself swept, and the rule's
    held records. Nothing to do for a rule swept whole (``shards`` 1: ``sweep_rule`` verified it)."""
    rule = policy.rule(rule_id)
    if shards <= 1:
        return RuleResult(rule.id, list(rule.requirements), rule.action.type, strategy="whole")
    opts = Options(batch_size=batch_size, **options)
    if check:
        check_policy(conn, policy)
    now = as_utc(now)
    with rule_session(conn, rule.id):
        with rule_lock(conn, rule.id, opts.lock_wait) as locked:
            if not locked:
                log.info("rule %s: a shard or another sweep holds its lock; the finish is skipped", rule.id)
                return RuleResult(rule.id, list(rule.requirements), rule.action.type, skipped_locked=True)
            return RuleSweep(conn, s3, SweepRun(policy, now, run_id, opts, notice_key), rule.id).finish(shards)


def sweep_sharded(
    conn: connection,
    s3: S3Client | None,
    policy: Policy,
    rule_id: str,
    now: datetime,
    run_id: str,
    *,
    shards: int | None = None,
    **kw: Any,
) -> tuple[list[RuleResult], RuleResult]:
    """Every shard of the rule in turn, then its finish: (the shards' results, the finish's)."""
    check_policy(conn, policy)
    plan = plan_shards(conn, policy, rule_id, as_utc(now), 1 if kw.get("dry_run") else shards)
    results = [sweep_shard(conn, s3, policy, shard, now, run_id, check=False, **kw) for shard in plan]
    kw.pop("dry_run", None)
    return results, finish_rule(conn, s3, policy, rule_id, plan[0].count, now, run_id, check=False, **kw)
