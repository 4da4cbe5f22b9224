"""E-mail for breaches (SEC-2): the notice to a person (Norwegian and English in one message, from
the templates under include/templates/) and the deadline alert to on-call, sent over SMTP.

The library takes an SMTP host and port (the DAG reads them from the Airflow connection
``governance_smtp``). A person's address is only ever in the SMTP envelope and the To header.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from string import Template
from types import TracebackType

from governance.breach.ledger import Breach
from governance.policy import Policy
from governance.policy.base import INCLUDE_DIR
from governance.windows import iso

TEMPLATES_DIR = INCLUDE_DIR / "templates"
SENDER = "personvern@example.invalid"


@dataclass(frozen=True)
class SmtpServer:
    """Where to send: host and port, and how (implicit TLS, STARTTLS, login)."""

    host: str
    port: int
    use_ssl: bool = False
    starttls: bool = False
    login: str | None = None
    password: str | None = None
    timeout: float = 30.0
    sender: str = SENDER


class Mailer:
    """One SMTP session for a batch: ``with Mailer(server) as mail: mail.send(...)``."""

    def __init__(self, server: SmtpServer) -> None:
        self.server = server
        self._smtp: smtplib.SMTP | None = None

    def __enter__(self) -> Mailer:
        s = self.server
        if s.use_ssl:
            self._smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=ssl.create_default_context())
        else:
            self._smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            if s.starttls:
                self._smtp.starttls(context=ssl.create_default_context())
        if s.login:
            self._smtp.login(s.login, s.password or "")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (smtplib.SMTPException, OSError):
                self._smtp.close()
            self._smtp = None

    def send(self, to: str, subject: str, body: str) -> None:
        """Hand one plain-text message to the server; raises smtplib's errors as they are."""
        if self._smtp is None:
            raise RuntimeError("Mailer.send outside its `with` block")
        message = EmailMessage()
        message["From"] = self.server.sender
        message["To"] = to
        message["Subject"] = subject
        message.set_content(body)
        self._smtp.send_message(message)


def notice(policy: Policy, breach: Breach) -> tuple[str, str]:
    """The subject and body of a breach notice: the Norwegian text, then the English one."""
    names = {c.id: c.name for c in policy.categories}
    values = {
        "description": breach.description,
        "categories": "; ".join(f"{names.get(c, c)} ({c})" for c in breach.categories),
        "window_from": iso(breach.window_from),
        "window_to": iso(breach.window_to),
        "reference": f"B-{breach.breach_id}",
    }
    parts = [
        Template((TEMPLATES_DIR / f"breach_notice.{lang}.txt").read_text()).substitute(values) for lang in ("nb", "en")
    ]
    subject = f"Brudd på personopplysningssikkerheten / Personal data breach (B-{breach.breach_id})"
    return subject, "\n\n---\n\n".join(part.strip() for part in parts) + "\n"


def deadline_alert(breach: Breach, kind: str, runbook_url: str) -> tuple[str, str]:
    """On-call's alert that the authority notice (GDPR art. 33, 72 h) is due soon or late: ids only."""
    what = "is LATE" if kind == "late" else "is due within 24 hours"
    subject = f"[governance] breach {breach.breach_id}: the authority notice {what} (due {iso(breach.due_at)})"
    body = (
        f"Breach {breach.breach_id} (categories {', '.join(breach.categories)}), detected {iso(breach.detected_at)}: "
        f"the notice to the data protection authority {what}; it is due {iso(breach.due_at)} "
        "(72 hours after detection, GDPR art. 33).\n"
        f"Notify the authority, then record it: governance breach notify-authority {breach.breach_id} "
        "--reference REF\n"
        f"Runbook: {runbook_url} ('Personal-data breach')\n"
    )
    return subject, body
