"""Answering a restriction (RES-1), an objection (OBJ-1, MKT-1) or a withdrawal of consent (CON-1).

For a verified request: its purposes (chosen at intake, ``requests.scope``) are checked against the
policy and the catalogue before it is started; then in ONE transaction: a processing register row
per purpose (from ``now``), every ``switch_off`` applied to the person's rows, for a restriction the
RES-1 person holds, the recipients' notices (TP-5: for a restriction every recipient of a category
holding the person's records, GDPR art. 19; for an objection or withdrawal the purposes'
``recipients:``), the ``processing_switched_off`` evidence (purposes, tables, row counts, never a
value) and the completion. A completed request returns as it is; a rerun before the commit redoes
all of it, and the register's UNIQUE (request_id, purpose) keeps rows once.
"""

from __future__ import annotations

from datetime import datetime

from psycopg2.extensions import connection, cursor

from governance.db import transaction
from governance.errors import RequestError
from governance.notices.outbox import queue_notices
from governance.notices.pseudonyms import PseudonymKey, pseudonym_key
from governance.person.records import count_records
from governance.person.subject import Subject, resolve_subject
from governance.policy import EFFECT_OF_KIND, Policy, Purpose
from governance.processing.holds import add_restriction_holds, restriction_holds_records
from governance.processing.register import insert_entries
from governance.processing.switches import apply_switches, check_switches, purposes_of
from governance.requests.ledger import complete, start
from governance.requests.model import SubjectRequest
from governance.requests.rectification import held_rows, person_order_ids
from governance.requests.scope import check_purposes
from governance.requests.store import fetch, record
from governance.windows import as_utc


def switch_off(
    conn: connection, policy: Policy, request_id: int, *, now: datetime, key: PseudonymKey | None = None
) -> SubjectRequest:
    """Switch the request's purposes off for its person and complete it (see the module)."""
    now = as_utc(now)
    with transaction(conn, read_only=True) as cur:
        request = fetch(cur, request_id)
        if request.kind not in EFFECT_OF_KIND:
            raise RequestError(
                f"request {request_id} is {request.kind}: only {', '.join(sorted(EFFECT_OF_KIND))} requests "
                "switch processing off"
            )
        if request.state == "completed":
            return request
        purposes = purposes_of(policy, check_purposes(policy, request.kind, request.purposes or None))
        check_switches(cur, policy, purposes)
    if key is None and policy.recipients:
        key = pseudonym_key()  # a missing key is refused before anything starts
    start(conn, policy, request_id, now=now)  # refuses a request that is not verified (REQ-1)
    with transaction(conn) as cur:
        request = fetch(cur, request_id, lock=True)
        subject = _subject(cur, policy, request)
        effect = EFFECT_OF_KIND[request.kind]
        insert_entries(cur, request_id, [p.id for p in purposes], effect, subject, now)
        rows, keys = apply_switches(cur, policy, purposes, subject, now)
        held = sum(held_rows(cur, policy, table, sorted(found), subject, now) for table, found in keys.items() if found)
        holds = 0
        if request.kind == "restriction" and restriction_holds_records(policy):
            holds = add_restriction_holds(cur, policy, request_id, subject, now)
        notices = _notify(cur, policy, request, subject, purposes, now, key)
        total = sum(n for per_table in rows.values() for n in per_table.values())
        counts = {"purposes": len(purposes), "rows": total, "held_rows": held, "holds_added": holds, "notices": notices}
        record(
            cur,
            policy,
            "processing_switched_off",
            request,
            now,
            counts=counts,
            effect=effect,
            purposes=[p.id for p in purposes],
            rows_by_purpose=rows,
            rows_by_table=_by_table(rows),  # what the audit's completed-requests-notified check reads (TP-5)
        )
        outcome = {
            "purposes": len(purposes),
            "rows_switched_off": total,
            "held_rows": held,
            "holds_added": holds,
            "notices": notices,
        }
        return complete(cur, policy, request_id, outcome=outcome, now=now)


def _by_table(rows: dict[str, dict[str, int]]) -> dict[str, int]:
    """Rows changed per table over every purpose ({purpose: {table: rows}} summed), the changed ones."""
    totals: dict[str, int] = {}
    for per_table in rows.values():
        for table, n in per_table.items():
            totals[table] = totals.get(table, 0) + n
    return {table: n for table, n in totals.items() if n > 0}


def _subject(cur: cursor, policy: Policy, request: SubjectRequest) -> Subject:
    """The person: the request's account and the address given at intake, widened (as REC-1 does)."""
    cur.execute("SELECT subject_email FROM governance.request_contacts WHERE request_id = %s", (request.request_id,))
    row = cur.fetchone()
    subject = resolve_subject(cur, policy, account_id=request.account_id, email=row[0] if row else None)
    if not subject.account_ids and not subject.emails:
        raise RequestError(
            f"request {request.request_id}: no account and no address name the person, so nothing can be "
            "registered; record the subject's account id or address in a new request"
        )
    return subject


def _notify(
    cur: cursor,
    policy: Policy,
    request: SubjectRequest,
    subject: Subject,
    purposes: list[Purpose],
    now: datetime,
    key: PseudonymKey | None,
) -> int:
    """TP-5: the notices of the request's event, about the categories holding the person's records;
    a restriction goes to every recipient of them (art. 19), an objection or a withdrawal to the
    recipients the purposes name."""
    wanted = None if request.kind == "restriction" else {r for p in purposes for r in p.recipients}
    if wanted is not None and not wanted:
        return 0
    return queue_notices(
        cur,
        policy,
        request,
        subject=subject,
        event=request.kind,
        tables_changed=count_records(cur, policy, subject),
        order_ids=person_order_ids(cur, policy, subject),
        now=now,
        key=key,
        recipients=wanted,
    )
