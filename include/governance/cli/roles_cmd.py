"""``governance roles apply``: the least-privilege group roles of the policy (SEC-4), made exact."""

from __future__ import annotations

import argparse
import json

from governance.cli.common import Subparsers, connection_of, policy_of
from governance.roles import apply_roles


def register(subparsers: Subparsers, common: argparse.ArgumentParser) -> None:
    roles = subparsers.add_parser("roles", help="least-privilege PostgreSQL roles (SEC-4)")
    sub = roles.add_subparsers(dest="roles_command", required=True, metavar="COMMAND")
    apply = sub.add_parser(
        "apply",
        parents=[common],
        help="create the policy's NOLOGIN roles and grant (and revoke) exactly what each duty needs; "
        "run as the owner of the shop's and the governance schema's tables",
    )
    apply.add_argument("--json", action="store_true", help="print what changed as JSON")
    apply.set_defaults(handler=run_apply)


def run_apply(args: argparse.Namespace) -> int:
    policy = policy_of(args)
    conn = connection_of(args)
    try:
        changes = apply_roles(conn, policy)
    finally:
        conn.close()
    if args.json:
        print(json.dumps(changes.__dict__, sort_keys=True))
        return 0
    for role in changes.created:
        print(f"created role {role} (NOLOGIN)")
    for role, grants in changes.granted.items():
        for grant in grants:
            print(f"{role}: granted {grant}")
    for role, grants in changes.revoked.items():
        for grant in grants:
            print(f"{role}: revoked {grant}")
    for role, tables in changes.owned.items():
        print(f"{role}: now owns {', '.join(tables)}")
    if not changes.changed:
        print("roles already as the policy says: nothing changed")
    return 0
