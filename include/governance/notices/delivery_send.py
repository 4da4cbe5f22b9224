"""Sending one message on the recipient's channel (TP-5): the middle of claim-then-send.

- **webhook**: an HTTP POST of the JSON body, signed by Standard Webhooks (``webhook-id`` = the
  notice's idempotency key, ``webhook-timestamp``, ``webhook-signature`` made with the reference
  library's ``Webhook.sign`` and the recipient's secret from its connection), with a timeout. A 2xx
  whose JSON body is ``{"acknowledged": "<idempotency key or notice id>"}`` acknowledges the notice.
- **email**: the body as a plain-text message to the recipient company's mailbox, over the SMTP
  server (``governance_smtp`` in Airflow).
- **drop**: the body as an object ``<prefix><idempotency key>.json`` in the recipient's bucket.

The outcome is ``acknowledged``, ``sent`` (await the callback or a manual ack) or ``failed`` with
the error's class or HTTP status only (never a response body: it might quote the payload).
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
from standardwebhooks.webhooks import Webhook

from governance.breach.mail import Mailer, SmtpServer
from governance.notices.messages import OutboxRow
from governance.notices.secrets import Secrets
from governance.policy.recipients import Recipient

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@dataclass(frozen=True)
class Outcome:
    """What one send did: ``acknowledged`` (ack in the response), ``sent`` or ``failed``."""

    state: str
    error: str | None = None


@dataclass
class Channels:
    """The means of sending: the recipients' secrets, an HTTP client (made on first use), the SMTP
    server and the object store client (needed only when a recipient uses them)."""

    secrets: Secrets
    smtp: SmtpServer | None = None
    s3: S3Client | None = None
    timeout: float = 10.0
    _http: httpx.Client | None = field(default=None, repr=False)

    def http(self) -> httpx.Client:
        if self._http is None:
            # TCP_NODELAY: a request's headers and body go out at once, not 40 ms apart (Nagle's
            # algorithm against the receiver's delayed ACK on a kept-alive connection).
            transport = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
            self._http = httpx.Client(timeout=self.timeout, follow_redirects=False, transport=transport)
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None


def signed_headers(secret: str, message_id: str, payload: bytes, at: datetime | None = None) -> dict[str, str]:
    """The Standard Webhooks headers for ``payload`` (signed at the wall clock by default: the
    receiver checks the timestamp against its own clock)."""
    moment = at or datetime.now(UTC)
    signature = Webhook(secret).sign(message_id, moment, payload.decode("utf-8"))
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": signature,
    }


def acknowledges(response_body: bytes, row: OutboxRow) -> bool:
    """Whether a response body is this notice's ack: ``{"acknowledged": key or notice id}``."""
    try:
        data: Any = json.loads(response_body or b"null")
    except ValueError:
        return False
    if not isinstance(data, dict):
        return False
    return str(data.get("acknowledged")) in (row.idempotency_key, str(row.notice_id))


def send(channels: Channels, recipient: Recipient, row: OutboxRow, payload: bytes) -> Outcome:
    """Send ``payload`` for ``row`` on the recipient's channel; errors become a failed outcome."""
    notify = recipient.notify
    if notify is None:
        return Outcome("failed", "NoChannel")
    try:
        if notify.webhook is not None:
            secret = channels.secrets.get(notify.webhook.signing_secret_conn)
            headers = signed_headers(secret, row.idempotency_key, payload)
            response = channels.http().post(notify.webhook.url, content=payload, headers=headers)
            if not 200 <= response.status_code < 300:
                return Outcome("failed", f"HTTP {response.status_code}")
            return Outcome("acknowledged" if acknowledges(response.content, row) else "sent")
        if notify.email is not None:
            if channels.smtp is None:
                return Outcome("failed", "NoSmtpServer")
            with Mailer(channels.smtp) as mail:
                subject = f"[governance] notice {row.notice_id}: {row.event} ({row.idempotency_key})"
                mail.send(notify.email.to, subject, payload.decode("utf-8"))
            return Outcome("sent")
        if notify.drop is not None:
            if channels.s3 is None:
                return Outcome("failed", "NoObjectStore")
            channels.s3.put_object(
                Bucket=notify.drop.bucket,
                Key=f"{notify.drop.prefix}{row.idempotency_key}.json",
                Body=payload,
                ContentType="application/json",
            )
            return Outcome("sent")
    except Exception as exc:  # any failure of the channel is this attempt's failure, by class only
        return Outcome("failed", _error_name(exc))
    return Outcome("failed", "NoChannel")


def _error_name(exc: Exception) -> str:
    code = getattr(exc, "response", None)
    if isinstance(code, dict):  # botocore ClientError: its error code, not its message
        return f"{type(exc).__name__}:{code.get('Error', {}).get('Code', '')}"
    return type(exc).__name__
