"""Recording what a send did (TP-5): the last half of claim-then-send, one short transaction per
notice holding the state change and its hash-chained evidence entry (ids, counts, error class).

- ``acknowledged`` (acked_via ``response``) or ``sent``: ``sent_at = now``.
- ``failed``: ``next_attempt_at = now + wait``, the wait drawn by tenacity's
  ``wait_exponential_jitter`` for this attempt number (the policy's ``retry_initial_seconds`` up to
  ``retry_max_seconds``); ``dead`` instead once ``max_attempts`` were made or the notice is older
  than ``max_age_days`` (on-call is then alerted by the caller, ``delivery.deliver_due``).

The update applies only to the row as this sender claimed it (``sending`` with the same
``claimed_at``): a row reclaimed as stale by another sender, or acknowledged by callback in the
meantime, is left to that outcome and nothing is recorded twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from psycopg2.extensions import connection
from tenacity import RetryCallState, Retrying, wait_exponential_jitter

from governance import evidence
from governance.db import transaction
from governance.notices.delivery_send import Outcome
from governance.notices.messages import OutboxRow
from governance.policy import Policy
from governance.windows import as_utc

_GUARD = "WHERE notice_id = %(id)s AND state = 'sending' AND claimed_at = %(claimed)s"
_UPDATES = {
    "acknowledged": "SET state = 'acknowledged', sent_at = %(now)s, acked_at = %(now)s, acked_via = 'response', "
    "last_error = NULL",
    "sent": "SET state = 'sent', sent_at = %(now)s, last_error = NULL",
    "failed": "SET state = 'failed', next_attempt_at = %(next)s, last_error = %(error)s",
    "dead": "SET state = 'dead', dead_at = %(now)s, last_error = %(error)s",
}


def retry_wait(policy: Policy, attempt: int) -> timedelta:
    """The wait before the next attempt after failed attempt number ``attempt`` (>= 1)."""
    settings = policy.notices
    wait = wait_exponential_jitter(
        multiplier=settings.retry_initial_seconds,
        max=settings.retry_max_seconds,
        jitter=settings.retry_initial_seconds,
    )
    state = RetryCallState(retry_object=Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = max(attempt, 1)
    return timedelta(seconds=float(wait(state)))


def final_state(policy: Policy, row: OutboxRow, outcome: Outcome, now: datetime) -> str:
    """The state to record: the outcome's, or ``dead`` for a failure past the attempts or the age."""
    if outcome.state != "failed":
        return outcome.state
    settings = policy.notices
    too_old = now - as_utc(row.created_at) >= timedelta(days=settings.max_age_days)
    return "dead" if row.attempts >= settings.max_attempts or too_old else "failed"


def record(
    conn: connection,
    policy: Policy,
    row: OutboxRow,
    outcome: Outcome,
    *,
    claimed_at: datetime,
    now: datetime,
    channel: str,
) -> str | None:
    """Record ``outcome`` for the row claimed at ``claimed_at``; the state recorded, or None when
    the row was no longer this sender's claim (nothing changed, nothing recorded)."""
    now = as_utc(now)
    state = final_state(policy, row, outcome, now)
    params = {
        "id": row.notice_id,
        "claimed": as_utc(claimed_at),
        "now": now,
        "next": now + retry_wait(policy, row.attempts),
        "error": outcome.error,
    }
    with transaction(conn) as cur:
        cur.execute(f"UPDATE governance.recipient_outbox {_UPDATES[state]} {_GUARD} RETURNING notice_id", params)
        if cur.fetchone() is None:
            return None
        evidence.append(
            cur,
            kind=f"notice_{state}",
            run_id=f"notice-{row.notice_id}",
            step=f"attempt-{row.attempts}",
            requirements=["TP-5"],
            as_of=now,
            policy_version=policy.version,
            counts={"attempts": row.attempts},
            details={
                "notice_id": row.notice_id,
                "request_id": row.request_id,
                "recipient_id": row.recipient_id,
                "event": row.event,
                "channel": channel,
                "error": outcome.error,
            },
        )
    return state
