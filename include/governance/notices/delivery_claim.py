"""Claiming due notices for delivery (TP-5): the first half of claim-then-send.

A notice is due when it is ``queued`` or ``failed`` with ``next_attempt_at <= now``, or stale:
``sending`` since before ``now - claim_timeout`` (its sender died between claim and record). Due
rows are locked ``FOR UPDATE SKIP LOCKED`` (two senders never claim the same row), marked
``sending`` with ``claimed_at = now`` and one more attempt, and COMMITTED, with their evidence,
before anything is sent: a crash after this leaves the row ``sending``, to be claimed again once
stale, so no notice is lost; the idempotency key makes a repeat harmless for the recipient.

Only recipients with a ``notify:`` channel are claimed (the others wait in the outbox). A
recipient's ``rate_limit_per_minute`` caps the attempts started for it in the minute up to ``now``,
and a batch takes the recipients' due notices in turn (round robin), so a recipient's backlog never
starves the others, within a run or across runs.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from psycopg2.extensions import connection

from governance import evidence
from governance.db import transaction
from governance.notices.messages import OutboxRow
from governance.policy import Policy
from governance.windows import as_utc

_CLAIM = """
WITH limits AS (
    SELECT * FROM unnest(%(recipients)s::text[], %(limits)s::int[]) AS l(recipient_id, per_minute)
), candidates AS (
    -- per recipient, at most its rate limit and at most the batch: a limited recipient's backlog
    -- never crowds the others out of a batch
    SELECT c.* FROM limits l CROSS JOIN LATERAL (
        SELECT o.notice_id, o.recipient_id, o.next_attempt_at, o.state FROM governance.recipient_outbox o
        WHERE o.recipient_id = l.recipient_id
          AND ((o.state IN ('queued', 'failed') AND o.next_attempt_at <= %(now)s)
               OR (o.state = 'sending' AND o.claimed_at <= %(stale)s))
        ORDER BY o.next_attempt_at, o.notice_id
        LIMIT least(coalesce(l.per_minute, %(limit)s), %(limit)s)
        FOR UPDATE SKIP LOCKED
    ) c
), recent AS (
    SELECT recipient_id, count(*) AS n FROM governance.recipient_outbox
    WHERE recipient_id = ANY(%(recipients)s) AND last_attempt_at > %(minute_ago)s AND last_attempt_at <= %(now)s
    GROUP BY recipient_id
), ranked AS (
    SELECT c.notice_id, c.state AS was, l.per_minute,
           row_number() OVER (PARTITION BY c.recipient_id ORDER BY c.next_attempt_at, c.notice_id) AS turn,
           coalesce(r.n, 0) AS recent
    FROM candidates c JOIN limits l USING (recipient_id) LEFT JOIN recent r USING (recipient_id)
), chosen AS (
    -- round robin: every recipient's first due notice, then every second, ...; so one recipient's
    -- backlog (however high its limit) never fills the batch while another's notices wait
    SELECT notice_id, was FROM ranked WHERE per_minute IS NULL OR turn + recent <= per_minute
    ORDER BY turn, notice_id LIMIT %(limit)s
)
UPDATE governance.recipient_outbox o
SET state = 'sending', claimed_at = %(now)s, attempts = o.attempts + 1, last_attempt_at = %(now)s
FROM chosen
WHERE o.notice_id = chosen.notice_id
RETURNING chosen.was, o.notice_id, o.request_id, o.recipient_id, o.event, o.categories, o.tables, o.columns,
    o.record_counts, o.subject_pseudonyms, o.pseudonym_key_id, o.order_ids, o.idempotency_key, o.created_at, o.attempts
"""


def claim(conn: connection, policy: Policy, *, now: datetime, run_id: str, limit: int | None = None) -> list[OutboxRow]:
    """Claim up to ``limit`` (default the policy's batch size) due notices and commit: they are
    ``sending`` before this returns. One evidence entry for the batch (ids and counts)."""
    now = as_utc(now)
    settings = policy.notices
    deliverable = [r for r in policy.recipients if r.notify is not None]
    if not deliverable:
        return []
    batch = limit or settings.batch_size
    with transaction(conn) as cur:
        cur.execute(
            _CLAIM,
            {
                "recipients": [r.id for r in deliverable],
                "limits": [r.notify.rate_limit_per_minute if r.notify else None for r in deliverable],
                "now": now,
                "stale": now - timedelta(minutes=settings.claim_timeout_minutes),
                "minute_ago": now - timedelta(minutes=1),
                "limit": batch,
            },
        )
        fetched = cur.fetchall()
        if not fetched:
            return []
        rows = sorted((OutboxRow(*row[1:]) for row in fetched), key=lambda r: r.notice_id)
        stale = sum(1 for row in fetched if row[0] == "sending")
        evidence.append(
            cur,
            kind="notices_sending",
            run_id=run_id,
            step="claim",
            numbered=True,
            requirements=["TP-5"],
            as_of=now,
            policy_version=policy.version,
            counts={"notices": len(rows), "stale_reclaimed": stale},
            details={"notice_ids": [r.notice_id for r in rows]},
        )
    return rows
