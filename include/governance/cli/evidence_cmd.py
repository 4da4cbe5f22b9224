"""``governance evidence verify|show``: prove what ran, when, and what it removed (counts only).

``verify`` exits 0 and prints OK with the number of entries and the head hash when the hash chain
is intact, or lists every broken entry and exits 1. ``show`` is what a compliance reviewer reads.
"""

from __future__ import annotations

import argparse
import json

from governance.cli import _instant
from governance.cli.common import Subparsers, connection_of
from governance.evidence import entries, format_report, kinds, verify


def register(subparsers: Subparsers, common: argparse.ArgumentParser) -> None:
    evidence = subparsers.add_parser("evidence", help="the hash-chained evidence log: verify it, show it")
    sub = evidence.add_subparsers(dest="evidence_command", required=True, metavar="COMMAND")

    check = sub.add_parser("verify", parents=[common], help="recompute the hash chain (exit 1 if broken)")
    check.add_argument("--json", action="store_true", help="machine-readable output")
    check.set_defaults(handler=run_verify)

    show = sub.add_parser("show", parents=[common], help="which rules ran, when, what each removed; audits; holds")
    show.add_argument("--run-id", help="only this run (an Airflow run id, or hold-N for a hold)")
    show.add_argument("--rule", dest="rule_id", help="only this rule id")
    show.add_argument("--kind", help="only this kind of entry (e.g. audit_rule, hold_added)")
    show.add_argument("--since", type=_instant, help="only entries recorded at or after this ISO 8601 instant")
    show.add_argument(
        "--detail",
        action="store_true",
        help="one line per entry (default: a sweep's batch entries are summed per rule)",
    )
    show.add_argument("--json", action="store_true", help="machine-readable output (always every entry)")
    show.set_defaults(handler=run_show)


def run_verify(args: argparse.Namespace) -> int:
    conn = connection_of(args)
    try:
        result = verify(conn)
    finally:
        conn.close()
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.summary())
    return 0 if result.ok else 1


def run_show(args: argparse.Namespace) -> int:
    conn = connection_of(args)
    try:
        selected = entries(conn, run_id=args.run_id, rule_id=args.rule_id, kind=args.kind, since=args.since)
        recorded_kinds = kinds(conn) if not selected and args.kind else None
        chain = verify(conn)
    finally:
        conn.close()
    if args.json:
        print(
            json.dumps(
                {"count": len(selected), "entries": [e.to_dict() for e in selected], "chain": chain.to_dict()}, indent=2
            )
        )
        return 0
    print(format_report(selected, chain, detail=args.detail))
    if recorded_kinds is not None and args.kind not in recorded_kinds:
        print(f"no entry of kind {args.kind!r} is recorded; kinds recorded: {', '.join(recorded_kinds) or 'none'}")
    return 0
