"""Delivering the recipients' notices (TP-5, GDPR art. 19): claim, send, record, and the on-call
alert for a dead letter. The ``recipient_notices`` DAG calls ``deliver_due`` every 5 minutes.

Claim-then-send (docs/adr/0010-recipient-notices.md): due rows are claimed and committed as
``sending`` first (``delivery_claim``), then sent (``delivery_send``, a few in flight at once),
then the outcomes are recorded with their evidence, a group per transaction (``delivery_record``). A crash (even SIGKILL)
between claim and send or between send and record leaves the row ``sending``; once stale it is
claimed and sent again. So no notice is lost, and none is *sent twice* in the sense that matters:
a repeat carries the same idempotency key (``webhook-id``, the drop's object key, the e-mail's
subject), and the recipient, which deduplicates on it, acts once; the row is recorded
acknowledged once, by whichever attempt's ack is recorded first.
"""

from __future__ import annotations

import logging
import smtplib
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime

from psycopg2.extensions import connection

from governance.breach.mail import Mailer, SmtpServer
from governance.db import transaction
from governance.errors import NoticeDeliveryError
from governance.notices import messages
from governance.notices.delivery_claim import claim
from governance.notices.delivery_record import RECORD_GROUP, Sent, record
from governance.notices.delivery_send import Channels, Outcome, send
from governance.notices.messages import OutboxRow
from governance.policy import Policy
from governance.policy.recipients import Recipient
from governance.windows import as_utc, iso

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Alerts:
    """Where on-call is told of a dead notice: the SMTP server, the address, the runbook."""

    smtp: SmtpServer
    to: str
    runbook_url: str


@dataclass
class Delivered:
    """A delivery run's counts by recorded state, and the dead notices' ids (alerted)."""

    counts: dict[str, int] = field(default_factory=dict)
    dead: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {"counts": dict(sorted(self.counts.items())), "dead": self.dead}


def deliver_due(
    conn: connection,
    policy: Policy,
    channels: Channels,
    *,
    now: datetime,
    run_id: str,
    alerts: Alerts | None = None,
    max_batches: int = 50,
) -> Delivered:
    """Claim and send due notices, batch after batch, until none is due (or ``max_batches``)."""
    done = Delivered()
    unalerted: list[int] = []
    for _ in range(max_batches):
        rows = claim(conn, policy, now=now, run_id=run_id)
        if not rows:
            break
        by_id = {row.notice_id: row for row in rows}
        for notice_id, state in sorted(deliver_batch(conn, policy, channels, rows, now=now, run_id=run_id).items()):
            row = by_id[notice_id]
            done.counts[state] = done.counts.get(state, 0) + 1
            if state == "dead":
                done.dead.append(row.notice_id)
                try:
                    alert_dead(policy, row, alerts)
                except (smtplib.SMTPException, OSError) as exc:  # keep delivering; fail the run below
                    log.error("the dead-letter alert for notice %s failed: %s", row.notice_id, type(exc).__name__)
                    unalerted.append(row.notice_id)
    log.info("recipient notices delivered: %s", done.to_json())  # counts and ids only
    if unalerted:
        raise NoticeDeliveryError(
            f"notice(s) {', '.join(map(str, unalerted))} are dead and on-call could not be e-mailed: see "
            "`governance notices list --state dead` and docs/runbook.md 'A recipient notice is dead'"
        )
    return done


def deliver_batch(
    conn: connection, policy: Policy, channels: Channels, rows: list[OutboxRow], *, now: datetime, run_id: str
) -> dict[int, str]:
    """Send claimed rows and record their outcomes: messages are built here, sent on a pool of
    ``notices.send_concurrency`` threads (network waits overlap), and recorded on this thread, on
    ``conn``, in groups of ``RECORD_GROUP`` as the sends return. {notice id: state recorded}."""
    recorded: dict[int, str] = {}
    pending: list[Sent] = []

    def flush() -> None:
        recorded.update(record(conn, policy, pending, claimed_at=now, now=now, run_id=run_id))
        pending.clear()

    with ThreadPoolExecutor(max_workers=policy.notices.send_concurrency) as pool:
        sending: dict[Future[Outcome], tuple[OutboxRow, str]] = {}
        for row in rows:
            recipient, payload, failed = _prepare(conn, policy, channels, row, now)
            if recipient is None or payload is None or recipient.notify is None:
                channel = recipient.notify.channel if recipient and recipient.notify else "none"
                pending.append(Sent(row, failed or Outcome("failed", "UnknownRecipient"), channel))
                continue
            sending[pool.submit(send, channels, recipient, row, payload)] = (row, recipient.notify.channel)
        for future in as_completed(sending):
            row, channel = sending[future]
            pending.append(Sent(row, future.result(), channel))
            if len(pending) >= RECORD_GROUP:
                flush()
    flush()
    return recorded


def _prepare(
    conn: connection, policy: Policy, channels: Channels, row: OutboxRow, now: datetime
) -> tuple[Recipient | None, bytes | None, Outcome | None]:
    """The row's recipient and message, or the failed outcome that stops it before sending."""
    recipient = next((r for r in policy.recipients if r.id == row.recipient_id), None)
    if recipient is None or recipient.notify is None:
        return recipient, None, Outcome("failed", "UnknownRecipient")
    try:
        return recipient, _payload(conn, policy, channels, row, now), None
    except Exception as exc:  # a missing key or record: this attempt fails by class, nothing sent
        return recipient, None, Outcome("failed", type(exc).__name__)


def _payload(conn: connection, policy: Policy, channels: Channels, row: OutboxRow, now: datetime) -> bytes:
    """The message; the database is read (in a read-only transaction) only for a rectification's values."""
    recipient = next(r for r in policy.recipients if r.id == row.recipient_id)
    key_conn = recipient.notify.encryption_key_conn if recipient.notify else None
    if not messages.needs_values(row) or key_conn is None:
        return messages.build(None, policy, recipient, row, None, sent_at=as_utc(now))
    key_text = channels.secrets.get(key_conn)
    with transaction(conn, read_only=True) as cur:
        return messages.build(cur, policy, recipient, row, key_text, sent_at=as_utc(now))


def alert_dead(policy: Policy, row: OutboxRow, alerts: Alerts | None) -> None:
    """E-mail on-call that a notice is dead: recipient id, notice id, attempts; no personal data."""
    if alerts is None:
        log.error("notice %s to %s is dead; no alert address configured", row.notice_id, row.recipient_id)
        return
    subject = f"[governance] notice {row.notice_id} to {row.recipient_id} is dead (TP-5)"
    source = f"request {row.request_id}" if row.request_id is not None else "a retention sweep"
    body = (
        f"Notice {row.notice_id} ({row.event}, {source}) to the recipient {row.recipient_id} could not "
        f"be delivered after {row.attempts} attempt(s) (policy: at most {policy.notices.max_attempts} attempts, "
        f"{policy.notices.max_age_days} days); queued {iso(row.created_at)}.\n"
        f"See: governance notices show {row.notice_id}; after fixing the cause: governance notices retry "
        f"{row.notice_id}; or, once told another way: governance notices ack {row.notice_id} --by WHO\n"
        f"Runbook: {alerts.runbook_url} ('A recipient notice is dead')\n"
    )
    with Mailer(alerts.smtp) as mail:
        mail.send(alerts.to, subject, body)
