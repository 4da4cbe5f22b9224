"""``governance breach open|list|show|notify-authority|close``: personal-data breaches (SEC-2).

Output names breaches, categories, states and counts; never a person or an address.
"""

from __future__ import annotations

import argparse
import json
from contextlib import closing

from governance import breach as ledger
from governance.cli import _instant, now_of
from governance.cli.common import Subparsers, connection_of, policy_of, positive_int
from governance.windows import iso


def _categories(text: str) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()]


def register(subparsers: Subparsers, common: argparse.ArgumentParser) -> None:
    breach = subparsers.add_parser("breach", help="personal-data breaches: ledger, authority deadline, notices (SEC-2)")
    sub = breach.add_subparsers(dest="breach_command", required=True, metavar="COMMAND")

    opened = sub.add_parser("open", parents=[common], help="record a breach and queue a notice per person concerned")
    opened.add_argument("--categories", required=True, type=_categories, help="policy category ids, e.g. CAT-2,CAT-3")
    opened.add_argument("--from", dest="window_from", required=True, type=_instant, help="start of the window affected")
    opened.add_argument("--to", dest="window_to", required=True, type=_instant, help="end of the window affected")
    opened.add_argument("--detected-at", type=_instant, help="when the breach was detected (default: --now)")
    opened.add_argument("--description", required=True, help="what happened, without personal data (sent to people)")
    opened.set_defaults(handler=run_open)

    lst = sub.add_parser("list", parents=[common], help="every breach, its state and the authority deadline")
    lst.add_argument("--json", action="store_true", help="machine-readable output")
    lst.set_defaults(handler=run_list)

    show = sub.add_parser("show", parents=[common], help="one breach and its notices per state")
    show.add_argument("breach_id", type=positive_int, metavar="ID")
    show.set_defaults(handler=run_show)

    notify = sub.add_parser("notify-authority", parents=[common], help="record that the authority was notified")
    notify.add_argument("breach_id", type=positive_int, metavar="ID")
    notify.add_argument("--reference", required=True, help="the authority's case or submission reference")
    notify.set_defaults(handler=run_notify)

    close = sub.add_parser("close", parents=[common], help="close a breach whose people have all been notified")
    close.add_argument("breach_id", type=positive_int, metavar="ID")
    close.set_defaults(handler=run_close)


def run_open(args: argparse.Namespace) -> int:
    policy = policy_of(args)
    with closing(connection_of(args)) as conn:
        breach, queued = ledger.open_breach(
            conn,
            policy,
            categories=args.categories,
            window_from=args.window_from,
            window_to=args.window_to,
            description=args.description,
            detected_at=args.detected_at,
            now=now_of(args),
        )
    print(
        f"breach {breach.breach_id} opened: {queued} person(s) concerned, notices queued; the authority "
        f"notice is due {iso(breach.due_at)} (evidenced)"
    )
    return 0


def run_list(args: argparse.Namespace) -> int:
    with closing(connection_of(args)) as conn:
        breaches = ledger.list_breaches(conn)
    if args.json:
        print(json.dumps([b.to_dict() for b in breaches], indent=2))
    else:
        print(ledger.format_breaches(breaches, now_of(args)))
    return 0


def run_show(args: argparse.Namespace) -> int:
    with closing(connection_of(args)) as conn:
        breach, counts = ledger.get_breach(conn, args.breach_id)
    print(json.dumps({**breach.to_dict(), "notices": counts}, indent=2))
    return 0


def run_notify(args: argparse.Namespace) -> int:
    with closing(connection_of(args)) as conn:
        breach = ledger.notify_authority(
            conn, policy_of(args), args.breach_id, reference=args.reference, now=now_of(args)
        )
    late = (
        " (after the deadline)" if breach.authority_notified_at and breach.authority_notified_at > breach.due_at else ""
    )
    print(
        f"breach {breach.breach_id}: authority notified{late}; notices go out with the breach_notices DAG (evidenced)"
    )
    return 0


def run_close(args: argparse.Namespace) -> int:
    with closing(connection_of(args)) as conn:
        breach = ledger.close_breach(conn, policy_of(args), args.breach_id, now=now_of(args))
    print(f"breach {breach.breach_id} closed (evidenced)")
    return 0
