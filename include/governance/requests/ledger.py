"""The request ledger's transitions (REQ-1): verify, extend, start, complete, refuse, withdraw.

received -> verified -> in_progress -> completed; refused (with a reason) or withdrawn from any
open state. Each change commits with its evidence entry in one transaction; an illegal one is
refused here with the states it is allowed from, and by the table's trigger for any other writer.
Nothing is disclosed, changed or deleted for a request that is not verified: ``start`` refuses it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from psycopg2 import sql
from psycopg2.extensions import connection, cursor
from psycopg2.extras import Json

from governance.db import transaction
from governance.errors import RequestError
from governance.policy import Policy
from governance.requests import model
from governance.requests.intake import check_choice, check_text
from governance.requests.intake import open_request as open_request
from governance.requests.model import MAX_EXTENSION_MONTHS, OPEN_STATES, TRANSITIONS, SubjectRequest
from governance.requests.store import PERSONAL_LOOKING, SELECT_COLUMNS, actor, record, returned, sha256_text
from governance.requests.store import contact as contact
from governance.requests.store import fetch as fetch
from governance.requests.store import list_requests as list_requests
from governance.requests.store import workable as workable
from governance.windows import as_utc, iso

NOT_VERIFIED = "not verified: nothing is disclosed, changed or deleted for a request that is not verified (REQ-1)"


def _refuse_state(request: SubjectRequest, action: str, allowed_from: tuple[str, ...]) -> None:
    """RequestError unless ``request`` is in one of ``allowed_from``, naming what is possible."""
    if request.state in allowed_from:
        return
    rid = request.request_id
    if not request.is_open:
        closed = iso(request.closed_at) if request.closed_at else "-"
        raise RequestError(
            f"request {rid} is {request.state} (closed {closed}): a closed request does not change; "
            f"it cannot be {action}; open a new request if the person asks again"
        )
    nexts = ", ".join(TRANSITIONS[request.state])
    raise RequestError(
        f"request {rid} is {request.state}: only a request that is {' or '.join(allowed_from)} can be {action} "
        f"(from {request.state} it can become {nexts})"
    )


def _update(cur: cursor, request_id: int, changes: Mapping[str, Any]) -> SubjectRequest:
    """UPDATE the row with ``changes`` (column names from this module, values as parameters)."""
    assignments = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(name)) for name in changes)
    cur.execute(
        sql.SQL("UPDATE governance.subject_requests SET {} WHERE request_id = %s RETURNING {}").format(
            assignments, SELECT_COLUMNS
        ),
        [*changes.values(), request_id],
    )
    return returned(cur)


def _check_reason(reason: str | None) -> str:
    text = check_text(reason, "--reason", "the reason")
    if PERSONAL_LOOKING.search(text):
        raise RequestError(
            "--reason looks like it holds personal data (an e-mail address or a phone number); "
            "give the reason without naming anyone"
        )
    return text


def verify(
    conn: connection, policy: Policy, request_id: int, *, verified_by: str, method: str, now: datetime
) -> SubjectRequest:
    """Record that the person's identity was checked, by whom and how (never the document)."""
    now = as_utc(now)
    check_choice(method, model.VERIFICATION_METHODS, "verification method", "--method")
    by = check_text(verified_by, "--by", "who verified the identity")
    with transaction(conn) as cur:
        _refuse_state(_locked(cur, request_id), "verified", ("received",))
        changes = {"state": "verified", "verified_by": by, "verified_at": now, "verification_method": method}
        request = _update(cur, request_id, changes)
        record(cur, policy, "request_verified", request, now, from_state="received", method=method, by=actor(by))
    return request


