"""``governance plan`` and ``governance sweep``: the retention sweep for people (the DAG runs the same code).

``plan`` shows per rule what a sweep at ``--now`` would remove or anonymise (counts, held counts,
partitions that would be dropped, objects that would be purged) and changes nothing.
``sweep`` runs it. The run id defaults to ``cli-<now>``: running the same ``--now`` again is a
rerun of the same run, which changes nothing more and records nothing twice.

Sharded (#14, ``governance.sweep.sharded``): ``sweep --rule R --shards N`` sweeps the rule's N
shards one after another and then finishes it (the whole rule verified, its summary recorded);
``--shard K`` sweeps shard K (0..N-1) alone, as one mapped task of the DAG does, and ``--finish``
only finishes. ``--shards 0`` is N from the table's size.

Exit codes: 0 done (or planned); 1 a rule failed (verify, objects that could not be deleted);
2 bad input (policy, settings, a shard that does not exist); 3 a rule was skipped because another
sweep holds it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

from governance.cli import now_of
from governance.cli.common import Subparsers, connection_of, lazy_s3_of, policy_of, positive_int
from governance.errors import OptionError
from governance.sweep.options import DEFAULT_BATCH_SIZE, MAX_SHARDS, PARTITION_COUNTS, STRATEGIES, Options
from governance.windows import iso

if TYPE_CHECKING:
    from governance.policy import Policy
    from governance.sweep.results import RuleResult

DEFAULTS = Options()
MAX_LOCK_WAIT = 86_400  # a day: longer is a typo, not a wait


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or not 0 <= value <= MAX_LOCK_WAIT:
        raise argparse.ArgumentTypeError(f"{text!r}: the wait is a number of seconds from 0 to {MAX_LOCK_WAIT}")
    return value


def register(subparsers: Subparsers, common: argparse.ArgumentParser) -> None:
    plan = subparsers.add_parser(
        "plan", parents=[common], help="what a retention sweep at --now would remove or anonymise (no effect)"
    )
    plan.add_argument("--rule", dest="rules", action="append", metavar="RULE", help="only this rule (repeatable)")
    plan.add_argument("--json", action="store_true", help="machine-readable output")
    plan.set_defaults(handler=run_plan)

    sweep = subparsers.add_parser("sweep", parents=[common], help="enforce the retention rules at --now")
    sweep.add_argument(
        "--rule",
        dest="rules",
        action="append",
        metavar="RULE",
        help="only this rule (repeatable); the rules it must come after are swept first",
    )
    sweep.add_argument(
        "--batch-size",
        type=positive_int,
        default=DEFAULT_BATCH_SIZE,
        help=f"rows per batch (default {DEFAULT_BATCH_SIZE})",
    )
    sweep.add_argument(
        "--batch-pages",
        type=positive_int,
        default=None,
        help="heap pages per block-range batch (default: from --batch-size and the table's density)",
    )
    sweep.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default=DEFAULTS.strategy,
        help=f"how batches are cut for a clock that is a column (default {DEFAULTS.strategy})",
    )
    sweep.add_argument(
        "--partition-counts",
        choices=PARTITION_COUNTS,
        default=DEFAULTS.partition_counts,
        help="rows of a dropped partition: exact = count(*), estimated = pg_class.reltuples, recorded as "
        f"rows_estimated (no read of the partition: faster, see bench/README.md); default {DEFAULTS.partition_counts}",
    )
    sweep.add_argument("--run-id", help="evidence run id (default cli-<now>; the same id again is a rerun)")
    sweep.add_argument(
        "--wait-lock",
        type=_seconds,
        default=DEFAULTS.lock_wait,
        metavar="SECONDS",
        help="wait this long for another sweep of the same rule (default: skip it at once)",
    )
    sweep.add_argument(
        "--shards",
        type=int,
        default=None,
        metavar="N",
        help="sweep the one --rule in N shards (0: N from the table's size), then verify the whole rule",
    )
    sweep.add_argument("--shard", type=int, default=None, metavar="K", help="with --shards N: only shard K (0..N-1)")
    sweep.add_argument(
        "--finish", action="store_true", help="with --shards N: only the final verification and summary of the rule"
    )
    sweep.add_argument("--dry-run", action="store_true", help="report what would be done; change nothing")
    sweep.add_argument("--json", action="store_true", help="machine-readable output")
    sweep.set_defaults(handler=run_sweep)


def run_plan(args: argparse.Namespace) -> int:
    from governance.sweep import plan

    policy = policy_of(args)
    now = now_of(args)
    conn = connection_of(args)
    try:
        plans = plan(conn, policy, now, args.rules)
    finally:
        conn.close()
    if args.json:
        print(
            json.dumps(
                {"now": iso(now), "policy_version": policy.version, "rules": [p.to_dict() for p in plans]}, indent=2
            )
        )
        return 0
    print(f"retention plan at {iso(now)} (policy {policy.version[:12]}); nothing is changed")
    print(f"{'rule':34} {'action':14} {'due':>9} {'held':>6} {'partitions':>10} {'objects':>8}  strategy")
    for p in plans:
        print(
            f"{p.rule:34} {p.action:14} {p.due:>9} {p.held:>6} {len(p.partitions_to_drop):>10} "
            f"{p.objects:>8}  {p.strategy}"
        )
    return 0


def check_shard_args(args: argparse.Namespace) -> None:
    """--shard and --finish need --shards; --shards needs one --rule; shard K of N must exist."""
    from governance.sweep.shards import check_shard

    if args.shards is None:
        if args.shard is not None or args.finish:
            raise OptionError("--shard K and --finish need --shards N (the rule's number of shards)")
        return
    if len(args.rules or []) != 1:
        raise OptionError("--shards N sweeps one rule: give exactly one --rule")
    if args.shards < 0 or args.shards > MAX_SHARDS:
        raise OptionError(f"--shards must be from 0 (from the table's size) to {MAX_SHARDS}, got {args.shards}")
    if args.shard is not None and args.finish:
        raise OptionError("--shard K sweeps one shard, --finish finishes the rule: give one of them")
    if args.shard is not None:
        if args.shards == 0:
            raise OptionError("--shard K needs the number of shards it is one of: --shards N, not 0")
        check_shard(args.shard, args.shards)


def sweep_shards(
    args: argparse.Namespace, conn: Any, s3: Any, policy: Policy, now: datetime, run_id: str, **kw: Any
) -> list[RuleResult]:
    """The results of ``--shards``: each shard's (labelled rule#k/N), then the finish's."""
    from dataclasses import replace

    from governance.sweep.sharded import finish_rule, sweep_shard, sweep_sharded
    from governance.sweep.shards import plan_shards

    rule = args.rules[0]
    if args.dry_run:
        results, _ = sweep_sharded(conn, s3, policy, rule, now, run_id, dry_run=True, **kw)
        return results
    if args.finish:
        return [finish_rule(conn, s3, policy, rule, args.shards, now, run_id, **kw)]
    if args.shard is not None:
        shards = plan_shards(conn, policy, rule, now, args.shards)
        if len(shards) == 1 and args.shards > 1:
            raise OptionError(
                f"rule {rule!r} cannot be cut into shards (a clock view without a chunk column, a table "
                "several rules share, or an object purge): sweep it whole, without --shards"
            )
        return [sweep_shard(conn, s3, policy, shards[args.shard], now, run_id, **kw)]
    done, finished = sweep_sharded(conn, s3, policy, rule, now, run_id, shards=args.shards or None, **kw)
    labels = [f"{rule}#{k}/{len(done)}" for k in range(len(done))] if len(done) > 1 else [rule]
    return [replace(r, rule=label) for r, label in zip(done, labels, strict=True)] + (
        [replace(finished, rule=f"{rule} (finish)")] if len(done) > 1 else []
    )


def run_sweep(args: argparse.Namespace) -> int:
    from governance.sweep import SweepFailed, sweep

    check_shard_args(args)
    policy = policy_of(args)
    now = now_of(args)
    run_id = args.run_id or f"cli-{iso(now)}"
    conn = connection_of(args)
    s3 = lazy_s3_of(args)  # connects only when a rule touches objects: an S3 outage fails those rules only
    errors: dict[str, Exception] = {}
    options = {
        "batch_size": args.batch_size,
        "batch_pages": args.batch_pages,
        "strategy": args.strategy,
        "lock_wait": args.wait_lock,
        "partition_counts": args.partition_counts,
    }
    try:
        if args.shards is not None:
            results = sweep_shards(args, conn, s3, policy, now, run_id, **options)
        else:
            results = sweep(conn, s3, policy, now, run_id, args.rules, dry_run=args.dry_run, **options)
    except SweepFailed as exc:  # some rules failed: report every rule, then exit 1
        results, errors = exc.results, exc.errors
    finally:
        conn.close()
    if args.json:
        print(
            json.dumps(
                {
                    "now": iso(now),
                    "run_id": run_id,
                    "policy_version": policy.version,
                    "rules": [r.to_dict() for r in results],
                    "errors": {rule: str(e) for rule, e in errors.items()},
                },
                indent=2,
            )
        )
    else:
        verb = "dry run" if args.dry_run else "sweep"
        print(f"retention {verb} at {iso(now)}, run {run_id} (policy {policy.version[:12]})")
        print(
            f"{'rule':34} {'deleted':>9} {'anonymised':>10} {'objects':>8} {'dropped':>7} {'held':>6} "
            f"{'batches':>7} {'seconds':>8} {'longest':>8}"
        )
        for r in results:
            note = "  SKIPPED: another sweep holds this rule" if r.skipped_locked else ""
            print(
                f"{r.rule:34} {r.deleted:>9} {r.anonymised:>10} {r.objects_purged:>8} {r.partitions_dropped:>7} "
                f"{r.held:>6} {r.batches:>7} {r.seconds:>8.2f} {r.max_batch_seconds:>8.3f}{note}"
            )
        for rule, error in errors.items():
            print(f"FAILED {rule}: {error}", file=sys.stderr)
    if errors:
        return 1
    return 3 if any(r.skipped_locked for r in results) else 0
