"""``governance evidence verify|show``: prove what ran, when, and what it removed (counts only).

``verify`` exits 0 and prints OK with the number of entries and the head hash when the hash chain
and the anchors agree, or lists every problem and exits 4 (``EvidenceBroken``). ``anchor`` writes
the chain head to the policy's anchor bucket (SEC-1). ``show`` is what a compliance reviewer reads.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

from governance.anchors import anchor_evidence, evidence_key, verify_with_anchors
from governance.cli import _instant
from governance.cli.common import Subparsers, connection_of, policy_of, s3_of
from governance.errors import EvidenceBroken
from governance.evidence import entries, format_report, kinds, verify


def register(subparsers: Subparsers, common: argparse.ArgumentParser) -> None:
    evidence = subparsers.add_parser("evidence", help="the hash-chained evidence log: verify it, show it")
    sub = evidence.add_subparsers(dest="evidence_command", required=True, metavar="COMMAND")

    check = sub.add_parser(
        "verify", parents=[common], help="recompute the hash chain, check it against the anchors (exit 4 if broken)"
    )
    check.add_argument("--json", action="store_true", help="machine-readable output")
    check.add_argument("--no-anchors", action="store_true", help="the hash chain only; do not read the anchors")
    check.set_defaults(handler=run_verify)

    anchor = sub.add_parser(
        "anchor", parents=[common], help="write the chain head to the anchor bucket (S3 Object Lock, SEC-1)"
    )
    anchor.add_argument("--run-id", default="", help="the run this anchor follows (recorded in the anchor)")
    anchor.set_defaults(handler=run_anchor)

    show = sub.add_parser("show", parents=[common], help="which rules ran, when, what each removed; audits; holds")
    show.add_argument("--run-id", help="only this run (an Airflow run id, or hold-N for a hold)")
    show.add_argument("--rule", dest="rule_id", help="only this rule id")
    show.add_argument("--kind", help="only this kind of entry (e.g. audit_rule, hold_added)")
    show.add_argument("--since", type=_instant, help="only entries recorded at or after this ISO 8601 instant")
    show.add_argument(
        "--detail",
        action="store_true",
        help="one line per entry (default: a sweep's batch entries are summed per rule)",
    )
    show.add_argument("--json", action="store_true", help="machine-readable output (always every entry)")
    show.set_defaults(handler=run_show)


def run_verify(args: argparse.Namespace) -> int:
    bucket = None if args.no_anchors else policy_of(args).object_store.evidence_anchor_bucket
    key = evidence_key()
    conn = connection_of(args)
    try:
        if args.no_anchors:
            result = replace(verify(conn), notes=["anchors not checked (--no-anchors)"])
        else:
            result = verify_with_anchors(conn, s3_of(args) if bucket else None, bucket, key)
    finally:
        conn.close()
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.summary())
    return 0 if result.ok else EvidenceBroken.exit_code


def run_anchor(args: argparse.Namespace) -> int:
    store = policy_of(args).object_store
    if not store.evidence_anchor_bucket:
        print("not anchored: the policy names no object_store.evidence_anchor_bucket")
        return 0
    key = evidence_key()
    conn = connection_of(args)
    try:
        anchor = anchor_evidence(
            conn,
            s3_of(args),
            key,
            store.evidence_anchor_bucket,
            run_id=args.run_id,
            retention_days=store.evidence_anchor_retention_days,
        )
    finally:
        conn.close()
    state = "authenticated (HMAC-SHA256)" if anchor.mac else "UNAUTHENTICATED: no evidence key configured"
    print(
        f"anchored entry {anchor.head_entry_id} ({anchor.entries} entries, head {anchor.head_hash}) "
        f"as s3://{store.evidence_anchor_bucket}/{anchor.object_key()}, {state}"
    )
    return 0


def run_show(args: argparse.Namespace) -> int:
    conn = connection_of(args)
    try:
        selected = entries(conn, run_id=args.run_id, rule_id=args.rule_id, kind=args.kind, since=args.since)
        recorded_kinds = kinds(conn) if not selected and args.kind else None
        chain = verify(conn)
    finally:
        conn.close()
    if args.json:
        print(
            json.dumps(
                {"count": len(selected), "entries": [e.to_dict() for e in selected], "chain": chain.to_dict()}, indent=2
            )
        )
        return 0
    print(format_report(selected, chain, detail=args.detail))
    if recorded_kinds is not None and args.kind not in recorded_kinds:
        print(f"no entry of kind {args.kind!r} is recorded; kinds recorded: {', '.join(recorded_kinds) or 'none'}")
    return 0
