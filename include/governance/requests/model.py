"""What a data-subject request is (REQ-1): its kinds and the rights they exercise, how it arrives,
how an identity is checked, the state machine, the one-month deadline, and the ledger's row.

The row (``SubjectRequest``) holds no personal data: the subject is an account id and/or the e-mail
pseudonym, of which output shows the first 12 hex characters only. The address to answer to lives
apart (``Contact``, governance.request_contacts) and never appears in a repr, a log or evidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from dateutil.relativedelta import relativedelta

from governance.windows import as_utc, iso

KINDS = (
    "access",
    "portability",
    "erasure",
    "rectification",
    "restriction",
    "objection",
    "consent_withdrawal",
    "account_deletion",
)
# The right each kind exercises (docs/requirements.md, "Rights of the data subject"); REQ-1 for all.
KIND_REQUIREMENTS: dict[str, list[str]] = {
    "access": ["REQ-1", "ACC-1"],
    "portability": ["REQ-1", "POR-1"],
    "erasure": ["REQ-1", "ERA-1"],
    "rectification": ["REQ-1", "REC-1"],
    "restriction": ["REQ-1", "RES-1"],
    "objection": ["REQ-1", "OBJ-1"],
    "consent_withdrawal": ["REQ-1", "CON-1"],
    "account_deletion": ["REQ-1", "RET-7", "ERA-1"],  # deleting the account, choosing what goes (RET-7)
}
CHANNELS = ("email", "support_tool", "web_form", "post", "phone", "in_person")
# How an identity was checked: the method only, never the document or its number (REQ-1).
VERIFICATION_METHODS = ("id_document", "signed_in_account", "bankid", "known_contact")

OPEN_STATES = ("received", "verified", "in_progress")
CLOSED_STATES = ("completed", "refused", "withdrawn")
STATES = OPEN_STATES + CLOSED_STATES
# The state machine, as the trigger governance.subject_request_transition() enforces it.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "received": ("verified", "refused", "withdrawn"),
    "verified": ("in_progress", "refused", "withdrawn"),
    "in_progress": ("completed", "refused", "withdrawn"),
    "completed": (),
    "refused": (),
    "withdrawn": (),
}

ANSWER_WITHIN = relativedelta(months=1)  # GDPR art. 12(3): one calendar month from receipt
MAX_EXTENSION_MONTHS = 2  # ... extendable by two further months, with the reasons
PSEUDONYM_SHOWN = 12  # hex characters of an e-mail pseudonym that output and evidence may show
_DAY = timedelta(days=1)


def due_at(received_at: datetime) -> datetime:
    """One calendar month after receipt, in UTC: 31 January -> 28 (or 29) February."""
    return as_utc(received_at) + ANSWER_WITHIN


def extended_due_at(received_at: datetime, extension_months: int) -> datetime:
    """The deadline after ``extension_months`` (1 or 2) further months: the period is then 2 or 3
    calendar months from receipt (so 31 January + 2 more is 30 April, not 28 April)."""
    return as_utc(received_at) + relativedelta(months=1 + extension_months)


@dataclass(frozen=True)
class SubjectRequest:
    """One row of governance.subject_requests, field by column."""

    request_id: int
    kind: str
    account_id: int | None
    email_sha256: str | None
    channel: str
    opened_by: str
    received_at: datetime
    opened_at: datetime
    due_at: datetime
    extended_due_at: datetime | None
    extension_months: int
    extension_reason: str | None
    state: str
    subject_found: bool | None
    verified_by: str | None
    verified_at: datetime | None
    verification_method: str | None
    started_at: datetime | None
    closed_at: datetime | None
    refused_reason: str | None
    outcome: dict[str, int]
    due_soon_alerted_at: datetime | None
    late_alerted_at: datetime | None
    purposes: list[str]  # restriction, objection, consent withdrawal: the policy purposes switched off
    choices: dict[str, str]  # account deletion (RET-7): category id -> 'keep' | 'delete'

    @property
    def deadline(self) -> datetime:
        """When the answer is due: the extended deadline when there is one."""
        return self.extended_due_at or self.due_at

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    @property
    def email_pseudonym_prefix(self) -> str | None:
        return self.email_sha256[:PSEUDONYM_SHOWN] if self.email_sha256 else None

    def days_left(self, now: datetime) -> int:
        """Whole days to the deadline, rounded up (7 days and an hour is 8); 0 or less when late."""
        return math.ceil((self.deadline - as_utc(now)) / _DAY)

    def days_late(self, now: datetime) -> int:
        """Whole days past the deadline (0 until a full day has passed, or when not late)."""
        return max(0, (as_utc(now) - self.deadline) // _DAY)

    def to_dict(self, now: datetime | None = None) -> dict[str, Any]:
        """JSON-ready: instants in ISO 8601 UTC, the pseudonym shortened, reasons as they were
        written (staff text, kept out of evidence); with ``now``, the days left."""
        data: dict[str, Any] = {}
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name == "email_sha256":
                data["email_sha256_prefix"] = self.email_pseudonym_prefix
            else:
                data[field.name] = iso(value) if isinstance(value, datetime) else value
        data["deadline"] = iso(self.deadline)
        if now is not None:
            data["days_left"] = self.days_left(now) if self.is_open else None
        return data


# governance.subject_requests' columns, in SubjectRequest's order.
COLUMNS = tuple(field.name for field in fields(SubjectRequest))


@dataclass(frozen=True, repr=False)
class Contact:
    """Where to answer a request and the address the subject gave: personal data (RET-9), never
    logged, evidenced or shown."""

    reply_to: str
    subject_email: str | None

    def __repr__(self) -> str:
        return f"Contact(reply_to=<hidden>, subject_email={'<hidden>' if self.subject_email else None})"
