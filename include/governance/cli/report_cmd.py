"""``governance report``: the period report a reviewer files (#13; "What proof means here").

``governance report --from 2026-11-01 --to 2026-11-30 --format html|pdf|json [--out FILE]``
verifies the evidence chain (with its anchors when an S3 endpoint is given), records that
verification as evidence (by "governance report"), and writes the report of those whole UTC days:
to ``--out`` or standard output. Exit 2 for a bad flag (named in the message), 5 when the evidence
chain is broken (the report is still written: it says so).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from governance.cli import now_of
from governance.cli.common import Subparsers, connection_of, policy_of, s3_of, settings_of
from governance.errors import EvidenceBroken


def register(subparsers: Subparsers, common: argparse.ArgumentParser) -> None:
    from governance.compliance.report import FORMATS, MAX_DAYS

    report = subparsers.add_parser(
        "report",
        parents=[common],
        help="the period report: rules, effects, audits, requests, notices, holds, evidence (html, pdf, json)",
        description="The report of whole UTC days [--from, --to] a reviewer can file (#13). Ids, counts and "
        "hashes only.",
    )
    report.add_argument("--from", dest="first", required=True, metavar="DATE", help="first UTC day, YYYY-MM-DD")
    report.add_argument(
        "--to", dest="last", required=True, metavar="DATE", help=f"last UTC day, included (at most {MAX_DAYS} days)"
    )
    report.add_argument("--format", dest="fmt", default="html", metavar="FORMAT", help=f"{' | '.join(FORMATS)}")
    report.add_argument("--out", type=Path, help="write to this file (default: standard output)")
    report.add_argument("--run-id", help="the evidence run id of the verification (default: a new one)")
    report.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from governance.audit import new_run_id
    from governance.compliance.report import build, check_format, period_of, render, verify_and_record

    fmt = check_format(args.fmt)
    period = period_of(args.first, args.last)  # bad flags fail before any connection is made
    policy = policy_of(args)
    now = now_of(args)
    s3 = s3_of(args) if settings_of(args).s3_endpoint_url else None
    conn = connection_of(args)
    try:
        result = verify_and_record(
            conn, s3, policy, by="governance report", run_id=args.run_id or new_run_id("report-cli"), now=now
        )
        report = build(conn, policy, period, verification=result, generated_at=now, generated_by="governance report")
    finally:
        conn.close()
    body = render(report, fmt)
    if args.out:
        args.out.write_bytes(body)
        print(f"wrote the {fmt} report of {period.first} to {period.last} to {args.out} ({len(body)} bytes)")
    else:
        sys.stdout.flush()
        sys.stdout.buffer.write(body)
        sys.stdout.buffer.flush()
    if not result.ok:
        print(f"the evidence chain is BROKEN ({len(result.problems)} problem(s)): see the report", file=sys.stderr)
        return EvidenceBroken.exit_code
    return 0
