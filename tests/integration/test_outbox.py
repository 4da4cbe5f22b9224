"""The recipients outbox (TP-5, GDPR art. 19) on a real PostgreSQL: one notice per recipient of the
registry that receives a category of the tables changed, none for the others; idempotent per
(request, recipient, event); the person named by per-recipient pseudonyms (HMAC-SHA256, stable,
different for every recipient) and order ids only for a recipient of the orders' category; nothing
in clear; no key, no notice."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from governance import evidence, requests
from governance.cli import main
from governance.db import transaction
from governance.errors import RequestError, SettingsError
from governance.notices import PSEUDONYM_KEY_ENV, list_notices, pseudonym_key, queue_notices
from governance.person import resolve_subject
from governance.policy import load_policy

pytestmark = [pytest.mark.integration]

POLICY = load_policy()
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
SECRET = "test-pseudonym-key-0123456789abcdef0123456789"
CAT_3 = {
    "delivery-carrier",
    "cloud-hosting",
    "software-vendor",
    "financial-partner",
    "voucher-network",
    "review-platform",
}
CAT_2 = {"cloud-hosting", "software-vendor", "advertising-partner"}


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, SECRET)


def expected_pseudonym(recipient: str, name: str) -> str:
    """Written from the documented scheme, not from the module under test."""
    derived = hmac.new(SECRET.encode(), b"governance/recipient-pseudonym/v1/" + recipient.encode(), hashlib.sha256)
    return hmac.new(derived.digest(), name.encode(), hashlib.sha256).hexdigest()


@pytest.fixture
def person(conn):
    """An account (Kari) with one order from the account and one as a guest, another spelling."""
    email = f"Kari.{uuid.uuid4().hex[:8]}@Example.no"
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO shop.accounts (email, password_hash, first_name, created_at) "
            "VALUES (%s, 'x', 'Kari', %s) RETURNING account_id",
            (email, NOW - timedelta(days=400)),
        )
        (account_id,) = cur.fetchone()
        orders = []
        for account, spelled in ((account_id, email), (None, f"  {email.upper()} ")):
            cur.execute(
                "INSERT INTO shop.orders (account_id, email, first_name, total_amount, placed_at) "
                "VALUES (%s, %s, 'Kari', 10, %s) RETURNING order_id",
                (account, spelled, NOW - timedelta(days=3)),
            )
            orders.append(cur.fetchone()[0])
    conn.commit()
    request = requests.open_request(
        conn, POLICY, kind="erasure", email=email, channel="email", opened_by="support", now=NOW
    )
    return request, account_id, email, orders


def queue(conn, request, email, *, tables, order_ids=(), event="erasure", columns=None):
    with transaction(conn) as cur:
        subject = resolve_subject(cur, POLICY, account_id=None, email=email)
        return queue_notices(
            cur,
            POLICY,
            request,
            subject=subject,
            event=event,
            tables_changed=tables,
            order_ids=list(order_ids),
            now=NOW,
            columns=columns,
        )


def notices(conn, request_id):
    with transaction(conn, read_only=True) as cur:
        return {n.recipient_id: n for n in list_notices(cur, request_id=request_id)}


def test_one_notice_per_recipient_of_the_categories_changed_idempotent(conn, person):
    request, account_id, email, orders = person
    tables = {"shop.accounts": 1, "shop.orders": 2, "shop.order_lines": 0}
    assert queue(conn, request, email, tables=tables, order_ids=orders) == len(CAT_2 | CAT_3)
    found = notices(conn, request.request_id)
    assert set(found) == CAT_2 | CAT_3  # every recipient in the registry receives CAT-2 or CAT-3
    ads = found["advertising-partner"]  # CAT-2 and CAT-4 only: told of the account, not of orders
    assert ads.categories == ["CAT-2"] and ads.tables == ["shop.accounts"] and ads.order_ids == []
    assert ads.record_counts == {"shop.accounts": 1}
    carrier = found["delivery-carrier"]
    assert carrier.categories == ["CAT-3"] and carrier.tables == ["shop.orders"]
    assert carrier.order_ids == sorted(orders) and carrier.record_counts == {"shop.orders": 2}
    cloud = found["cloud-hosting"]
    assert cloud.categories == ["CAT-2", "CAT-3"] and cloud.order_ids == sorted(orders)
    assert all(n.state == "queued" and n.attempts == 0 and n.next_attempt_at == NOW for n in found.values())
    assert carrier.idempotency_key == f"request-{request.request_id}.delivery-carrier.erasure"
    assert all(n.pseudonyms == 2 for n in found.values())  # the address and the account

    # Rerun: nothing more, no second evidence entry; another event is another notice.
    assert queue(conn, request, email, tables=tables, order_ids=orders) == 0
    assert len(notices(conn, request.request_id)) == len(found)
    queued = evidence.entries(conn, run_id=f"request-{request.request_id}", kind="notices_queued")
    assert len(queued) == 1 and queued[0].counts == {"notices": len(found)}
    assert set(queued[0].details["recipients"]) == set(found) and "TP-5" in queued[0].requirements
    assert queue(conn, request, email, tables={"shop.accounts": 1}, event="rectification") == len(CAT_2)


def test_only_the_recipients_of_the_category(conn, person):
    request, _, email, _ = person
    assert queue(conn, request, email, tables={"shop.contact_messages": 1}) == 3  # CAT-4
    assert set(notices(conn, request.request_id)) == {"cloud-hosting", "software-vendor", "advertising-partner"}
    request2 = requests.open_request(
        conn, POLICY, kind="restriction", email=email, channel="email", opened_by="support", now=NOW
    )
    assert queue(conn, request2, email, tables={"shop.accounts": 0}, event="restriction") == 0  # nothing changed
    assert queue(conn, request2, email, tables={"governance.request_contacts": 1}, event="restriction") == 0  # CAT-7


def test_pseudonyms_per_recipient_stable_and_nothing_in_clear(conn, person):
    request, account_id, email, orders = person
    queue(conn, request, email, tables={"shop.accounts": 1, "shop.orders": 2}, order_ids=orders)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT recipient_id, subject_pseudonyms, pseudonym_key_id, row_to_json(o)::text "
            "FROM governance.recipient_outbox o WHERE request_id = %s",
            (request.request_id,),
        )
        rows = {r[0]: r[1:] for r in cur.fetchall()}
    conn.rollback()
    for recipient, (pseudonyms, key_id, whole) in rows.items():
        expected = {
            expected_pseudonym(recipient, f"email:{email.lower()}"),
            expected_pseudonym(recipient, f"account:{account_id}"),
        }
        assert set(pseudonyms) == expected
        assert email.lower() not in whole.lower() and "kari" not in whole.lower() and "@" not in whole
        assert hashlib.sha256(email.lower().encode()).hexdigest() not in whole  # not even the ledger's pseudonym
        assert len(key_id) == 16
    all_pseudonyms = [p for pseudonyms, _, _ in rows.values() for p in pseudonyms]
    assert len(set(all_pseudonyms)) == len(all_pseudonyms)  # no two recipients share one
    assert len({key_id for _, key_id, _ in rows.values()}) == len(rows)
    # Stable: the same person gets the same pseudonyms for the same recipient on the next notice.
    key = pseudonym_key()
    assert key.pseudonyms("delivery-carrier", emails=[f" {email.upper()}"], account_ids=[account_id]) == sorted(
        rows["delivery-carrier"][0]
    )


def test_no_key_no_notice(conn, person, monkeypatch):
    request, _, email, _ = person
    monkeypatch.delenv(PSEUDONYM_KEY_ENV)
    with pytest.raises(SettingsError, match=PSEUDONYM_KEY_ENV):
        queue(conn, request, email, tables={"shop.orders": 1})
    assert notices(conn, request.request_id) == {}
    with pytest.raises(SettingsError, match="at least 32"):
        pseudonym_key("short")
    assert "short" not in repr(pseudonym_key(SECRET)) and SECRET not in repr(pseudonym_key(SECRET))


def test_refusals(conn, person):
    request, _, email, _ = person
    with pytest.raises(RequestError, match="shop.order_line_uploads"):
        queue(conn, request, email, tables={"shop.order_line_uploads": 1})
    with pytest.raises(RequestError, match="unknown notice event"):
        queue(conn, request, email, tables={"shop.orders": 1}, event="forgotten")
    assert notices(conn, request.request_id) == {}


def test_notices_list_cli(conn, person, db_url, capsys):
    request, _, email, orders = person
    queue(conn, request, email, tables={"shop.orders": 2}, order_ids=orders)
    assert main(["notices", "list", "--request", str(request.request_id), "--db-url", db_url]) == 0
    text = capsys.readouterr().out
    assert "delivery-carrier" in text and "shop.orders (2)" in text and "queued" in text
    assert main(["notices", "list", "--json", "--request", str(request.request_id), "--db-url", db_url]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {n["recipient_id"] for n in listed} == CAT_3 and all("@" not in json.dumps(n) for n in listed)


def test_the_key_from_airflow_connection(monkeypatch):
    """In Airflow the key is the password of the connection `governance_recipient_pseudonym`; the
    environment variable is the fallback."""
    from governance_airflow import recipient_pseudonym_key

    other = "airflow-connection-pseudonym-key-0123456789"
    monkeypatch.setenv(
        "AIRFLOW_CONN_GOVERNANCE_RECIPIENT_PSEUDONYM", json.dumps({"conn_type": "generic", "password": other})
    )
    from_airflow = recipient_pseudonym_key().pseudonyms("cloud-hosting", emails=["a@b.no"], account_ids=[])
    assert from_airflow == pseudonym_key(other).pseudonyms("cloud-hosting", emails=["a@b.no"], account_ids=[])
    monkeypatch.delenv("AIRFLOW_CONN_GOVERNANCE_RECIPIENT_PSEUDONYM")
    assert recipient_pseudonym_key().for_recipient("x") == pseudonym_key(SECRET).for_recipient("x")
    monkeypatch.delenv(PSEUDONYM_KEY_ENV)
    with pytest.raises(SettingsError, match="governance_recipient_pseudonym"):
        recipient_pseudonym_key()


def test_the_table_refuses_an_address_and_a_second_notice(conn, person):
    """Whoever writes the outbox: a pseudonym is 64 hex characters (an address is refused), and one
    notice per (request, recipient, event)."""
    import psycopg2

    request, _, email, _ = person
    insert = (
        "INSERT INTO governance.recipient_outbox (request_id, recipient_id, event, categories, tables, "
        "subject_pseudonyms, pseudonym_key_id, idempotency_key, created_at, next_attempt_at) "
        "VALUES (%s, 'cloud-hosting', 'erasure', '{CAT-2}', '{shop.accounts}', %s, '0123456789abcdef', %s, %s, %s)"
    )
    with conn.cursor() as cur, pytest.raises(psycopg2.errors.CheckViolation):
        cur.execute(insert, (request.request_id, [email], "k1", NOW, NOW))
    conn.rollback()
    with conn.cursor() as cur:
        cur.execute(insert, (request.request_id, ["a" * 64], "k1", NOW, NOW))
        with pytest.raises(psycopg2.errors.UniqueViolation):
            cur.execute(insert, (request.request_id, ["b" * 64], "k2", NOW, NOW))
    conn.rollback()
