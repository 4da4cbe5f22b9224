"""Acknowledgements of the recipients' notices (TP-5) and what people do with a notice: the ack by
signed callback or by hand (``governance notices ack ID --by WHO``), a retry, one notice shown, and
the alert to compliance for notices sent but not acknowledged within the policy's
``ack_within_days`` (once per notice, ``ack_overdue_alerted_at``). Each state change commits with
its evidence entry; an ack for an unknown notice, or one already acknowledged, is refused.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from psycopg2.extensions import connection

from governance import evidence
from governance.breach.mail import Mailer, SmtpServer
from governance.db import transaction
from governance.errors import RequestError
from governance.policy import Policy
from governance.windows import as_utc, iso

VIA = ("response", "callback", "manual")
_BY = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_SHOW = (
    "SELECT notice_id, request_id, run_id, recipient_id, event, categories, tables, columns, record_counts, "
    "cardinality(subject_pseudonyms) AS pseudonyms, cardinality(order_ids) AS order_ids, idempotency_key, "
    "created_at, state, attempts, next_attempt_at, last_attempt_at, last_error, claimed_at, sent_at, acked_at, "
    "acked_via, ack_overdue_alerted_at, dead_at, payload_removed_at FROM governance.recipient_outbox WHERE notice_id = %s"
)


class NoticeNotFound(RequestError):
    """No notice with that id; see ``governance notices list``."""

    def __init__(self, notice_id: int):
        self.notice_id = notice_id
        super().__init__(f"no notice {notice_id}; see `governance notices list`")


class NoticeConflict(RequestError):
    """The notice is not in a state that allows this (already acknowledged, not sent yet...)."""


def show(conn: connection, notice_id: int) -> dict[str, Any]:
    """One notice: ids, states, times, counts (pseudonyms and order ids counted, not shown)."""
    with transaction(conn, read_only=True) as cur:
        cur.execute(_SHOW, (notice_id,))
        row = cur.fetchone()
        if row is None:
            raise NoticeNotFound(notice_id)
        names = [d[0] for d in cur.description or ()]
    return {k: iso(v) if isinstance(v, datetime) else v for k, v in zip(names, row, strict=True)}


def acknowledge(
    conn: connection, policy: Policy, notice_id: int, *, via: str, now: datetime, by: str | None = None
) -> dict[str, Any]:
    """Record the recipient's ack of a notice that was sent (or attempted): ``callback`` or
    ``manual`` (``by``: who recorded it, a staff handle). Refused when unknown, not attempted yet,
    or already acknowledged."""
    if via not in VIA:
        raise RequestError(f"unknown acknowledgement channel {via!r}; valid: {', '.join(VIA)}")
    if by is not None and not _BY.match(by):
        raise RequestError("--by must be a staff handle (lower-case letters, digits, '.', '_', '-'), not a name")
    now = as_utc(now)
    with transaction(conn) as cur:
        cur.execute(
            "SELECT state, recipient_id, request_id, attempts FROM governance.recipient_outbox "
            "WHERE notice_id = %s FOR UPDATE",
            (notice_id,),
        )
        found = cur.fetchone()
        if found is None:
            raise NoticeNotFound(notice_id)
        state, recipient_id, request_id, attempts = found
        if state == "acknowledged":
            raise NoticeConflict(f"notice {notice_id} is already acknowledged; nothing recorded")
        if state == "queued":
            raise NoticeConflict(f"notice {notice_id} was never sent; it cannot be acknowledged yet")
        cur.execute(
            "UPDATE governance.recipient_outbox SET state = 'acknowledged', acked_at = %(now)s, acked_via = %(via)s, "
            "sent_at = coalesce(sent_at, %(now)s), dead_at = NULL WHERE notice_id = %(id)s",
            {"now": now, "via": via, "id": notice_id},
        )
        details = {"notice_id": notice_id, "request_id": request_id, "recipient_id": recipient_id, "via": via}
        _evidence(cur, policy, notice_id, "notice_acknowledged", f"ack:{via}", now, attempts, {**details, "by": by})
    return {"notice_id": notice_id, "recipient_id": recipient_id, "state": "acknowledged", "acked_via": via}


def retry(conn: connection, policy: Policy, notice_id: int, *, now: datetime) -> dict[str, Any]:
    """Make a failed, dead or sent-but-unacknowledged notice due now (one more attempt)."""
    now = as_utc(now)
    with transaction(conn) as cur:
        cur.execute(
            "SELECT state, attempts FROM governance.recipient_outbox WHERE notice_id = %s FOR UPDATE", (notice_id,)
        )
        found = cur.fetchone()
        if found is None:
            raise NoticeNotFound(notice_id)
        state, attempts = found
        if state not in ("failed", "dead", "sent"):
            raise NoticeConflict(f"notice {notice_id} is {state}: only a failed, dead or sent notice can be retried")
        cur.execute(
            "UPDATE governance.recipient_outbox SET state = 'failed', next_attempt_at = %(now)s, dead_at = NULL "
            "WHERE notice_id = %(id)s",
            {"now": now, "id": notice_id},
        )
        step = f"retry:{state}@{iso(now)}"
        _evidence(cur, policy, notice_id, "notice_retry", step, now, attempts, {"notice_id": notice_id, "was": state})
    return {"notice_id": notice_id, "state": "failed", "next_attempt_at": iso(now), "was": state}


def _evidence(
    cur: Any,
    policy: Policy,
    notice_id: int,
    kind: str,
    step: str,
    now: datetime,
    attempts: int,
    details: dict[str, Any],
) -> None:
    evidence.append(
        cur,
        kind=kind,
        run_id=f"notice-{notice_id}",
        step=step,
        requirements=["TP-5"],
        as_of=now,
        policy_version=policy.version,
        counts={"attempts": attempts},
        details=details,
    )


def overdue_alerts(conn: connection, policy: Policy, smtp: SmtpServer, *, to: str, now: datetime) -> list[int]:
    """Tell compliance, once, of notices sent but not acknowledged within ``ack_within_days``; the
    ids alerted. The rows are marked, evidenced and mailed in one transaction: a mail that fails
    leaves them unmarked for the next run."""
    now = as_utc(now)
    days = policy.notices.ack_within_days
    with transaction(conn) as cur:
        cur.execute(
            "UPDATE governance.recipient_outbox SET ack_overdue_alerted_at = %(now)s WHERE state = 'sent' "
            "AND sent_at <= %(due)s AND ack_overdue_alerted_at IS NULL RETURNING notice_id, recipient_id, sent_at",
            {"now": now, "due": now - timedelta(days=days)},
        )
        rows = sorted(cur.fetchall())
        if not rows:
            return []
        ids = [int(r[0]) for r in rows]
        evidence.append(
            cur,
            kind="notices_ack_overdue",
            run_id=f"notices-ack-overdue-{iso(now)}",
            requirements=["TP-5"],
            as_of=now,
            policy_version=policy.version,
            counts={"notices": len(ids)},
            details={"notice_ids": ids, "recipients": sorted({r[1] for r in rows}), "ack_within_days": days},
        )
        lines = "\n".join(f"- notice {i} to {r}, sent {iso(s)}" for i, r, s in rows)
        body = (
            f"{len(ids)} notice(s) to recipients of personal data (TP-5, GDPR art. 19) were sent but not acknowledged "
            f"within {days} days:\n{lines}\n\nAsk the recipient; record its answer with "
            "`governance notices ack ID --by WHO`, or resend with `governance notices retry ID`.\n"
        )
        with Mailer(smtp) as mail:
            mail.send(to, f"[governance] {len(ids)} recipient notice(s) not acknowledged after {days} days", body)
    return ids
