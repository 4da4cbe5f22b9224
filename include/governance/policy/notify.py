"""How each recipient is told (TP-5, GDPR art. 19) and the delivery settings of the notices.

A recipient's ``notify:`` names exactly one channel: an HTTPS ``webhook`` (signed by Standard
Webhooks with the secret of an Airflow connection), an ``email`` address of the recipient company
(a mailbox such as privacy@, never a person's), or an object-store ``drop`` (bucket and prefix);
optionally ``encryption_key_conn``, the connection holding the recipient's public JWK, to which any
corrected value travels encrypted (JWE, TP-2), ``rate_limit_per_minute``, and ``retention_ended``: the
recipient is also told when a retention sweep deletes or anonymises records of a category it
receives (TP-5 for RET-3/RET-8; checked against the rules in ``Policy``). Secrets are never in
the policy file: only connection ids are, and a value that looks like a secret is refused at load.
Plain ``http`` is refused except to a loopback host (tests, development).

The policy-level ``notices:`` section sets how hard delivery tries (``max_attempts``,
``max_age_days``, the retry backoff), when a sent notice without an acknowledgement alerts
compliance (``ack_within_days``) and how long a claimed notice may stay ``sending``.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from governance.policy.base import StrictModel

CONN_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# Keys a secret would be written under: refused with the field to use instead.
_SECRET_KEYS = ("secret", "signing_secret", "password", "key", "private_key", "public_key", "jwk", "token")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX = re.compile(r"^([a-z0-9][a-z0-9._-]*/)*$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _conn_id(value: str, field: str) -> str:
    if value.startswith("whsec_") or not CONN_ID.match(value):
        raise ValueError(
            f"{field} must name an Airflow connection (lower-case letters, digits, '_', e.g. "
            f"'recipient_carrier_webhook'), not hold a secret: put the secret in the connection's password "
            "(or the environment) and name the connection here"
        )
    return value


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Webhook(StrictModel):
    """An HTTPS endpoint of the recipient, and the connection holding the signing secret."""

    url: str
    signing_secret_conn: str

    @field_validator("url")
    @classmethod
    def _https(cls, value: str) -> str:
        parts = urlsplit(value)
        if not parts.hostname:
            raise ValueError(f"webhook url {value!r} has no host; give e.g. 'https://partner.example/gdpr/notices'")
        if parts.scheme == "https" or (parts.scheme == "http" and _loopback(parts.hostname)):
            return value
        raise ValueError(
            f"webhook url must use https (TP-2: notices travel encrypted); plain {parts.scheme!r} is allowed only "
            "to a loopback host (127.0.0.1, ::1, localhost) for tests and development"
        )

    @field_validator("signing_secret_conn")
    @classmethod
    def _conn(cls, value: str) -> str:
        return _conn_id(value, "signing_secret_conn")


class Email(StrictModel):
    """The recipient company's mailbox for notices (a role address, not a person's)."""

    to: str

    @field_validator("to")
    @classmethod
    def _address(cls, value: str) -> str:
        if not _EMAIL.match(value):
            raise ValueError(f"{value!r} is not an e-mail address; give the recipient's mailbox, e.g. privacy@...")
        return value


class Drop(StrictModel):
    """An object-store bucket and prefix the recipient collects notices from."""

    bucket: str
    prefix: str = ""

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, value: str) -> str:
        if not _BUCKET.match(value):
            raise ValueError(f"{value!r} is not an S3 bucket name (lower-case letters, digits, '.', '-')")
        return value

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not _PREFIX.match(value):
            raise ValueError(f"prefix {value!r} must be '' or lower-case path segments ending in '/', e.g. 'gdpr/'")
        return value


class Notify(StrictModel):
    """Exactly one channel, plus the optional encryption key connection and rate limit."""

    webhook: Webhook | None = None
    email: Email | None = None
    drop: Drop | None = None
    encryption_key_conn: str | None = None
    rate_limit_per_minute: int | None = Field(default=None, ge=1)
    # TP-5: told of the records of its categories a retention sweep deletes or anonymises (opt-in).
    retention_ended: bool = False

    @model_validator(mode="before")
    @classmethod
    def _no_literal_secret(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for channel in (data, *(v for v in data.values() if isinstance(v, dict))):
                found = sorted(k for k in channel if k in _SECRET_KEYS)
                if found:
                    raise ValueError(
                        f"notify: {', '.join(found)} would put a secret in the policy file; name an Airflow "
                        "connection instead ('signing_secret_conn', 'encryption_key_conn')"
                    )
        return data

    @field_validator("encryption_key_conn")
    @classmethod
    def _key_conn(cls, value: str | None) -> str | None:
        return None if value is None else _conn_id(value, "encryption_key_conn")

    @model_validator(mode="after")
    def _one_channel(self) -> Notify:
        channels = [name for name in ("webhook", "email", "drop") if getattr(self, name) is not None]
        if len(channels) != 1:
            raise ValueError(
                f"notify: give exactly one of 'webhook', 'email', 'drop' (found {', '.join(channels) or 'none'})"
            )
        return self

    @property
    def channel(self) -> str:
        return "webhook" if self.webhook else "email" if self.email else "drop"


class NoticeSettings(StrictModel):
    """Delivery of the recipients' notices (TP-5): retries, dead letter, acknowledgement window."""

    max_attempts: int = Field(default=8, ge=1)
    max_age_days: int = Field(default=7, ge=1)
    ack_within_days: int = Field(default=14, ge=1)
    retry_initial_seconds: float = Field(default=60.0, gt=0)
    retry_max_seconds: float = Field(default=3600.0, gt=0)
    send_timeout_seconds: float = Field(default=10.0, gt=0)
    claim_timeout_minutes: int = Field(default=15, ge=1)
    batch_size: int = Field(default=200, ge=1)
    send_concurrency: int = Field(default=8, ge=1, le=64)  # sends in flight at once (threads)
    # A sweep batch's retention_ended notice names at most this many records (more: several notices).
    retention_records_per_notice: int = Field(default=1000, ge=1, le=10_000)