def extend(
    conn: connection, policy: Policy, request_id: int, *, months: int, reason: str, now: datetime
) -> SubjectRequest:
    """Extend the deadline by ``months`` (1 or 2; at most 2 in all), with the reason (GDPR art.
    12(3)): told to the person within the first month, so only before the original deadline."""
    now = as_utc(now)
    if months not in (1, 2):
        raise RequestError(f"--months {months}: an extension is 1 or 2 further months (GDPR art. 12(3))")
    text = _check_reason(reason)
    with transaction(conn) as cur:
        request = _locked(cur, request_id)
        _refuse_state(request, "extended", OPEN_STATES)
        total = request.extension_months + months
        if total > MAX_EXTENSION_MONTHS:
            room = MAX_EXTENSION_MONTHS - request.extension_months
            raise RequestError(
                f"request {request_id} is already extended by {request.extension_months} month(s), to "
                f"{iso(request.deadline)}; GDPR art. 12(3) allows {MAX_EXTENSION_MONTHS} further months in all"
                + (f": give --months {room}" if room else "")
            )
        if now >= request.due_at:
            raise RequestError(
                f"request {request_id} was due {iso(request.due_at)}: an extension must be made (and told to the "
                "person) within one month of receipt (GDPR art. 12(3)); answer it now"
            )
        reasons = f"{request.extension_reason}; {text}" if request.extension_reason else text
        changes = {
            "extended_due_at": model.extended_due_at(request.received_at, total),
            "extension_months": total,
            "extension_reason": reasons,
            "due_soon_alerted_at": None,  # the new deadline gets its own 7-day alert
        }
        request = _update(cur, request_id, changes)
        record(
            cur,
            policy,
            "request_extended",
            request,
            now,
            step=f"request_extended:{total}",
            months_added=months,
            extension_months=total,
            extended_due_at=iso(request.deadline),
            reason_sha256=sha256_text(text),
        )
    return request


def _close(
    conn: connection, policy: Policy, request_id: int, *, to: str, action: str, by: str, now: datetime, **extra: Any
) -> SubjectRequest:
    """refused or withdrawn: from any open state, with the actor (and a refusal's reason)."""
    with transaction(conn) as cur:
        before = _locked(cur, request_id)
        _refuse_state(before, action, OPEN_STATES)
        request = _update(cur, request_id, {"state": to, "closed_at": now, **extra})
        reason = sha256_text(extra["refused_reason"]) if "refused_reason" in extra else None
        record(cur, policy, f"request_{to}", request, now, from_state=before.state, by=actor(by), reason_sha256=reason)
    return request


def refuse(conn: connection, policy: Policy, request_id: int, *, reason: str, by: str, now: datetime) -> SubjectRequest:
    """Refuse the request (unfounded or excessive, identity not established...) with the reason."""
    text = _check_reason(reason)
    who = check_text(by, "--by", "who refuses the request")
    return _close(
        conn, policy, request_id, to="refused", action="refused", by=who, now=as_utc(now), refused_reason=text
    )


def withdraw(conn: connection, policy: Policy, request_id: int, *, by: str, now: datetime) -> SubjectRequest:
    """The person withdrew the request before it was completed."""
    who = check_text(by, "--by", "who records the withdrawal")
    return _close(conn, policy, request_id, to="withdrawn", action="withdrawn", by=who, now=as_utc(now))


def start(conn: connection, policy: Policy, request_id: int, *, now: datetime) -> SubjectRequest:
    """verified -> in_progress before any work on it; a request already in progress is returned as
    it is (a rerun resumes); anything else is refused (REQ-1: never work on an unverified one)."""
    now = as_utc(now)
    with transaction(conn) as cur:
        request = _locked(cur, request_id)
        if request.state == "in_progress":
            return request
        if request.state == "received":
            raise RequestError(
                f"request {request_id} is {NOT_VERIFIED}; verify it first: "
                f"governance request verify {request_id} --by WHO --method METHOD"
            )
        _refuse_state(request, "started", ("verified",))
        request = _update(cur, request_id, {"state": "in_progress", "started_at": now})
        record(cur, policy, "request_started", request, now, from_state="verified")
    return request


def complete(
    cur: cursor, policy: Policy, request_id: int, *, outcome: Mapping[str, int], now: datetime
) -> SubjectRequest:
    """in_progress -> completed with its outcome (counts only), in the caller's transaction, so the
    work's own rows (an export) and the completion commit together."""
    now = as_utc(now)
    bad = [str(k) for k, v in outcome.items() if not isinstance(k, str) or type(v) is not int or v < 0]
    if bad:
        raise RequestError(f"outcome {', '.join(bad)}: an outcome holds counts only (whole numbers from 0)")
    request = _locked(cur, request_id)
    if request.state in ("received", "verified"):
        raise RequestError(f"request {request_id} is {request.state}, not in progress: start it before completing it")
    _refuse_state(request, "completed", ("in_progress",))
    request = _update(cur, request_id, {"state": "completed", "closed_at": now, "outcome": Json(dict(outcome))})
    record(cur, policy, "request_completed", request, now, counts=dict(outcome), from_state="in_progress")
    return request


def _locked(cur: cursor, request_id: int) -> SubjectRequest:
    """The request, locked until the transaction ends (what every transition starts with)."""
    return fetch(cur, request_id, lock=True)
