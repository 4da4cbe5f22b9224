"""What the ``breach_notices`` DAG does every 15 minutes (SEC-2): alert on-call when a breach's
authority notice (72 h from detection, GDPR art. 33) is due within 24 h or late, send the people
concerned their notice in rate-limited batches, and mark breaches whose notices are all out.

At most once: a notice is claimed (``sending``, committed) before the SMTP call and marked
``sent``/``failed`` after it, so a rerun or a crash never notifies anyone twice; a notice left in
``sending`` by a crash is for a person to check (docs/runbook.md 'Breach notice stuck in sending').
Evidence and return values carry ids and counts only.
"""

from __future__ import annotations

import smtplib
from dataclasses import dataclass
from datetime import datetime, timedelta

from psycopg2.extensions import connection

from governance import evidence
from governance.breach.ledger import REQUIREMENTS, Breach, fetch_breach, notice_counts, record
from governance.breach.mail import Mailer, SmtpServer, deadline_alert, notice
from governance.breach.people import addresses
from governance.db import transaction
from governance.errors import NoticeDeliveryError
from governance.policy import Policy
from governance.windows import as_utc

DUE_SOON = timedelta(hours=24)


@dataclass(frozen=True)
class Batch:
    """What one run sent: counts per breach id (never an address)."""

    sent: dict[int, int]
    failed: dict[int, int]

    def to_json(self) -> dict[str, dict[str, int]]:
        return {
            "sent": {str(k): v for k, v in self.sent.items()},
            "failed": {str(k): v for k, v in self.failed.items()},
        }


def deadline_alerts(
    conn: connection, policy: Policy, server: SmtpServer, *, to: str, runbook_url: str, now: datetime
) -> list[tuple[int, str]]:
    """E-mail on-call once per breach and kind ('due_soon', then 'late') while the authority is not
    notified; each alert is marked and evidenced after it went out. Returns (breach id, kind)."""
    now = as_utc(now)
    with transaction(conn, read_only=True) as cur:
        cur.execute(
            "SELECT breach_id, CASE WHEN due_at <= %(now)s THEN 'late' ELSE 'due_soon' END FROM governance.breaches "
            "WHERE state = 'open' AND due_at - %(now)s <= %(soon)s AND ((due_at <= %(now)s AND late_alerted_at IS NULL) "
            "OR (due_at > %(now)s AND due_soon_alerted_at IS NULL)) ORDER BY breach_id",
            {"now": now, "soon": DUE_SOON},
        )
        pending = [(int(b), str(k)) for b, k in cur.fetchall()]
    done: list[tuple[int, str]] = []
    if not pending:
        return done
    with Mailer(server) as mail:
        for breach_id, kind in pending:
            with transaction(conn) as cur:
                breach = fetch_breach(cur, breach_id, lock=True)
                mail.send(to, *deadline_alert(breach, kind, runbook_url))
                column = "late_alerted_at" if kind == "late" else "due_soon_alerted_at"
                cur.execute(
                    f"UPDATE governance.breaches SET {column} = %s WHERE breach_id = %s",  # noqa: S608 - fixed names
                    (now, breach_id),
                )
                record(cur, policy, f"breach_deadline_{kind}", breach, now, alerts=1)
            done.append((breach_id, kind))
    return done


def _claim(conn: connection, limit: int, now: datetime) -> list[tuple[int, int]]:
    """Claim up to ``limit`` queued notices of breaches whose authority was notified; commit."""
    with transaction(conn) as cur:
        cur.execute(
            "UPDATE governance.breach_notices n SET state = 'sending', claimed_at = %(now)s WHERE notice_id IN ("
            " SELECT q.notice_id FROM governance.breach_notices q JOIN governance.breaches b USING (breach_id)"
            " WHERE q.state = 'queued' AND b.state = 'authority_notified' ORDER BY q.notice_id LIMIT %(limit)s"
            " FOR UPDATE OF q SKIP LOCKED) RETURNING n.notice_id, n.breach_id",
            {"now": now, "limit": limit},
        )
        return sorted((int(n), int(b)) for n, b in cur.fetchall())


def _mark(conn: connection, notice_id: int, now: datetime, failure: str | None) -> None:
    with transaction(conn) as cur:
        cur.execute(
            "UPDATE governance.breach_notices SET state = %s, failure = %s, sent_at = %s WHERE notice_id = %s",
            ("failed" if failure else "sent", failure, None if failure else now, notice_id),
        )


