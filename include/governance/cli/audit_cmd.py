"""``governance audit``: is anything past its window? (RET-1..RET-10, CAT-5, RET-9)

Runs the same audit as the DAG ``retention_audit`` (GX checks pushed down to PostgreSQL plus
the object-store check), records its evidence, and prints a table for people or, with
``--json``, one object for scripts and alerting. Exit code 1 when anything is overdue, 0 when
clean, 2 when the configuration is wrong (no database or S3 endpoint, a bad policy file).
"""

from __future__ import annotations

import argparse
import json
import sys

from governance.cli import now_of
from governance.cli.common import Subparsers, connection_of, policy_of, s3_of, settings_of
from governance.errors import SettingsError
from governance.settings import S3_ENDPOINT_ENV


def register(subparsers: Subparsers, common: argparse.ArgumentParser) -> None:
    audit = subparsers.add_parser(
        "audit",
        parents=[common],
        help="check that no record or object is past its window",
        description="Check that no record or object is past its window (RET-1..RET-10, CAT-5, RET-9).",
    )
    audit.add_argument(
        "--json", action="store_true", help='print {"overdue_total": N, "rules": [...]} instead of a table'
    )
    audit.add_argument(
        "--run-id", help="the evidence run id (default: a new one); rerunning an id records nothing twice"
    )
    audit.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from governance.audit import new_run_id, run_audit

    policy = policy_of(args)
    settings = settings_of(args)
    db_url = settings.require_db_url()
    if not settings.s3_endpoint_url:
        raise SettingsError(
            "the audit also checks the object store (CAT-5, RET-9): pass --s3-endpoint-url URL "
            f"or set {S3_ENDPOINT_ENV}"
        )
    now = now_of(args)
    run_id = args.run_id or new_run_id("audit-cli")
    conn = connection_of(args)
    try:
        report = run_audit(conn, s3_of(args), policy, now, run_id, db_url=db_url)
    finally:
        conn.close()
    if args.json:
        print(json.dumps(report.to_json()))
    else:
        print(report.format_table())
    if report.failed:  # overdue records, or a rights check's findings
        print(report.failure_message(), file=sys.stderr)
        return 1
    return 0
