"""Recording what sends did (TP-5): the last half of claim-then-send. Outcomes are recorded in
groups (``RECORD_GROUP`` at most, as their sends return): one short transaction per group holds
the state changes, set-based, and one hash-chained evidence entry per resulting state listing the
notice ids (and, for failures, each one's error class or HTTP status): ids and counts only.

- ``acknowledged`` (acked_via ``response``) or ``sent``: ``sent_at = now``.
- ``failed``: ``next_attempt_at = now + wait``, the wait drawn by tenacity's
  ``wait_exponential_jitter`` for this attempt number (the policy's ``retry_initial_seconds`` up to
  ``retry_max_seconds``); ``dead`` instead once ``max_attempts`` were made or the notice is older
  than ``max_age_days`` (on-call is then alerted by the caller, ``delivery.deliver_due``).

The update applies only to rows as this sender claimed them (``sending`` with the same
``claimed_at``): a row reclaimed as stale by another sender, or acknowledged by callback in the
meantime, is left to that outcome and nothing is recorded twice. A crash before a group is
recorded leaves its rows ``sending``: they are sent again under the same idempotency keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from psycopg2.extensions import connection, cursor
from tenacity import RetryCallState, Retrying, wait_exponential_jitter

from governance import evidence
from governance.db import transaction
from governance.notices.delivery_send import Outcome
from governance.notices.messages import OutboxRow
from governance.policy import Policy
from governance.windows import as_utc

RECORD_GROUP = 50  # outcomes recorded per transaction at most (a crash resends at most this many)
_RECORD = """
UPDATE governance.recipient_outbox o SET
    state = v.state,
    sent_at = CASE WHEN v.state IN ('sent', 'acknowledged') THEN %(now)s ELSE o.sent_at END,
    acked_at = CASE WHEN v.state = 'acknowledged' THEN %(now)s END,
    acked_via = CASE WHEN v.state = 'acknowledged' THEN 'response' END,
    next_attempt_at = CASE WHEN v.state = 'failed' THEN v.next_at ELSE o.next_attempt_at END,
    dead_at = CASE WHEN v.state = 'dead' THEN %(now)s END,
    last_error = v.error
FROM unnest(%(ids)s::bigint[], %(states)s::text[], %(errors)s::text[], %(next)s::timestamptz[])
    AS v(notice_id, state, error, next_at)
WHERE o.notice_id = v.notice_id AND o.state = 'sending' AND o.claimed_at = %(claimed)s
RETURNING o.notice_id, v.state
"""


@dataclass(frozen=True)
class Sent:
    """One claimed row, what its send did, and on which channel."""

    row: OutboxRow
    outcome: Outcome
    channel: str


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
    conn: connection, policy: Policy, sent: list[Sent], *, claimed_at: datetime, now: datetime, run_id: str
) -> dict[int, str]:
    """Record the outcomes of rows claimed at ``claimed_at``, in one transaction with their
    evidence; {notice id: state recorded} (a row no longer this sender's claim is left out)."""
    now = as_utc(now)
    if not sent:
        return {}
    states = [final_state(policy, s.row, s.outcome, now) for s in sent]
    params = {
        "ids": [s.row.notice_id for s in sent],
        "states": states,
        "errors": [s.outcome.error for s in sent],
        "next": [now + retry_wait(policy, s.row.attempts) for s in sent],
        "claimed": as_utc(claimed_at),
        "now": now,
    }
    # Not waiting for the WAL flush (docs/adr/0003): a server crash may lose this record and its
    # evidence together; the rows are then still 'sending' (the claim was durable) and are sent
    # again under the same idempotency keys, which the recipients deduplicate (docs/adr/0010).
    with transaction(conn, durable=False) as cur:
        cur.execute(_RECORD, params)
        recorded = {int(i): str(state) for i, state in cur.fetchall()}
        by_id = {s.row.notice_id: s for s in sent}
        for state in sorted(set(recorded.values())):
            ids = sorted(i for i, st in recorded.items() if st == state)
            _evidence(cur, policy, state, [by_id[i] for i in ids], now, run_id)
    return recorded


def _evidence(cur: cursor, policy: Policy, state: str, sent: list[Sent], now: datetime, run_id: str) -> None:
    details: dict[str, object] = {
        "notice_ids": [s.row.notice_id for s in sent],
        "recipients": sorted({s.row.recipient_id for s in sent}),
        "channels": sorted({s.channel for s in sent}),
        "attempts": {str(s.row.notice_id): s.row.attempts for s in sent},
    }
    if state in ("failed", "dead"):
        details["errors"] = {str(s.row.notice_id): s.outcome.error for s in sent}
    evidence.append(
        cur,
        kind=f"notices_{state}",
        run_id=run_id,
        step="record",
        numbered=True,
        requirements=["TP-5"],
        as_of=now,
        policy_version=policy.version,
        counts={"notices": len(sent)},
        details=details,
    )
