"""``governance request erase ID [--dry-run]``: erase the person of a verified erasure request (ERA-1),
or the categories an account deletion chose to delete (RET-7: the kept ones are counted ``keep``).

Start, erase, the independent check, complete (``governance.erasure.answer_erasure``); with
``--dry-run`` the counts per table that would be deleted, anonymised (RET-8), kept and held,
changing nothing. Output is ids and counts only, never an address.
"""

from __future__ import annotations

import argparse
import json
from contextlib import closing

from governance.cli import now_of
from governance.cli.common import Subparsers, connection_of, policy_of, positive_int, s3_of
from governance.erasure import answer_erasure, preview


def register(subparsers: Subparsers, common: argparse.ArgumentParser) -> None:
    request = subparsers.choices["request"]  # governance.cli.request_cmd registers the group first
    group = next(a for a in request._actions if isinstance(a, argparse._SubParsersAction))
    erase = group.add_parser(
        "erase",
        parents=[common],
        help="erase the person of a verified erasure or account deletion request (ERA-1, RET-7), then check it",
    )
    erase.add_argument("request_id", type=positive_int, metavar="ID")
    erase.add_argument(
        "--dry-run", action="store_true", help="print what would be erased, kept and held; change nothing"
    )
    erase.add_argument("--json", action="store_true", help="machine-readable output")
    erase.set_defaults(handler=run_erase)


def run_erase(args: argparse.Namespace) -> int:
    policy = policy_of(args)
    with closing(connection_of(args)) as conn:
        if args.dry_run:
            counts = preview(conn, policy, args.request_id, now=now_of(args))
            if args.json:
                print(json.dumps(counts, indent=2, sort_keys=True))
            else:
                print(f"request {args.request_id}: dry run, nothing changed")
                for table, tally in counts.items():
                    print(f"  {table}: " + ", ".join(f"{name} {n}" for name, n in tally.items()))
            return 0
        outcome = answer_erasure(conn, s3_of(args), policy, args.request_id, now=now_of(args))
    if args.json:
        print(json.dumps(outcome, indent=2, sort_keys=True))
    else:
        print(f"request {args.request_id}: erased and checked; completed")
        for name, n in sorted(outcome.items()):
            print(f"  {name}: {n}")
    return 0
