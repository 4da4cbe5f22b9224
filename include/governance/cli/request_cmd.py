"""``governance request open|verify|extend|refuse|withdraw|rectify|list|show``: data-subject requests
(REQ-1; REC-1 for ``rectify``).

An address given with ``--email`` or ``--reply-to`` is stored apart (governance.request_contacts)
and never printed back, neither in output nor in errors; requests are named by id, kind and state.
A correction's new value (``rectify``) is stored apart too (governance.request_corrections) and
never printed: output names tables, columns and counts.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from contextlib import closing
from datetime import datetime
from pathlib import Path

from governance import requests
from governance.cli import _instant, now_of
from governance.cli.common import Subparsers, connection_of, policy_of, positive_int
from governance.db import transaction
from governance.errors import RequestError
from governance.processing import entries
from governance.requests.corrections import columns_of, load_corrections, parse_assignments, record_corrections
from governance.requests.model import CHANNELS, CLOSED_STATES, KINDS, OPEN_STATES, VERIFICATION_METHODS, SubjectRequest
from governance.requests.rectification import answer_rectification
from governance.requests.scope import choices_from_flags
from governance.windows import iso

STATE_CHOICES = (*OPEN_STATES, *CLOSED_STATES, "open", "closed")


def register(subparsers: Subparsers, common: argparse.ArgumentParser) -> None:
    request = subparsers.add_parser("request", help="data-subject requests: intake, identity, deadlines (REQ-1)")
    sub = request.add_subparsers(dest="request_command", required=True, metavar="COMMAND")

    opened = sub.add_parser("open", parents=[common], help="record a request as it arrived (due in one month)")
    opened.add_argument("--kind", required=True, choices=KINDS, help="the right exercised")
    opened.add_argument("--account-id", type=positive_int, help="the person's account, when known")
    # metavar keeps argparse's own messages from echoing an address; the values are never printed.
    opened.add_argument("--email", metavar="ADDRESS", help="the person's e-mail address (stored as a pseudonym)")
    opened.add_argument("--reply-to", metavar="ADDRESS", help="where to answer (default: --email, else the account's)")
    opened.add_argument("--channel", required=True, choices=CHANNELS, help="how the request arrived")
    opened.add_argument("--by", required=True, help="who records it (staff member or tool)")
    opened.add_argument("--received-at", type=_instant, help="when it arrived, ISO 8601 (default: --now)")
    opened.add_argument(
        "--purpose",
        action="append",
        metavar="PURPOSE",
        help="restriction, objection, consent_withdrawal: a policy purpose switched off (repeatable; default: "
        "direct marketing for an objection, consent-based ones for a withdrawal, all for a restriction)",
    )
    opened.add_argument("--keep", action="append", metavar="CATEGORY", help="account_deletion: a category kept (RET-7)")
    opened.add_argument(
        "--delete", action="append", metavar="CATEGORY", help="account_deletion: a category erased now (RET-7, ERA-1)"
    )
    opened.set_defaults(handler=run_open)

    verify = _with_id(sub, common, "verify", "record that the identity was checked (never the document)")
    verify.add_argument("--by", required=True, help="who checked the identity")
    verify.add_argument("--method", required=True, choices=VERIFICATION_METHODS, help="how it was checked")
    verify.set_defaults(handler=run_verify)

    extend = _with_id(sub, common, "extend", "extend the deadline by 1 or 2 months, with the reason (GDPR 12(3))")
    extend.add_argument("--months", required=True, type=int, choices=(1, 2), help="further months")
    extend.add_argument("--reason", required=True, help="why more time is needed, without naming anyone")
    extend.set_defaults(handler=run_extend)

    refuse = _with_id(sub, common, "refuse", "refuse an open request, with the reason")
    refuse.add_argument("--reason", required=True, help="why it is refused, without naming anyone")
    refuse.add_argument("--by", required=True, help="who refuses it")
    refuse.set_defaults(handler=run_refuse)

    withdraw = _with_id(sub, common, "withdraw", "record that the person withdrew an open request")
    withdraw.add_argument("--by", required=True, help="who records the withdrawal")
    withdraw.set_defaults(handler=run_withdraw)

    rectify = _with_id(sub, common, "rectify", "record the corrections of a rectification request (REC-1)")
    rectify.add_argument(
        "--set", action="append", default=[], metavar="SCHEMA.TABLE.COLUMN=VALUE", help="a correction (repeatable)"
    )
    rectify.add_argument(
        "--from-json", type=Path, metavar="PATH", help='corrections {"schema.table": {"column": value}} from a file'
    )
    rectify.add_argument("--apply", action="store_true", help="apply them now (a verified request) instead of the DAG")
    rectify.set_defaults(handler=run_rectify)

    lst = sub.add_parser("list", parents=[common], help="requests, their states and deadlines")
    lst.add_argument("--state", action="append", choices=STATE_CHOICES, help="only these states (repeatable)")
    lst.add_argument("--kind", action="append", choices=KINDS, help="only these kinds (repeatable)")
    lst.add_argument("--json", action="store_true", help="machine-readable output")
    lst.set_defaults(handler=run_list)

    show = _with_id(sub, common, "show", "one request: state, deadline, verification, outcome")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(handler=run_show)


def _with_id(sub: Subparsers, common: argparse.ArgumentParser, name: str, text: str) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, parents=[common], help=text)
    parser.add_argument("request_id", type=positive_int, metavar="ID")
    return parser


def _states(chosen: list[str] | None) -> list[str] | None:
    if not chosen:
        return None
    expanded = {"open": OPEN_STATES, "closed": CLOSED_STATES}
    return sorted({state for name in chosen for state in expanded.get(name, (name,))})


def _deadline_text(request: SubjectRequest, now: datetime) -> str:
    if not request.is_open:
        return f"closed {iso(request.closed_at)}" if request.closed_at else "closed"
    left = request.days_left(now)
    state = f"{left} day(s) left" if left > 0 else f"LATE by {request.days_late(now)} day(s)"
    return f"due {iso(request.deadline)}, {state}"


def run_open(args: argparse.Namespace) -> int:
    now = now_of(args)
    with closing(connection_of(args)) as conn:
        request = requests.open_request(
            conn,
            policy_of(args),
            kind=args.kind,
            account_id=args.account_id,
            email=args.email,
            reply_to=args.reply_to,
            channel=args.channel,
            opened_by=args.by,
            received_at=args.received_at,
            purposes=args.purpose,
            choices=choices_from_flags(args.keep, args.delete),
            now=now,
        )
    found = (
        "the subject was found in the data map"
        if request.subject_found
        else "no data held: nobody in the data map matches this subject (recorded; answer saying so once verified)"
    )
    print(
        f"request {request.request_id} opened ({request.kind}, via {request.channel}), {_deadline_text(request, now)}"
    )
    print(f"{found}; next: verify the identity (governance request verify {request.request_id}) (evidenced)")
    return 0


def _transition(args: argparse.Namespace, change: Callable[..., SubjectRequest], done: str, **kwargs: object) -> int:
    now = now_of(args)
    with closing(connection_of(args)) as conn:
        request = change(conn, policy_of(args), args.request_id, now=now, **kwargs)
    print(f"request {request.request_id} ({request.kind}) {done}: {request.state}, {_deadline_text(request, now)}")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    return _transition(args, requests.verify, "verified", verified_by=args.by, method=args.method)


def run_extend(args: argparse.Namespace) -> int:
    return _transition(args, requests.extend, "extended", months=args.months, reason=args.reason)


def run_refuse(args: argparse.Namespace) -> int:
    return _transition(args, requests.refuse, "refused", reason=args.reason, by=args.by)


def run_withdraw(args: argparse.Namespace) -> int:
    return _transition(args, requests.withdraw, "withdrawn", by=args.by)


def run_rectify(args: argparse.Namespace) -> int:
    if bool(args.set) == bool(args.from_json):
        raise RequestError("give the corrections with --set SCHEMA.TABLE.COLUMN=VALUE (repeatable) or --from-json PATH")
    corrections = parse_assignments(args.set) if args.set else load_corrections(args.from_json)
    now, policy = now_of(args), policy_of(args)
    with closing(connection_of(args)) as conn:
        request = record_corrections(conn, policy, args.request_id, corrections, now=now)
        named = ", ".join(f"{t}: {', '.join(c)}" for t, c in columns_of(corrections).items())
        print(f"request {request.request_id}: corrections recorded ({named})")
        if not args.apply:
            print("they are applied by the subject_requests DAG once the identity is verified (or rerun with --apply)")
            return 0
        request = answer_rectification(conn, policy, args.request_id, now=now)
    outcome = ", ".join(f"{k} {v}" for k, v in request.outcome.items())
    print(f"request {request.request_id} ({request.kind}) {request.state}: {outcome} (evidenced)")
    return 0


def format_requests(found: list[SubjectRequest], now: datetime) -> str:
    """A plain table for people: ids, kinds, states, deadlines; no person."""
    if not found:
        return "no requests"
    header = ("request", "kind", "state", "channel", "received", "deadline", "subject")
    rows = [
        (
            str(r.request_id),
            r.kind,
            r.state,
            r.channel,
            iso(r.received_at),
            _deadline_text(r, now),
            "found" if r.subject_found else "no data held",
        )
        for r in found
    ]
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows])


def run_list(args: argparse.Namespace) -> int:
    now = now_of(args)
    with closing(connection_of(args)) as conn, transaction(conn, read_only=True) as cur:
        found = requests.list_requests(cur, states=_states(args.state), kinds=args.kind)
    if args.json:
        print(json.dumps([r.to_dict(now) for r in found], indent=2))
    else:
        print(format_requests(found, now))
    return 0


def run_show(args: argparse.Namespace) -> int:
    now = now_of(args)
    with closing(connection_of(args)) as conn, transaction(conn, read_only=True) as cur:
        request = requests.fetch(cur, args.request_id)
        register = entries(cur, request_id=args.request_id)  # RES-1, OBJ-1, CON-1: what it switched off
    data = request.to_dict(now)
    if args.json:
        print(json.dumps({**data, "processing_register": [e.to_dict(now) for e in register]}, indent=2))
    else:
        data["purposes"] = ", ".join(request.purposes) or None
        width = max(len(key) for key in data)
        print("\n".join(f"{key.ljust(width)}  {'-' if value is None else value}" for key, value in data.items()))
        for e in register:
            lifted = f", lifted {iso(e.lifted_at)} by {e.lifted_by}" if e.lifted_at else ""
            print(f"register  {e.purpose}: {e.effect} since {iso(e.starts_at)}, {e.status(now)}{lifted}")
    return 0
