"""Notices to the recipients of a person's data (TP-5): the outbox a rights request queues into
(``outbox``), the per-recipient pseudonyms naming the person in it (``pseudonyms``), the notices a
retention sweep's batches queue (``retention``), and their delivery, signing and acknowledgement
(``delivery*``, ``messages``, ``acks``, ``payloads``)."""

from governance.notices.outbox import EVENTS, Notice, idempotency_key, list_notices, queue_notices
from governance.notices.pseudonyms import PSEUDONYM_KEY_ENV, PseudonymKey, pseudonym_key

__all__ = [
    "EVENTS",
    "PSEUDONYM_KEY_ENV",
    "Notice",
    "PseudonymKey",
    "idempotency_key",
    "list_notices",
    "pseudonym_key",
    "queue_notices",
]
