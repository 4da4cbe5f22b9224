"""TP-3: telling a person, before their first inclusion in an advertising audience, that their
address goes to the recipient (hashed), from when, and how to say no. One e-mail per person
(Norwegian then English, from the audience's ``notice_template``), over the SMTP connection the
breach notices and export links use. Each notice is recorded in ``governance.audience_notices``
in a transaction held across its hand-over to SMTP: a failed send records nothing (the next run
tries again), a concurrent run waits on the row and skips it; only a crash between the server's
acceptance and the commit can repeat one notice. The address is read from the account when
mailing and kept nowhere; logs, evidence and errors carry counts only.
"""

from __future__ import annotations

import smtplib
from dataclasses import dataclass
from datetime import datetime, timedelta
from string import Template
from typing import Any

from governance import evidence
from governance.audiences.selection import TO_TELL, parameters
from governance.breach.mail import Mailer, SmtpServer
from governance.db import transaction
from governance.errors import AudienceFailed
from governance.person.subject import EMAIL_SHAPE
from governance.policy import Policy
from governance.policy.audiences import TEMPLATES_DIR, Audience

BATCH = 500  # persons read (ids and addresses) per round trip


@dataclass(frozen=True)
class Notified:
    told: int
    refused: int  # the server refused the address, or it is not one: tried again next run


def notice_message(policy: Policy, audience: Audience, *, starts_on: datetime, reference: str) -> tuple[str, str]:
    """The subject and body of the notice: the Norwegian text, then the English one."""
    recipient = next(r for r in policy.recipients if r.id == audience.recipient)
    values = {"recipient": recipient.name, "starts_on": starts_on.date().isoformat(), "reference": reference}
    parts = [
        Template((TEMPLATES_DIR / f"{audience.notice_template}.{lang}.txt").read_text(encoding="utf-8")).substitute(
            values
        )
        for lang in ("nb", "en")
    ]
    subject = f"Annonser på {recipient.name} / Advertisements on {recipient.name}"
    return subject, "\n\n---\n\n".join(part.strip() for part in parts) + "\n"


def tell(
    conn: Any, smtp: SmtpServer, policy: Policy, audience: Audience, *, now: datetime, run_id: str, limit: int = 10_000
) -> Notified:
    """Mail the notice to up to ``limit`` persons who would be in the audience but for it; record
    each; one evidence entry for the run (counts only). Raises AudienceFailed (retryable) when the
    mail server cannot be reached; the notices sent before stay recorded."""
    subject, body = notice_message(
        policy, audience, starts_on=now + timedelta(days=audience.notice_days), reference=audience.id
    )
    told = refused = 0
    skipped: list[int] = []
    try:
        with Mailer(smtp) as mail:
            while told + refused < limit:
                batch = _next_batch(conn, audience, now, skipped, min(BATCH, limit - told - refused))
                if not batch:
                    break
                for account_id, address in batch:
                    if _tell_one(conn, mail, audience, account_id, address, subject, body, now, run_id):
                        told += 1
                    else:
                        refused += 1
                        skipped.append(account_id)
    except (smtplib.SMTPException, OSError) as exc:  # connecting, or ending the session
        raise AudienceFailed(
            f"audience {audience.id}: the mail server could not be used ({type(exc).__name__}); "
            f"{told} notice(s) sent before are recorded, run again"
        ) from None
    finally:
        _record(conn, policy, audience, now=now, run_id=run_id, refused=refused)
    return Notified(told=told, refused=refused)


def _next_batch(conn: Any, audience: Audience, now: datetime, skipped: list[int], size: int) -> list[tuple[int, str]]:
    with transaction(conn, read_only=True) as cur:
        cur.execute(TO_TELL, parameters(audience, audience.purpose, now, limit=size, skip=skipped))
        rows: list[tuple[int, str]] = cur.fetchall()
    return rows


def _tell_one(
    conn: Any,
    mail: Mailer,
    audience: Audience,
    account_id: int,
    address: str,
    subject: str,
    body: str,
    now: datetime,
    run_id: str,
) -> bool:
    """Record and send one notice in one transaction; False (nothing recorded) when refused."""
    if not EMAIL_SHAPE.match(address.strip()):
        return False
    try:
        with transaction(conn) as cur:
            cur.execute(
                "INSERT INTO governance.audience_notices (account_id, audience_id, notified_at, run_id) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING account_id",
                (account_id, audience.id, now, run_id),
            )
            if cur.fetchone() is not None:  # else told meanwhile by another run
                mail.send(address.strip(), subject, body)
    except smtplib.SMTPRecipientsRefused:
        return False
    except (smtplib.SMTPException, OSError) as exc:
        raise AudienceFailed(
            f"audience {audience.id}: the notice to account {account_id} could not be mailed "
            f"({type(exc).__name__}); the notices sent before are recorded, run again"
        ) from None
    return True


def _record(conn: Any, policy: Policy, audience: Audience, *, now: datetime, run_id: str, refused: int) -> None:
    """One evidence entry per run: how many were told in it (from the table, so a rerun adds none)."""
    with transaction(conn) as cur:
        cur.execute(
            "SELECT count(*) FROM governance.audience_notices WHERE audience_id = %s AND run_id = %s",
            (audience.id, run_id),
        )
        told = int(_one(cur))
        if told == 0 and refused == 0:
            return
        evidence.append(
            cur,
            kind="audience_notified",
            run_id=run_id,
            rule_id=audience.id,
            step="notices",
            requirements=["TP-3", *[r for r in audience.requirements if r != "TP-3"]],
            as_of=now,
            policy_version=policy.version,
            counts={"told": told, "refused": refused},
            details={"audience": audience.id, "recipient": audience.recipient, "notice_days": audience.notice_days},
        )


def _one(cur: Any) -> Any:
    """The single value of a query that returns exactly one row."""
    row = cur.fetchone()
    if row is None:
        raise AudienceFailed("a query that returns one row returned none; this is a bug, report it")
    return row[0]
