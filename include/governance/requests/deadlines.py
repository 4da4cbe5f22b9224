"""Request deadlines (REQ-1): which open requests have 7 days or less left, which are late, and the
alert that tells on-call and compliance, naming request ids and kinds, never the person.

``check_deadlines`` marks each request it reports (``due_soon_alerted_at`` / ``late_alerted_at``)
with its evidence in one transaction, so a rerun reports nothing new; its ``notify`` (``mail_alert``
in the request_deadlines DAG) runs before that commit, so an alert that could not be sent is not
marked and the next run sends it. An extension clears the 7-day mark: the new deadline is alerted again.
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from psycopg2 import sql
from psycopg2.extensions import connection

from governance.breach.mail import Mailer, SmtpServer
from governance.db import transaction
from governance.errors import InfrastructureError
from governance.policy import Policy
from governance.requests.model import OPEN_STATES, SubjectRequest
from governance.requests.store import SELECT_COLUMNS, record
from governance.windows import as_utc, iso

DUE_SOON = timedelta(days=7)
RUNBOOK_SECTION = "docs/runbook.md, 'A data-subject request is late'"

_PENDING = sql.SQL(
    "SELECT {columns} FROM governance.subject_requests WHERE state = ANY(%(open)s) AND ("
    "(coalesce(extended_due_at, due_at) <= %(now)s AND late_alerted_at IS NULL) OR "
    "(coalesce(extended_due_at, due_at) > %(now)s AND coalesce(extended_due_at, due_at) - %(now)s <= %(soon)s "
    "AND due_soon_alerted_at IS NULL)) ORDER BY coalesce(extended_due_at, due_at), request_id FOR UPDATE"
)
_MARK = "UPDATE governance.subject_requests SET {column} = %s WHERE request_id = %s RETURNING {columns}"


@dataclass(frozen=True)
class DeadlineAlerts:
    """The requests newly due within 7 days, and those newly late, as marked."""

    due_soon: list[SubjectRequest] = field(default_factory=list)
    late: list[SubjectRequest] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.due_soon or self.late)


def check_deadlines(
    conn: connection, policy: Policy, *, now: datetime, notify: Callable[[DeadlineAlerts], None] | None = None
) -> DeadlineAlerts:
    """Mark and evidence the open requests with 7 days or less left, and the late ones, that were
    not alerted yet; one transaction. A rerun at the same ``now`` returns nothing. ``notify`` is
    called with what is found before the marks commit: when it raises, nothing is marked."""
    now = as_utc(now)
    due_soon: list[SubjectRequest] = []
    late: list[SubjectRequest] = []
    with transaction(conn) as cur:
        cur.execute(_PENDING.format(columns=SELECT_COLUMNS), {"open": list(OPEN_STATES), "now": now, "soon": DUE_SOON})
        pending = [SubjectRequest(*row) for row in cur.fetchall()]
        for request in pending:
            which = "late" if request.deadline <= now else "due_soon"
            column = "late_alerted_at" if which == "late" else "due_soon_alerted_at"
            cur.execute(
                sql.SQL(_MARK).format(column=sql.Identifier(column), columns=SELECT_COLUMNS),
                (now, request.request_id),
            )
            row = cur.fetchone()
            assert row is not None  # the row is locked FOR UPDATE above
            marked = SubjectRequest(*row)
            record(
                cur,
                policy,
                "request_deadline_alert",
                marked,
                now,
                step=f"{which}:{iso(marked.deadline)}",
                counts={"alerts": 1},
                alert=which,
                days_left=marked.days_left(now),
            )
            (late if which == "late" else due_soon).append(marked)
        alerts = DeadlineAlerts(due_soon=due_soon, late=late)
        if notify is not None and alerts:
            notify(alerts)
    return alerts


def mail_alert(server: SmtpServer, to: Sequence[str], alerts: DeadlineAlerts, *, now: datetime) -> None:
    """Send ``alert_message`` to every address of ``to`` in one e-mail (on-call and compliance).
    Raises InfrastructureError (retryable) naming the SMTP reply code, never an address."""
    subject, body = alert_message(alerts, now=now)
    try:
        with Mailer(server) as mail:
            mail.send(", ".join(to), subject, body)
    except (smtplib.SMTPException, OSError) as exc:
        code = f"SMTP {exc.smtp_code}" if isinstance(exc, smtplib.SMTPResponseException) else type(exc).__name__
        raise InfrastructureError(
            f"the data-subject request deadline alert could not be mailed ({code}); nothing was marked, so the "
            "next run sends it; check the Airflow connection governance_smtp (docs/runbook.md, 'A data-subject "
            "request is late')"
        ) from None


def alert_message(alerts: DeadlineAlerts, *, now: datetime) -> tuple[str, str]:
    """The alert's subject and body: request ids, kinds, states, deadlines, days left or late."""
    now = as_utc(now)
    subject = (
        f"[governance] data-subject requests: {len(alerts.late)} late, "
        f"{len(alerts.due_soon)} due within {DUE_SOON.days} days (REQ-1)"
    )
    lines = [f"Data-subject requests needing an answer, as of {iso(now)} (REQ-1: one month from receipt).", ""]
    if alerts.late:
        lines.append("Late (past the deadline):")
        lines += [
            f"  request {r.request_id} ({r.kind}, {r.state}): due {iso(r.deadline)}, "
            f"{r.days_late(now)} day(s) late" + _extended(r)
            for r in alerts.late
        ]
        lines.append("")
    if alerts.due_soon:
        lines.append(f"Due within {DUE_SOON.days} days:")
        lines += [
            f"  request {r.request_id} ({r.kind}, {r.state}): due {iso(r.deadline)}, "
            f"{r.days_left(now)} day(s) left" + _extended(r)
            for r in alerts.due_soon
        ]
        lines.append("")
    lines.append(
        "See `governance request show ID`; a request still 'received' needs its identity verified first. "
        f"What to do: {RUNBOOK_SECTION}."
    )
    return subject, "\n".join(lines)


def _extended(request: SubjectRequest) -> str:
    return f" (extended by {request.extension_months} month(s))" if request.extension_months else ""
