"""``governance hold add|list|lift``: legal holds (RET-8, policy art. 3.4).

An e-mail address given with ``--email`` is turned into its pseudonym and never printed back,
neither in output nor in errors.
"""

from __future__ import annotations

import argparse
import json

from governance.cli import _instant, now_of
from governance.cli.common import Subparsers, connection_of, policy_of, positive_int
from governance.holds import SCOPES, add_hold, format_holds, lift_hold, list_holds


def register(subparsers: Subparsers, common: argparse.ArgumentParser) -> None:
    hold = subparsers.add_parser("hold", help="legal holds: keep records the law obliges us to keep (RET-8)")
    sub = hold.add_subparsers(dest="hold_command", required=True, metavar="COMMAND")

    add = sub.add_parser("add", parents=[common], help="put a person, a record or a rule on hold")
    add.add_argument("--scope", required=True, choices=SCOPES, help="what the hold keeps")
    person = add.add_mutually_exclusive_group()
    person.add_argument("--account-id", type=positive_int, help="scope person: the account")
    # metavar keeps argparse's own messages from echoing an address; the value is never printed.
    person.add_argument("--email", metavar="ADDRESS", help="scope person: the e-mail address (stored as a pseudonym)")
    add.add_argument("--table", dest="table_name", help="scope record: schema-qualified table, e.g. shop.orders")
    add.add_argument("--key", dest="record_key", help="scope record: the record's primary key")
    add.add_argument("--rule", dest="rule_id", help="scope rule: the policy rule to suspend")
    add.add_argument("--reason", help="why the law obliges keeping it (required), e.g. a court order reference")
    add.add_argument("--set-by", help="who sets the hold (required)")
    add.add_argument("--until", type=_instant, help="when the hold ends by itself, ISO 8601 (default: until lifted)")
    add.set_defaults(handler=run_add)

    lst = sub.add_parser("list", parents=[common], help="holds in force at --now (default), or all")
    lst.add_argument("--all", action="store_true", help="every hold ever set, lifted and ended ones too")
    lst.add_argument("--json", action="store_true", help="machine-readable output")
    lst.set_defaults(handler=run_list)

    lift = sub.add_parser("lift", parents=[common], help="lift a hold (it is kept, marked lifted, and evidenced)")
    lift.add_argument("hold_id", type=positive_int, metavar="HOLD_ID")
    lift.add_argument("--by", dest="lifted_by", required=True, help="who lifts the hold")
    lift.set_defaults(handler=run_lift)


def run_add(args: argparse.Namespace) -> int:
    policy = policy_of(args)
    now = now_of(args)
    conn = connection_of(args)
    try:
        hold = add_hold(
            conn,
            policy,
            scope=args.scope,
            reason=args.reason,
            set_by=args.set_by,
            now=now,
            account_id=args.account_id,
            email=args.email,
            table_name=args.table_name,
            record_key=args.record_key,
            rule_id=args.rule_id,
            until=args.until,
        )
    finally:
        conn.close()
    until = hold.to_dict()["ends_at"] or "lifted"
    print(f"hold {hold.hold_id} added: {hold.target()}, set by {hold.set_by}, in force until {until} (evidenced)")
    return 0


def run_list(args: argparse.Namespace) -> int:
    now = now_of(args)
    conn = connection_of(args)
    try:
        holds = list_holds(conn, now, include_all=args.all)
    finally:
        conn.close()
    if args.json:
        print(json.dumps([h.to_dict(now) for h in holds], indent=2))
    else:
        print(format_holds(holds, now))
    return 0


def run_lift(args: argparse.Namespace) -> int:
    policy = policy_of(args)
    now = now_of(args)
    conn = connection_of(args)
    try:
        hold = lift_hold(conn, policy, args.hold_id, lifted_by=args.lifted_by, now=now)
    finally:
        conn.close()
    print(
        f"hold {hold.hold_id} lifted: {hold.target()}, by {hold.lifted_by} at {hold.to_dict()['lifted_at']} (evidenced)"
    )
    return 0