def _release(conn: connection, notice_ids: list[int]) -> None:
    """Put claimed notices that were never handed to the server back in the queue."""
    with transaction(conn) as cur:
        cur.execute(
            "UPDATE governance.breach_notices SET state = 'queued', claimed_at = NULL "
            "WHERE notice_id = ANY(%s) AND state = 'sending'",
            (notice_ids,),
        )


def send_notices(
    conn: connection, policy: Policy, server: SmtpServer, *, limit: int, now: datetime, run_id: str
) -> Batch:
    """Send at most ``limit`` queued notices (the rate limit of one run), then evidence the counts
    per breach. A lost connection re-queues what was not handed over and raises NoticeDeliveryError."""
    now = as_utc(now)
    claimed = _claim(conn, limit, now)
    sent: dict[int, int] = {}
    failed: dict[int, int] = {}
    if claimed:
        with transaction(conn, read_only=True) as cur:
            to = addresses(cur, policy, [n for n, _ in claimed])
            breaches = {b: fetch_breach(cur, b) for b in {b for _, b in claimed}}
        messages = {b: notice(policy, breach) for b, breach in breaches.items()}
        try:
            _deliver(conn, claimed, to, messages, server, now, sent, failed)
        finally:
            _evidence(conn, policy, breaches, sent, failed, now, run_id)
    return Batch(sent, failed)


def _deliver(
    conn: connection,
    claimed: list[tuple[int, int]],
    to: dict[int, str],
    messages: dict[int, tuple[str, str]],
    server: SmtpServer,
    now: datetime,
    sent: dict[int, int],
    failed: dict[int, int],
) -> None:
    pending = [n for n, _ in claimed]
    try:
        with Mailer(server) as mail:
            for notice_id, breach_id in claimed:
                failure = None
                address = to.get(notice_id)
                pending.remove(notice_id)
                if address is None:
                    failure = "no_address"  # the person's data is gone from the shop's tables
                else:
                    try:
                        mail.send(address, *messages[breach_id])
                    except smtplib.SMTPRecipientsRefused:
                        failure = "smtp_refused"
                    except smtplib.SMTPResponseException:
                        failure = "smtp_error"
                _mark(conn, notice_id, now, failure)
                tally = failed if failure else sent
                tally[breach_id] = tally.get(breach_id, 0) + 1
    except (smtplib.SMTPException, OSError) as exc:
        _release(conn, pending)
        raise NoticeDeliveryError(
            f"the mail server {server.host}:{server.port} failed ({type(exc).__name__}); {len(pending)} notice(s) "
            "queued again, the one in flight (if any) is left in 'sending' for a person to check; see "
            "docs/runbook.md 'Breach notice stuck in sending'"
        ) from None


def _evidence(
    conn: connection,
    policy: Policy,
    breaches: dict[int, Breach],
    sent: dict[int, int],
    failed: dict[int, int],
    now: datetime,
    run_id: str,
) -> None:
    with transaction(conn) as cur:
        for breach_id in sorted(breaches):
            evidence.append(
                cur,
                kind="breach_notices_sent",
                run_id=f"breach-{breach_id}",
                step=run_id,
                requirements=REQUIREMENTS,
                as_of=now,
                policy_version=policy.version,
                counts={"sent": sent.get(breach_id, 0), "failed": failed.get(breach_id, 0)},
                details={"breach_id": breach_id},
                numbered=True,
            )


def settle(conn: connection, policy: Policy, *, now: datetime) -> list[int]:
    """Breaches whose authority was notified and whose notices are all sent or failed move to
    ``subjects_notified`` (evidenced). Returns their ids."""
    now = as_utc(now)
    moved: list[int] = []
    with transaction(conn) as cur:
        cur.execute(
            "SELECT breach_id FROM governance.breaches b WHERE state = 'authority_notified' AND NOT EXISTS ("
            " SELECT 1 FROM governance.breach_notices n WHERE n.breach_id = b.breach_id"
            " AND n.state IN ('queued', 'sending')) ORDER BY breach_id FOR UPDATE"
        )
        for (breach_id,) in cur.fetchall():
            cur.execute(
                "UPDATE governance.breaches SET state = 'subjects_notified', subjects_notified_at = %s "
                "WHERE breach_id = %s",
                (now, breach_id),
            )
            breach = fetch_breach(cur, int(breach_id))
            record(cur, policy, "breach_subjects_notified", breach, now, **notice_counts(cur, int(breach_id)))
            moved.append(int(breach_id))
    return moved
