"""``governance seed``: apply the schema and load the deterministic synthetic photo shop.

A development command: the CLI registers it only where this package is installed (never in the
production image). Empties the shop (and its legal holds), then loads ``--customers`` customers
whose ages are spread around ``--now`` so that every rule has records on both sides of its
window; a database or uploads prefix holding data the seed did not write is refused unless
``--force``. Prints rows per table, objects and seconds: counts only, never personal data.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from governance.cli import now_of
from governance.cli.common import connection_of, policy_of, s3_of, whole_number
from governance.db import apply_schema
from governance_dev.generator import MIN_CUSTOMERS
from governance_dev.loader import seed


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "seed",
        parents=[common],
        help="replace the shop's data with a deterministic synthetic shop (for demos, tests, benchmarks)",
        description="Apply the schema, empty the shop and load a deterministic synthetic one whose ages straddle "
        "every rule's window at --now. Prints counts only, never personal data.",
    )
    parser.add_argument(
        "--customers",
        type=whole_number(MIN_CUSTOMERS),
        default=500,
        help=f"how many customers (at least {MIN_CUSTOMERS}; default 500)",
    )
    parser.add_argument("--seed", type=int, default=42, help="random seed: same seed, customers and --now, same data")
    parser.add_argument(
        "--max-objects",
        type=whole_number(0),
        default=None,
        help="cap the uploads (rows and their objects) at this many",
    )
    parser.add_argument("--no-objects", action="store_true", help="load no uploads and do not touch the object store")
    parser.add_argument(
        "--orphan-objects",
        type=whole_number(0),
        default=0,
        help="also write this many objects that no row points at (for reconciliation tests)",
    )
    parser.add_argument("--no-holds", action="store_true", help="set no legal holds")
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace the data even where the seed did not write it (a database or uploads prefix it did not seed)",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(handler=run_seed)


def run_seed(args: argparse.Namespace) -> int:
    policy = policy_of(args)
    now = now_of(args)
    s3 = None if args.no_objects else s3_of(args)
    conn = connection_of(args)
    try:
        apply_schema(conn, policy)
        report = seed(
            conn,
            s3,
            policy,
            now,
            customers=args.customers,
            seed=args.seed,
            objects=not args.no_objects,
            max_objects=args.max_objects,
            orphan_objects=args.orphan_objects,
            holds=not args.no_holds,
            force=args.force,
        )
    finally:
        conn.close()
    if args.json:
        print(
            json.dumps(
                {
                    "now": now.isoformat(),
                    "customers": args.customers,
                    "seed": args.seed,
                    "rows": report.rows,
                    "objects": report.objects,
                    "orphan_objects": report.orphan_objects,
                    "bucket": report.bucket,
                    "export_objects": report.export_objects,
                    "exports_bucket": report.exports_bucket,
                    "seconds": round(report.seconds, 3),
                    "expected_overdue": report.expected_overdue,
                },
                indent=2,
            )
        )
    else:
        print(f"seeded {args.customers:,} customers (seed {args.seed}) as of {now.isoformat()}:")
        print(report.summary())
    return 0
