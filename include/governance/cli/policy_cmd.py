"""``governance policy check``: validate a policy file, and with a database its tables and columns."""

from __future__ import annotations

import argparse

from governance.cli.common import Subparsers, connection_of, policy_of, settings_of
from governance.policy import check_against_database


def register(subparsers: Subparsers, common: argparse.ArgumentParser) -> None:
    policy = subparsers.add_parser("policy", help="policy-as-code commands")
    sub = policy.add_subparsers(dest="policy_command", required=True, metavar="COMMAND")
    check = sub.add_parser("check", parents=[common], help="validate a policy file (and, with a database, its names)")
    check.add_argument(
        "--offline", action="store_true", help="do not check tables and columns even if a database is set"
    )
    check.set_defaults(handler=run_check)


def run_check(args: argparse.Namespace) -> int:
    policy = policy_of(args)  # raises PolicyError naming file, rule and field
    print(
        f"policy {policy.source_path}: {len(policy.categories)} categories, {len(policy.rules)} rules, "
        f"version {policy.version[:12]}"
    )
    if args.offline or not settings_of(args).db_url:
        print("not checked against a database (give --db-url or GOVERNANCE_DB_URL to check tables and columns)")
        return 0
    conn = connection_of(args)
    try:
        problems = check_against_database(policy, conn)
    finally:
        conn.close()
    if problems:
        print(f"policy file {policy.source_path} does not match the database ({len(problems)} problem(s)):")
        for problem in problems:
            print(f"  - {problem}")
        return 1
    print("every table, column and clock view the policy names exists")
    return 0
