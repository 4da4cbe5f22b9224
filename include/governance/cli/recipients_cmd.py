"""``governance recipients list [--json|--csv]``: the recipients registry (TP-1, TP-4), as a person
may ask for it: each recipient's id, name, role, categories, country (inside the EEA or the
transfer basis, SEC-3), purpose, and how it is told of erasures and corrections (TP-5: the channel,
never a secret or a connection's content)."""

from __future__ import annotations

import argparse
import csv
import io
import json
from typing import Any

from governance.cli.common import Subparsers, policy_of
from governance.policy import Policy

FIELDS = (
    "id", "name", "role", "categories", "country", "inside_eea", "transfer_basis", "purpose_en", "purpose_nb",
    "notify", "rate_limit_per_minute", "encrypted",
)  # fmt: skip


def register(subparsers: Subparsers, common: argparse.ArgumentParser) -> None:
    recipients = subparsers.add_parser("recipients", help="the recipients of personal data (TP-1, TP-4)")
    sub = recipients.add_subparsers(dest="recipients_command", required=True, metavar="COMMAND")
    lst = sub.add_parser("list", parents=[common], help="every recipient, its categories, country and channel")
    form = lst.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="machine-readable output")
    form.add_argument("--csv", action="store_true", help="CSV with a header row")
    lst.set_defaults(handler=run_list)


def rows(policy: Policy) -> list[dict[str, Any]]:
    """One dict per recipient, in the policy's order."""
    found = []
    for r in policy.recipients:
        found.append(
            {
                "id": r.id,
                "name": r.name,
                "role": r.role,
                "categories": r.categories,
                "country": r.country,
                "inside_eea": r.inside_eea,
                "transfer_basis": r.transfer_basis,
                "purpose_en": r.purpose.en,
                "purpose_nb": r.purpose.nb,
                "notify": r.notify.channel if r.notify else None,
                "rate_limit_per_minute": r.notify.rate_limit_per_minute if r.notify else None,
                "encrypted": bool(r.notify and r.notify.encryption_key_conn),
            }
        )
    return found


def as_csv(found: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in found:
        writer.writerow({k: " ".join(v) if isinstance(v, list) else ("" if v is None else v) for k, v in row.items()})
    return out.getvalue().rstrip("\n")


def as_table(found: list[dict[str, Any]]) -> str:
    if not found:
        return "no recipients in the policy"
    header = ("recipient", "role", "categories", "country", "notify", "name")
    lines = [
        (
            r["id"],
            r["role"],
            ",".join(r["categories"]),
            r["country"] + ("" if r["inside_eea"] else f" ({r['transfer_basis']})"),
            r["notify"] or "-",
            r["name"],
        )
        for r in found
    ]
    widths = [max(len(header[i]), *(len(x[i]) for x in lines)) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(x, widths, strict=True)).rstrip() for x in [header, *lines])


def run_list(args: argparse.Namespace) -> int:
    found = rows(policy_of(args))
    if args.json:
        print(json.dumps(found, indent=2, ensure_ascii=False))
    elif args.csv:
        print(as_csv(found))
    else:
        print(as_table(found))
    return 0
