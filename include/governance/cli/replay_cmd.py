"""``governance erasure replay --since ISO [--dry-run] [--json]``: after a restore from a backup,
apply again every erasure the ledger outside the database recorded at or after ``--since`` (ERA-1;
``governance.erasure.replay``). Output is request ids and counts only, never a person.
"""

from __future__ import annotations

import argparse
import json
from contextlib import closing
from datetime import datetime

from governance.anchors import evidence_key
from governance.cli import now_of
from governance.cli.common import Subparsers, connection_of, policy_of, s3_of
from governance.windows import WindowError, parse_instant


def _since(text: str) -> datetime:
    try:
        return parse_instant(text)
    except WindowError as exc:
        raise argparse.ArgumentTypeError(f"--since: {exc}") from None


def register(subparsers: Subparsers, common: argparse.ArgumentParser) -> None:
    erasure = subparsers.choices.get("erasure") or subparsers.add_parser(
        "erasure", help="the erasure ledger outside the database (ERA-1)"
    )
    group = next((a for a in erasure._actions if isinstance(a, argparse._SubParsersAction)), None)
    if group is None:
        group = erasure.add_subparsers(dest="erasure_command", required=True, metavar="SUBCOMMAND")
    replay = group.add_parser(
        "replay",
        parents=[common],
        help="after a restore from a backup, apply again every erasure recorded at or after --since",
    )
    replay.add_argument(
        "--since",
        type=_since,
        required=True,
        metavar="ISO",
        help="the instant of the dump restored, e.g. 2026-12-02T03:00:00Z",
    )
    replay.add_argument("--dry-run", action="store_true", help="print what would be erased; change nothing")
    replay.add_argument(
        "--allow-unsigned",
        action="store_true",
        help="accept entries without a MAC although an evidence key is set (written before the key was)",
    )
    replay.add_argument("--json", action="store_true", help="machine-readable output")
    replay.set_defaults(handler=run_replay)


def run_replay(args: argparse.Namespace) -> int:
    from governance.erasure.replay import replay

    policy = policy_of(args)
    now = now_of(args)
    with closing(connection_of(args)) as conn:
        outcome = replay(
            conn,
            s3_of(args),
            policy,
            args.since,
            now=now,
            dry_run=args.dry_run,
            key=evidence_key(),
            allow_unsigned=args.allow_unsigned,
        )
    if args.json:
        print(json.dumps(outcome.to_dict(), indent=2, sort_keys=True))
        return 0
    print(
        f"erasure replay since {outcome.since}: {outcome.entries} erasure(s) in the ledger"
        + (" (dry run, nothing changed)" if outcome.dry_run else "")
    )
    for table, counts in sorted(outcome.found.items()):
        done = outcome.tables.get(table, {})
        shown = {**{f"found {k}": n for k, n in counts.items()}, **done}
        print(f"  {table}: " + ", ".join(f"{k} {n}" for k, n in shown.items()))
    if outcome.check:
        print("  check: " + ", ".join(f"{k} {n}" for k, n in sorted(outcome.check.items())))
    return 0
