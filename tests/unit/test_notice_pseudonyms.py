"""Per-recipient pseudonyms (TP-2, TP-5) and the corrections' parsing (REC-1): fixed answers."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from governance.errors import RequestError, SettingsError
from governance.notices import PseudonymKey, idempotency_key, pseudonym_key
from governance.requests.corrections import parse_assignments

SECRET = b"0123456789abcdef0123456789abcdef"
# HMAC-SHA256(HMAC-SHA256(SECRET, "governance/recipient-pseudonym/v1/delivery-carrier"), "email:kari@example.no"),
# computed once with the standard library and pinned: a change of scheme changes every recipient's matches.
KARI_FOR_CARRIER = hmac.new(
    hmac.new(SECRET, b"governance/recipient-pseudonym/v1/delivery-carrier", hashlib.sha256).digest(),
    b"email:kari@example.no",
    hashlib.sha256,
).hexdigest()


def test_pseudonym_is_the_documented_keyed_hash_of_the_normalised_address():
    key = PseudonymKey(SECRET)
    assert key.pseudonyms("delivery-carrier", emails=["  Kari@Example.NO "], account_ids=[]) == [KARI_FOR_CARRIER]
    both = key.pseudonyms("delivery-carrier", emails=["kari@example.no", "KARI@example.no"], account_ids=[7])
    assert len(both) == 2 and KARI_FOR_CARRIER in both  # one per distinct address, one per account
    assert key.pseudonyms("cloud-hosting", emails=["kari@example.no"], account_ids=[]) != [KARI_FOR_CARRIER]
    assert PseudonymKey(SECRET + b"x").pseudonyms("delivery-carrier", emails=["kari@example.no"], account_ids=[]) != [
        KARI_FOR_CARRIER
    ]
    assert key.key_id("delivery-carrier") != key.key_id("cloud-hosting") and len(key.key_id("x")) == 16


def test_key_must_be_given_and_long_enough(monkeypatch):
    monkeypatch.delenv("GOVERNANCE_RECIPIENT_PSEUDONYM_KEY", raising=False)
    with pytest.raises(SettingsError, match="GOVERNANCE_RECIPIENT_PSEUDONYM_KEY"):
        pseudonym_key()
    with pytest.raises(SettingsError, match="at least 32"):
        PseudonymKey(b"x" * 31)
    assert repr(PseudonymKey(SECRET)) == "PseudonymKey(<hidden>)"


def test_idempotency_key_names_request_recipient_and_event():
    assert idempotency_key(12, "delivery-carrier", "erasure") == "request-12.delivery-carrier.erasure"


def test_parse_assignments():
    assert parse_assignments(
        ["shop.orders.delivery_street=Storgata 1", "shop.orders.phone=a=b", "shop.accounts.x="]
    ) == {
        "shop.orders": {"delivery_street": "Storgata 1", "phone": "a=b"},
        "shop.accounts": {"x": ""},
    }
    with pytest.raises(RequestError, match="--set number 1 is not"):
        parse_assignments(["last_name"])
    with pytest.raises(RequestError, match="--set number 2 is not") as refused:
        parse_assignments(["shop.accounts.a=1", "secret-value"])
    assert "secret-value" not in str(refused.value)
