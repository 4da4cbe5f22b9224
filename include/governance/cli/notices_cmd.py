"""``governance notices list|show|retry|ack``: the recipients outbox (TP-5): notice ids, recipients,
events, tables, states and counts, never a pseudonym or a value; ``retry`` makes a failed, dead or
unacknowledged notice due now; ``ack ID --by WHO`` records an acknowledgement received by e-mail or
another way (refused for an unknown or already acknowledged notice). Delivery itself is the
``recipient_notices`` DAG's (``governance.notices.delivery``)."""

from __future__ import annotations

import argparse
import json
from contextlib import closing

from governance.cli import now_of
from governance.cli.common import Subparsers, connection_of, policy_of, positive_int
from governance.db import transaction
from governance.notices import Notice, list_notices
from governance.notices.acks import acknowledge, retry, show
from governance.windows import iso

STATES = ("queued", "sending", "sent", "failed", "acknowledged", "dead")


def register(subparsers: Subparsers, common: argparse.ArgumentParser) -> None:
    notices = subparsers.add_parser("notices", help="notices to the recipients of personal data (TP-5)")
    sub = notices.add_subparsers(dest="notices_command", required=True, metavar="COMMAND")
    lst = sub.add_parser("list", parents=[common], help="the outbox: one notice per recipient and event")
    lst.add_argument("--request", type=positive_int, metavar="ID", help="only this request's notices")
    lst.add_argument("--run", metavar="RUN_ID", help="only this sweep run's notices (retention_ended, TP-5)")
    lst.add_argument("--state", action="append", choices=STATES, help="only these states (repeatable)")
    lst.add_argument("--json", action="store_true", help="machine-readable output")
    lst.set_defaults(handler=run_list)
    one = sub.add_parser("show", parents=[common], help="one notice: states, attempts, last error, times")
    one.add_argument("notice_id", type=positive_int, metavar="ID")
    one.add_argument("--json", action="store_true", help="machine-readable output")
    one.set_defaults(handler=run_show)
    again = sub.add_parser("retry", parents=[common], help="send a failed, dead or unacknowledged notice again now")
    again.add_argument("notice_id", type=positive_int, metavar="ID")
    again.set_defaults(handler=run_retry)
    ack = sub.add_parser("ack", parents=[common], help="record the recipient's acknowledgement (e-mail, drop)")
    ack.add_argument("notice_id", type=positive_int, metavar="ID")
    ack.add_argument("--by", required=True, metavar="WHO", help="your staff handle (recorded in the evidence)")
    ack.set_defaults(handler=run_ack)


def format_notices(found: list[Notice]) -> str:
    if not found:
        return "no notices"
    header = ("notice", "from", "recipient", "event", "state", "attempts", "queued", "tables")
    rows = [
        (
            str(n.notice_id),
            str(n.request_id) if n.request_id is not None else f"run {n.run_id}",
            n.recipient_id,
            n.event,
            n.state,
            str(n.attempts),
            iso(n.created_at),
            ", ".join(f"{t} ({n.record_counts.get(t, 0)})" for t in n.tables),
        )
        for n in found
    ]
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows])


def run_list(args: argparse.Namespace) -> int:
    with closing(connection_of(args)) as conn, transaction(conn, read_only=True) as cur:
        found = list_notices(cur, request_id=args.request, run_id=args.run, states=args.state)
    print(json.dumps([n.to_dict() for n in found], indent=2) if args.json else format_notices(found))
    return 0


def run_show(args: argparse.Namespace) -> int:
    with closing(connection_of(args)) as conn:
        found = show(conn, args.notice_id)
    print(json.dumps(found, indent=2) if args.json else "\n".join(f"{k}: {v}" for k, v in found.items()))
    return 0


def run_retry(args: argparse.Namespace) -> int:
    with closing(connection_of(args)) as conn:
        done = retry(conn, policy_of(args), args.notice_id, now=now_of(args))
    print(f"notice {done['notice_id']} ({done['was']}) is due again at {done['next_attempt_at']}")
    return 0


def run_ack(args: argparse.Namespace) -> int:
    with closing(connection_of(args)) as conn:
        acknowledge(conn, policy_of(args), args.notice_id, via="manual", by=args.by, now=now_of(args))
    print(f"notice {args.notice_id} acknowledged (manual, by {args.by})")
    return 0
