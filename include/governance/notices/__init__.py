"""Notices to the recipients of a person's data (TP-5): the outbox a rights request queues into
(``outbox``) and the per-recipient pseudonyms naming the person in it (``pseudonyms``). Delivery,
signing and acknowledgement are issue #12's."""

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
