"""Reading the request ledger, and the one evidence entry every change of it records (REQ-1).

Readers take the caller's cursor, so a worker reads and changes a request in one transaction.
Evidence carries ids, kinds, states, instants, counts and hashes: free text only as its SHA-256,
an actor that looks like an address only as a hash prefix, and never the address to answer to.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from psycopg2 import sql
from psycopg2.extensions import cursor

from governance import evidence
from governance.errors import RequestError, RequestNotFound
from governance.policy import Policy
from governance.requests.model import COLUMNS, KIND_REQUIREMENTS, OPEN_STATES, Contact, SubjectRequest
from governance.windows import iso

SELECT_COLUMNS = sql.SQL(", ").join(sql.Identifier(name) for name in COLUMNS)
_DEADLINE = sql.SQL("coalesce(extended_due_at, due_at)")
# An e-mail address, or a phone-like number (+47 ..., or 8+ digits with at most single spaces); dates pass.
PERSONAL_LOOKING = re.compile(r"@|\+\d|\d(?: ?\d){7,}")


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def returned(cur: cursor) -> SubjectRequest:
    """The request a statement selecting or ``RETURNING`` ``SELECT_COLUMNS`` gave."""
    row = cur.fetchone()
    if row is None:  # pragma: no cover - INSERT/UPDATE ... RETURNING of a row that exists
        raise RuntimeError("the statement returned no request")
    return SubjectRequest(*row)


def fetch(cur: cursor, request_id: int, *, lock: bool = False) -> SubjectRequest:
    """One request (``lock``: FOR UPDATE, until the caller's transaction ends); RequestNotFound."""
    query = sql.SQL("SELECT {} FROM governance.subject_requests WHERE request_id = %s").format(SELECT_COLUMNS)
    cur.execute(query + sql.SQL(" FOR UPDATE" if lock else ""), (request_id,))
    row = cur.fetchone()
    if row is None:
        raise RequestNotFound(request_id)
    return SubjectRequest(*row)


def list_requests(
    cur: cursor, *, states: Iterable[str] | None = None, kinds: Iterable[str] | None = None, limit: int | None = None
) -> list[SubjectRequest]:
    """Requests in the order they were opened, filtered by state and kind."""
    where: list[sql.Composable] = [sql.SQL("TRUE")]
    params: list[Any] = []
    if states is not None:
        where.append(sql.SQL("state = ANY(%s)"))
        params.append(list(states))
    if kinds is not None:
        where.append(sql.SQL("kind = ANY(%s)"))
        params.append(list(kinds))
    query = sql.SQL("SELECT {} FROM governance.subject_requests WHERE {} ORDER BY request_id").format(
        SELECT_COLUMNS, sql.SQL(" AND ").join(where)
    )
    if limit is not None:
        query += sql.SQL(" LIMIT %s")
        params.append(int(limit))
    cur.execute(query, params)
    return [SubjectRequest(*row) for row in cur.fetchall()]


def workable(cur: cursor, kinds: Iterable[str]) -> list[int]:
    """Ids of the verified or in-progress requests of ``kinds``, earliest deadline first. Nothing is
    disclosed, changed or deleted for a request that is not verified (REQ-1). A rectification waits
    until its corrections are recorded (REC-1, ``governance request rectify ID --set``)."""
    cur.execute(
        sql.SQL(
            "SELECT request_id FROM governance.subject_requests r WHERE state IN ('verified', 'in_progress') "
            "AND kind = ANY(%s) AND (kind <> 'rectification' OR EXISTS (SELECT 1 FROM "
            "governance.request_corrections c WHERE c.request_id = r.request_id)) ORDER BY {}, request_id"
        ).format(_DEADLINE),
        (list(kinds),),
    )
    return [int(request_id) for (request_id,) in cur.fetchall()]


def contact(cur: cursor, request_id: int) -> Contact:
    """Where to answer the request; RequestError once the contact was removed (RET-9)."""
    cur.execute(
        "SELECT c.reply_to, c.subject_email, r.state FROM governance.subject_requests r "
        "LEFT JOIN governance.request_contacts c USING (request_id) WHERE r.request_id = %s",
        (request_id,),
    )
    row = cur.fetchone()
    if row is None:
        raise RequestNotFound(request_id)
    reply_to, subject_email, state = row
    if reply_to is None:
        raise RequestError(
            f"request {request_id} ({state}) has no contact any more: the answer address is removed a window "
            "after the request closed (RET-9); nothing can be sent for it"
        )
    return Contact(reply_to=reply_to, subject_email=subject_email)


def open_duplicate(cur: cursor, kind: str, account_ids: list[int], emails: list[str]) -> SubjectRequest | None:
    """An open request of ``kind`` for one of these accounts or (normalised) addresses."""
    cur.execute(
        sql.SQL(
            "SELECT {} FROM governance.subject_requests WHERE kind = %(kind)s AND state = ANY(%(open)s) "
            "AND (account_id = ANY(%(accounts)s) OR email_sha256 IN "
            "(SELECT governance.email_pseudonym(e) FROM unnest(%(emails)s::text[]) AS e)) "
            "ORDER BY request_id LIMIT 1"
        ).format(SELECT_COLUMNS),
        {"kind": kind, "open": list(OPEN_STATES), "accounts": account_ids, "emails": emails},
    )
    row = cur.fetchone()
    return None if row is None else SubjectRequest(*row)


def actor(by: str) -> str:
    """Who acted, fit for evidence: as given, unless it looks like an address (then a hash prefix)."""
    return f"sha256:{sha256_text(by.strip().lower())[:12]}" if "@" in by else by


def record(
    cur: cursor,
    policy: Policy,
    kind: str,
    request: SubjectRequest,
    now: datetime,
    *,
    step: str | None = None,
    counts: dict[str, int] | None = None,
    **details: Any,
) -> None:
    """One transition's evidence entry, in the caller's transaction (CONTRIBUTING.md habit 5)."""
    base = {
        "request_id": request.request_id,
        "kind": request.kind,
        "state": request.state,
        "channel": request.channel,
        "account_id": request.account_id,
        "email_sha256_prefix": request.email_pseudonym_prefix,
        "subject_found": request.subject_found,
        "received_at": iso(request.received_at),
        "due_at": iso(request.due_at),
        "deadline": iso(request.deadline),
    }
    evidence.append(
        cur,
        kind=kind,
        run_id=f"request-{request.request_id}",
        step=step or kind,
        requirements=KIND_REQUIREMENTS[request.kind],
        as_of=now,
        policy_version=policy.version,
        counts=counts or {},
        details={k: v for k, v in {**base, **details}.items() if v is not None},
    )
