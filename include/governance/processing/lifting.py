"""Lifting a restriction (RES-1, GDPR art. 18(3)): ``governance request lift ID --by WHO``.

In one transaction: the request's register rows get lifted_at/lifted_by (and the reason), the
restriction's person holds are lifted (so the next sweep removes what is overdue), the
``restriction_lifted`` evidence (counts and the reason's SHA-256, never the text) and the
recipients' ``restriction_lifted`` notices (TP-5, the same recipients as the restriction's).
Refused for a request that is not a completed restriction, and for one already lifted. Lifting does
not switch anything back on: a newsletter or a cookie consent is given again by the person.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg2.extensions import connection, cursor

from governance.db import transaction
from governance.errors import RequestError
from governance.notices.outbox import queue_notices
from governance.notices.pseudonyms import PseudonymKey, pseudonym_key
from governance.person.records import count_records
from governance.person.subject import Subject, resolve_subject
from governance.policy import Policy
from governance.processing.holds import lift_restriction_holds
from governance.processing.register import entries, lift_entries
from governance.requests.intake import check_text
from governance.requests.model import SubjectRequest
from governance.requests.rectification import person_order_ids
from governance.requests.store import PERSONAL_LOOKING, actor, fetch, record, sha256_text
from governance.windows import as_utc, iso


@dataclass(frozen=True)
class Lifted:
    """What a lift changed: counts only."""

    request_id: int
    entries: int
    holds: int
    notices: int


def lift_restriction(
    conn: connection,
    policy: Policy,
    request_id: int,
    *,
    by: str,
    reason: str | None = None,
    now: datetime,
    key: PseudonymKey | None = None,
) -> Lifted:
    """Lift the restriction of ``request_id`` at ``now`` (see the module)."""
    now = as_utc(now)
    who = check_text(by, "--by", "who lifts the restriction")
    text = _reason(reason)
    if key is None and policy.recipients:
        key = pseudonym_key()
    with transaction(conn) as cur:
        request = fetch(cur, request_id, lock=True)
        _check_liftable(cur, request, now)
        lifted = lift_entries(cur, request_id, by=who, reason=text, now=now)
        holds = lift_restriction_holds(cur, policy, request_id, by=who, now=now)
        subject = _subject(cur, policy, request)
        notices = queue_notices(
            cur,
            policy,
            request,
            subject=subject,
            event="restriction_lifted",
            tables_changed=count_records(cur, policy, subject),
            order_ids=person_order_ids(cur, policy, subject),
            now=now,
            key=key,
        )
        counts = {"entries_lifted": lifted, "holds_lifted": holds, "notices": notices}
        reason_sha256 = sha256_text(text) if text else None
        record(
            cur, policy, "restriction_lifted", request, now, counts=counts, by=actor(who), reason_sha256=reason_sha256
        )
    return Lifted(request_id, lifted, holds, notices)


def _reason(reason: str | None) -> str | None:
    if reason is None or not reason.strip():
        return None
    if PERSONAL_LOOKING.search(reason):
        raise RequestError(
            "--reason looks like it holds personal data (an e-mail address or a phone number); "
            "give the reason without naming anyone"
        )
    return reason.strip()


def _check_liftable(cur: cursor, request: SubjectRequest, now: datetime) -> None:
    rid = request.request_id
    if request.kind != "restriction" or request.state != "completed":
        raise RequestError(
            f"request {rid} is a {request.state} {request.kind} request: only a completed restriction can be "
            f"lifted (see `governance request show {rid}`)"
        )
    found = entries(cur, request_id=rid, lock=True)
    if found and all(e.lifted_at is not None for e in found):
        first = found[0]
        raise RequestError(
            f"request {rid}: the restriction was already lifted at {iso(first.lifted_at) if first.lifted_at else '-'} by {first.lifted_by}; "
            "nothing to do"
        )
    if not found:
        raise RequestError(f"request {rid}: the processing register has no entry of it; nothing to lift")
    started = min(e.starts_at for e in found)
    if now < started:
        raise RequestError(f"request {rid}: --now {iso(now)} is before the restriction started ({iso(started)})")


def _subject(cur: cursor, policy: Policy, request: SubjectRequest) -> Subject:
    """The person as at the restriction: its account and the address given at intake (kept by the
    restriction's own hold, RET-9's contact included); without them, the account alone."""
    cur.execute("SELECT subject_email FROM governance.request_contacts WHERE request_id = %s", (request.request_id,))
    row = cur.fetchone()
    email = row[0] if row else None
    if request.account_id is None and email is None:
        return Subject((), (), False)
    return resolve_subject(cur, policy, account_id=request.account_id, email=email)
