"""``governance processing list`` and ``governance request lift``: the processing register (RES-1,
OBJ-1, MKT-1, CON-1) and lifting a restriction (GDPR art. 18(3)).

Output names requests, purposes, effects, instants and how many account ids and e-mail pseudonyms
an entry holds: never an identifier, never an address.
"""

from __future__ import annotations

import argparse
import json
from contextlib import closing
from datetime import datetime

from governance.cli import now_of
from governance.cli.common import Subparsers, connection_of, policy_of, positive_int
from governance.db import transaction
from governance.processing import Entry, entries, lift_restriction
from governance.windows import iso


def register(subparsers: Subparsers, common: argparse.ArgumentParser) -> None:
    processing = subparsers.add_parser(
        "processing", help="the processing register: purposes switched off per request (RES-1, OBJ-1, CON-1)"
    )
    sub = processing.add_subparsers(dest="processing_command", required=True, metavar="COMMAND")
    lst = sub.add_parser("list", parents=[common], help="register entries in force at --now (default), or all")
    lst.add_argument("--all", action="store_true", help="every entry, lifted and ended ones too")
    lst.add_argument("--json", action="store_true", help="machine-readable output")
    lst.set_defaults(handler=run_list)

    request = subparsers.choices["request"]  # governance.cli.request_cmd registers the group first
    group = next(a for a in request._actions if isinstance(a, argparse._SubParsersAction))
    lift = group.add_parser(
        "lift", parents=[common], help="lift a completed restriction (RES-1): its register entries and hold"
    )
    lift.add_argument("request_id", type=positive_int, metavar="ID")
    lift.add_argument("--by", required=True, help="who lifts it")
    lift.add_argument("--reason", help="why, without naming anyone (e.g. 'accuracy verified')")
    lift.set_defaults(handler=run_lift)


def format_entries(found: list[Entry], now: datetime) -> str:
    """A plain table for people: ids, purposes, effects, counts of identifiers, instants."""
    if not found:
        return "no register entries"
    header = ("entry", "request", "purpose", "effect", "accounts", "pseudonyms", "since", "status")
    rows = [
        (
            str(e.entry_id),
            str(e.request_id),
            e.purpose,
            e.effect,
            str(e.accounts),
            str(e.pseudonyms),
            iso(e.starts_at),
            e.status(now) + (f" {iso(e.lifted_at)}" if e.lifted_at else ""),
        )
        for e in found
    ]
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows])


def run_list(args: argparse.Namespace) -> int:
    now = now_of(args)
    with closing(connection_of(args)) as conn, transaction(conn, read_only=True) as cur:
        found = entries(cur, in_force_at=None if args.all else now)
    if args.json:
        print(json.dumps([e.to_dict(now) for e in found], indent=2))
    else:
        print(format_entries(found, now))
    return 0


def run_lift(args: argparse.Namespace) -> int:
    with closing(connection_of(args)) as conn:
        lifted = lift_restriction(
            conn, policy_of(args), args.request_id, by=args.by, reason=args.reason, now=now_of(args)
        )
    print(
        f"request {lifted.request_id}: restriction lifted: {lifted.entries} register entries, {lifted.holds} "
        f"hold(s) lifted, {lifted.notices} notice(s) queued (evidenced)"
    )
    return 0
