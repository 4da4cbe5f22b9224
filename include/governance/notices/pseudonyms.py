"""Per-recipient pseudonyms of a person (TP-2, TP-5): how a notice names its subject so that the
recipient can find the person in its own system and nobody else learns who it is.

One secret, the pseudonym key, comes from the environment (``GOVERNANCE_RECIPIENT_PSEUDONYM_KEY``)
or, in Airflow, from the password of the connection ``governance_recipient_pseudonym``; never from
the policy file. Each recipient gets its own key derived from it (HMAC-SHA256 of the recipient id),
and a person's pseudonym for that recipient is HMAC-SHA256 of ``email:<lower(btrim(address))>``
or ``account:<id>`` under that key: stable from notice to notice, different for every recipient
(their lists cannot be joined). A recipient is given its derived key once (#12) to compute the same
pseudonyms over its own customers. ``key_id`` names the derived key (a rotation is visible).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable
from dataclasses import dataclass

from governance.errors import SettingsError

PSEUDONYM_KEY_ENV = "GOVERNANCE_RECIPIENT_PSEUDONYM_KEY"
AIRFLOW_PSEUDONYM_CONN_ID = "governance_recipient_pseudonym"
MIN_KEY_BYTES = 32
_DERIVATION = b"governance/recipient-pseudonym/v1/"


@dataclass(frozen=True, repr=False)
class PseudonymKey:
    """The secret every recipient's key is derived from (never logged: no repr of the bytes)."""

    secret: bytes

    def __post_init__(self) -> None:
        if len(self.secret) < MIN_KEY_BYTES:
            raise SettingsError(
                f"the recipient pseudonym key is {len(self.secret)} bytes; give at least {MIN_KEY_BYTES} random "
                f"bytes in {PSEUDONYM_KEY_ENV} (e.g. `openssl rand -hex 32`)"
            )

    def __repr__(self) -> str:
        return "PseudonymKey(<hidden>)"

    def for_recipient(self, recipient_id: str) -> bytes:
        """The recipient's own key (what it is given to match the pseudonyms)."""
        return hmac.new(self.secret, _DERIVATION + recipient_id.encode(), hashlib.sha256).digest()

    def key_id(self, recipient_id: str) -> str:
        """A public name for the recipient's key: 16 hex characters, no use for matching."""
        return hmac.new(self.for_recipient(recipient_id), b"key-id", hashlib.sha256).hexdigest()[:16]

    def pseudonyms(self, recipient_id: str, *, emails: Iterable[str], account_ids: Iterable[int]) -> list[str]:
        """The person's pseudonyms for one recipient, sorted: one per address (normalised as the
        finder does, ``lower(btrim())``) and one per account id."""
        key = self.for_recipient(recipient_id)
        names = {f"email:{email.strip().lower()}" for email in emails} | {f"account:{int(a)}" for a in account_ids}
        return sorted(hmac.new(key, name.encode(), hashlib.sha256).hexdigest() for name in names)


def pseudonym_key(secret: str | None = None) -> PseudonymKey:
    """The key from ``secret`` or the environment; SettingsError naming where to set it."""
    text = secret if secret is not None else os.environ.get(PSEUDONYM_KEY_ENV)
    if not text:
        raise SettingsError(
            f"no recipient pseudonym key (TP-5 notices name the person by a keyed hash): set {PSEUDONYM_KEY_ENV} "
            f"to at least {MIN_KEY_BYTES} random bytes (e.g. `openssl rand -hex 32`), or, in Airflow, the password "
            f"of the connection '{AIRFLOW_PSEUDONYM_CONN_ID}'; never in the policy file"
        )
    return PseudonymKey(text.encode("utf-8"))
