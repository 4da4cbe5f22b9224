"""Rectification (REC-1, GDPR art. 16 and 19) on a real PostgreSQL: personal columns of an account
and of guest orders under several spellings of one address corrected, nobody else's; refusals by
table and column (not personal, a key, a clock, not in the data map, none of the person's records,
a value the column refuses), never echoing a value; unverified or wrong-kind requests refused; a
held record corrected and counted; evidence with tables, columns and counts only; the outbox
notices and the completion in the same transaction; corrections kept apart until applied."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from governance import evidence, requests
from governance.cli import main
from governance.db import transaction
from governance.errors import RequestError, SettingsError
from governance.notices import PSEUDONYM_KEY_ENV, list_notices
from governance.policy import load_policy
from governance.requests.corrections import check_corrections, record_corrections
from governance.requests.rectification import answer_rectification, rectify

pytestmark = [pytest.mark.integration]

POLICY = load_policy()
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # before the wall clock (the CLI's --now guard)
AT = ["--now", "2026-11-20T12:00:00Z"]
NEW_STREET = "Nyveien 7B"  # a new value: personal data, never in evidence, output or a message
NEW_NAME = "Nordmann-Berg"
RECIPIENTS_CAT_2_3 = {
    "delivery-carrier", "cloud-hosting", "software-vendor", "financial-partner", "voucher-network",
    "review-platform", "advertising-partner",
}  # fmt: skip


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, "rectification-test-key-0123456789abcdef")


def insert_order(cur, account_id, email):
    cur.execute(
        "INSERT INTO shop.orders (account_id, email, first_name, last_name, delivery_street, phone, total_amount, "
        "placed_at) VALUES (%s, %s, 'Kari', 'Nordmann', 'Storgata 1', '+4790000000', 499, %s) RETURNING order_id",
        (account_id, email, NOW - timedelta(days=10)),
    )
    order_id = cur.fetchone()[0]
    cur.execute(
        "INSERT INTO shop.order_lines (order_id, product_type, quantity, unit_price) VALUES (%s, 'print', 1, 9)",
        (order_id,),
    )
    return order_id


@pytest.fixture
def kari(conn):
    """Kari: an account, an order from it and two guest orders under other spellings of her address;
    Ola: an account and a guest order of his own, which must not change."""
    email = f"Kari.{uuid.uuid4().hex[:8]}@Example.no"
    other = f"ola.{uuid.uuid4().hex[:8]}@example.no"
    with conn.cursor() as cur:
        ids = {}
        for who, address in (("kari", email), ("ola", other)):
            cur.execute(
                "INSERT INTO shop.accounts (email, password_hash, first_name, last_name, created_at) "
                "VALUES (%s, 'x', 'Kari', 'Nordmann', %s) RETURNING account_id",
                (address, NOW - timedelta(days=400)),
            )
            ids[who] = cur.fetchone()[0]
        orders = [
            insert_order(cur, ids["kari"], email),
            insert_order(cur, None, email.upper()),
            insert_order(cur, None, f"  {email.lower()} "),
        ]
        ola_orders = [insert_order(cur, ids["ola"], other), insert_order(cur, None, other)]
    conn.commit()
    return {"email": email, "account": ids["kari"], "orders": orders, "ola": ids["ola"], "ola_orders": ola_orders}


def open_rectification(conn, email, *, verified=True):
    request = requests.open_request(
        conn, POLICY, kind="rectification", email=f" {email.lower()}", channel="email", opened_by="support", now=NOW
    )
    if verified:
        requests.verify(conn, POLICY, request.request_id, verified_by="support", method="signed_in_account", now=NOW)
    return request


def column_values(conn, table, column, key, keys):
    with conn.cursor() as cur:
        cur.execute(f"SELECT {key}, {column} FROM {table} WHERE {key} = ANY(%s)", (list(keys),))
        values = dict(cur.fetchall())
    conn.rollback()
    return values


def request_evidence(conn, request_id):
    return evidence.entries(conn, run_id=f"request-{request_id}")


def no_values(*texts):
    for text in texts:
        assert NEW_STREET not in text and NEW_NAME not in text and "@" not in text


def test_rectifies_the_account_and_guest_orders_under_every_spelling(conn, kari):
    request = open_rectification(conn, kari["email"])
    corrections = {
        "shop.accounts": {"last_name": NEW_NAME},
        "shop.orders": {"delivery_street": NEW_STREET, "phone": None},
    }
    done = rectify(conn, POLICY, request.request_id, corrections=corrections, now=NOW)
    assert done.state == "completed"
    assert done.outcome == {"rows_rectified": 4, "held_rows": 0, "columns": 3, "notices": 7}
    assert column_values(conn, "shop.accounts", "last_name", "account_id", [kari["account"], kari["ola"]]) == {
        kari["account"]: NEW_NAME,
        kari["ola"]: "Nordmann",
    }
    streets = column_values(conn, "shop.orders", "delivery_street", "order_id", kari["orders"] + kari["ola_orders"])
    assert {streets[o] for o in kari["orders"]} == {NEW_STREET}
    assert {streets[o] for o in kari["ola_orders"]} == {"Storgata 1"}
    phones = column_values(conn, "shop.orders", "phone", "order_id", kari["orders"] + kari["ola_orders"])
    assert [phones[o] for o in kari["orders"]] == [None] * 3 and all(phones[o] for o in kari["ola_orders"])

    entries = request_evidence(conn, request.request_id)
    rectified = [e for e in entries if e.kind == "request_rectified"]
    assert len(rectified) == 1
    assert rectified[0].counts == {"rows": 4, "held_rows": 0, "tables": 2, "notices": 7}
    assert rectified[0].details["columns"] == {
        "shop.accounts": ["last_name"],
        "shop.orders": ["delivery_street", "phone"],
    }
    assert rectified[0].details["rows_by_table"] == {"shop.accounts": 1, "shop.orders": 3}
    assert "REC-1" in rectified[0].requirements
    assert [e.kind for e in entries][-3:] == ["notices_queued", "request_rectified", "request_completed"]
    no_values(*(json.dumps(e.to_dict(), default=str) for e in entries))

    with transaction(conn, read_only=True) as cur:
        notices = {n.recipient_id: n for n in list_notices(cur, request_id=request.request_id)}
    assert set(notices) == RECIPIENTS_CAT_2_3
    assert notices["delivery-carrier"].columns == {"shop.orders": ["delivery_street", "phone"]}
    assert notices["delivery-carrier"].order_ids == sorted(kari["orders"])
    assert notices["advertising-partner"].tables == ["shop.accounts"] and notices["advertising-partner"].order_ids == []
    assert all(n.event == "rectification" for n in notices.values())

    # A rerun of the DAG's handler after the commit changes nothing and records nothing more.
    assert answer_rectification(conn, POLICY, request.request_id, now=NOW + timedelta(hours=1)).state == "completed"
    assert len(request_evidence(conn, request.request_id)) == len(entries)


def test_a_held_record_is_corrected_and_counted(conn, kari):
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO governance.legal_holds (scope, table_name, record_key, reason, set_by, set_at) "
            "VALUES ('record', 'shop.orders', %s, 'court order (test)', 'test', %s)",
            (str(kari["orders"][1]), NOW - timedelta(days=1)),
        )
    conn.commit()
    request = open_rectification(conn, kari["email"])
    done = rectify(conn, POLICY, request.request_id, corrections={"shop.orders": {"first_name": "Karin"}}, now=NOW)
    assert done.outcome["held_rows"] == 1 and done.outcome["rows_rectified"] == 3
    assert set(column_values(conn, "shop.orders", "first_name", "order_id", kari["orders"]).values()) == {"Karin"}


@pytest.mark.parametrize(
    ("corrections", "named"),
    [
        ({"shop.orders": {"total_amount": "1"}}, "shop.orders.total_amount is not a personal column"),
        ({"shop.orders": {"order_id": "1"}}, "shop.orders.order_id keys, places or links"),
        ({"shop.orders": {"account_id": "1"}}, "shop.orders.account_id keys, places or links"),
        ({"shop.accounts": {"created_at": "2020-01-01"}}, "shop.accounts.created_at keys, places or links"),
        ({"shop.order_lines": {"order_id": "1"}}, "shop.order_lines.order_id keys, places or links"),
        ({"shop.uploads": {"object_key": "x"}}, "shop.uploads.object_key keys, places or links"),
        ({"shop.newsletter_events": {"occurred_at": "2020-01-01"}}, "shop.newsletter_events.occurred_at keys"),
        ({"shop.order_line_uploads": {"upload_id": "1"}}, "'shop.order_line_uploads' is not a store"),
        ({"shop.visits": {"ip_address": "10.0.0.1"}}, "'shop.visits' is not a store"),
        ({"public.nothing": {"x": "1"}}, "'public.nothing' is not a store"),
        ({"governance.request_contacts": {"reply_to": "x"}}, "'governance.request_contacts' is not a store"),
        ({"shop.orders": {"phone": 47}}, "shop.orders.phone: a new value is text or null"),
        ({}, "no corrections"),
    ],
)
def test_refused_by_table_and_column(conn, kari, corrections, named):
    request = open_rectification(conn, kari["email"])
    with pytest.raises(RequestError, match=named.replace(".", r"\.").replace("(", r"\(")) as refused:
        rectify(conn, POLICY, request.request_id, corrections=corrections, now=NOW)
    assert "10.0.0.1" not in str(refused.value) and "2020-01-01" not in str(refused.value)
    with transaction(conn, read_only=True) as cur:
        assert requests.fetch(cur, request.request_id).state == "verified"  # nothing started, nothing changed


def test_refusals_in_the_database_name_no_value(conn, kari):
    request = open_rectification(conn, kari["email"])
    with pytest.raises(RequestError, match="shop.contact_messages hold.* none of the person's records"):
        rectify(conn, POLICY, request.request_id, corrections={"shop.contact_messages": {"name": "K"}}, now=NOW)
    with pytest.raises(RequestError, match=r"correction of shop\.accounts\.email refused") as refused:
        rectify(conn, POLICY, request.request_id, corrections={"shop.accounts": {"email": None}}, now=NOW)
    assert "@" not in str(refused.value)
    with pytest.raises(RequestError, match=r"shop\.accounts \(preferences\) refused: .*valid value") as refused:
        rectify(conn, POLICY, request.request_id, corrections={"shop.accounts": {"preferences": NEW_STREET}}, now=NOW)
    no_values(str(refused.value))
    assert column_values(conn, "shop.accounts", "preferences", "account_id", [kari["account"]]) == {kari["account"]: {}}
    assert not [e for e in request_evidence(conn, request.request_id) if e.kind == "request_rectified"]
    # The request stayed in progress: the same request, with a value the column takes, finishes.
    with transaction(conn, read_only=True) as cur:
        assert requests.fetch(cur, request.request_id).state == "in_progress"
    fixed = {"shop.accounts": {"preferences": '{"language": "nb"}'}}
    assert rectify(conn, POLICY, request.request_id, corrections=fixed, now=NOW).outcome["rows_rectified"] == 1
    assert column_values(conn, "shop.accounts", "preferences", "account_id", [kari["account"]]) == {
        kari["account"]: {"language": "nb"}
    }


def test_no_pseudonym_key_nothing_starts(conn, kari, monkeypatch):
    request = open_rectification(conn, kari["email"])
    monkeypatch.delenv(PSEUDONYM_KEY_ENV)
    with pytest.raises(SettingsError, match=PSEUDONYM_KEY_ENV):
        rectify(conn, POLICY, request.request_id, corrections={"shop.accounts": {"last_name": NEW_NAME}}, now=NOW)
    with transaction(conn, read_only=True) as cur:
        assert requests.fetch(cur, request.request_id).state == "verified"


def test_unverified_or_another_kind_refused(conn, kari):
    request = open_rectification(conn, kari["email"], verified=False)
    with pytest.raises(RequestError, match="verify it first"):
        rectify(conn, POLICY, request.request_id, corrections={"shop.accounts": {"last_name": NEW_NAME}}, now=NOW)
    access = requests.open_request(
        conn, POLICY, kind="access", email=kari["email"], channel="email", opened_by="support", now=NOW
    )
    requests.verify(conn, POLICY, access.request_id, verified_by="support", method="id_document", now=NOW)
    with pytest.raises(RequestError, match="is a access request, not a rectification"):
        rectify(conn, POLICY, access.request_id, corrections={"shop.accounts": {"last_name": NEW_NAME}}, now=NOW)
    with transaction(conn, read_only=True) as cur:
        assert requests.fetch(cur, access.request_id).state == "verified"
    assert column_values(conn, "shop.accounts", "last_name", "account_id", [kari["account"]]) == {
        kari["account"]: "Nordmann"
    }


def test_corrections_wait_apart_and_go_when_applied_or_withdrawn(conn, kari):
    request = open_rectification(conn, kari["email"], verified=False)
    record_corrections(conn, POLICY, request.request_id, {"shop.orders": {"delivery_street": NEW_STREET}}, now=NOW)
    with pytest.raises(RequestError, match="verify it first"):
        answer_rectification(conn, POLICY, request.request_id, now=NOW)
    requests.verify(conn, POLICY, request.request_id, verified_by="support", method="known_contact", now=NOW)
    done = answer_rectification(conn, POLICY, request.request_id, now=NOW)
    assert done.state == "completed" and done.outcome["rows_rectified"] == 3
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM governance.request_corrections WHERE request_id = %s", (request.request_id,))
        assert cur.fetchone()[0] == 0
    conn.rollback()
    recorded = [e for e in request_evidence(conn, request.request_id) if e.kind == "request_corrections_recorded"]
    assert recorded[0].details["columns"] == {"shop.orders": ["delivery_street"]}
    no_values(*(json.dumps(e.to_dict(), default=str) for e in request_evidence(conn, request.request_id)))

    withdrawn = open_rectification(conn, kari["email"], verified=False)
    record_corrections(conn, POLICY, withdrawn.request_id, {"shop.accounts": {"last_name": NEW_NAME}}, now=NOW)
    requests.withdraw(conn, POLICY, withdrawn.request_id, by="support", now=NOW)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM governance.request_corrections WHERE request_id = %s", (withdrawn.request_id,)
        )
        assert cur.fetchone()[0] == 0  # the trigger: no correction outlives its request (RET-9)
    conn.rollback()
    again = open_rectification(conn, kari["email"])
    with pytest.raises(RequestError, match="no corrections recorded"):
        answer_rectification(conn, POLICY, again.request_id, now=NOW)


def test_cli_rectify_from_a_file_and_flags(conn, kari, db_url, capsys, tmp_path):
    request = open_rectification(conn, kari["email"])
    path = tmp_path / "corrections.json"
    path.write_text(json.dumps({"shop.orders": {"delivery_street": NEW_STREET}, "shop.accounts": {"other_info": None}}))
    code = main(
        ["request", "rectify", str(request.request_id), "--from-json", str(path), "--apply", "--db-url", db_url, *AT]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "shop.orders: delivery_street" in out and "completed" in out and "rows_rectified 4" in out
    no_values(out, err)

    other = open_rectification(conn, kari["email"])
    words = ["request", "rectify", str(other.request_id), "--set", f"shop.orders.total_amount={NEW_STREET}"]
    assert main([*words, "--db-url", db_url, *AT]) == 2
    out, err = capsys.readouterr()
    assert "shop.orders.total_amount is not a personal column" in err
    no_values(out, err)
    words = ["request", "rectify", str(other.request_id), "--set", f"shop.accounts.last_name={NEW_NAME}"]
    assert main([*words, "--db-url", db_url, *AT]) == 0
    out, err = capsys.readouterr()
    assert "applied by the subject_requests DAG" in out
    no_values(out, err)
    assert column_values(conn, "shop.accounts", "last_name", "account_id", [kari["account"]]) == {
        kari["account"]: "Nordmann"
    }


def test_check_corrections_fixed_answers():
    checked = check_corrections(POLICY, {"shop.calendar_events": {"title": "x", "event_date": None}})
    assert checked == {"shop.calendar_events": {"title": "x", "event_date": None}}
    with pytest.raises(RequestError) as refused:
        check_corrections(POLICY, {"shop.orders": {"total_amount": "1", "anonymised_at": None, "email": "a"}})
    text = str(refused.value)
    assert "shop.orders.total_amount" in text and "shop.orders.anonymised_at" in text  # the RET-8 marker
    assert "shop.orders.email" not in text  # the address is a personal column: it may be corrected


def test_correcting_the_address_that_finds_the_records(conn, kari):
    """The rows are chosen before anything changes: the new address in the account and on every
    order, guest orders under other spellings included; the evidence never holds it."""
    request = open_rectification(conn, kari["email"])
    new = f"kari.ny.{uuid.uuid4().hex[:8]}@example.no"
    corrections = {"shop.accounts": {"email": new}, "shop.orders": {"email": new}}
    assert rectify(conn, POLICY, request.request_id, corrections=corrections, now=NOW).outcome["rows_rectified"] == 4
    assert set(column_values(conn, "shop.orders", "email", "order_id", kari["orders"]).values()) == {new}
    assert column_values(conn, "shop.accounts", "email", "account_id", [kari["account"]]) == {kari["account"]: new}
    no_values(*(json.dumps(e.to_dict(), default=str) for e in request_evidence(conn, request.request_id)))


def test_the_request_handler_waits_for_corrections_then_applies_them_with_the_given_key(conn, kari, monkeypatch):
    """REC-1 in the subject_requests handler registry: a verified rectification is not workable
    until its corrections are recorded; on demand it says how to record them; then the handler
    applies them with the key it is given (the DAG's Airflow connection), not the environment's."""
    from governance.notices import pseudonym_key
    from governance.requests import workable
    from governance.requests.handlers import answer, handled_kinds

    request = open_rectification(conn, kari["email"])
    with transaction(conn, read_only=True) as cur:
        assert "rectification" in handled_kinds() and request.request_id not in workable(cur, handled_kinds())
    given = pseudonym_key("handler-given-pseudonym-key-0123456789abcdef")
    with pytest.raises(RequestError, match=f"request rectify {request.request_id} --set"):
        answer(conn, None, None, POLICY, request.request_id, now=NOW, key=lambda: given)
    record_corrections(conn, POLICY, request.request_id, {"shop.accounts": {"last_name": NEW_NAME}}, now=NOW)
    with transaction(conn, read_only=True) as cur:
        assert request.request_id in workable(cur, handled_kinds())
    monkeypatch.delenv(PSEUDONYM_KEY_ENV)  # only the given key can name the person
    outcome = answer(conn, None, None, POLICY, request.request_id, now=NOW, key=lambda: given)
    assert outcome["rows_rectified"] == 1 and outcome["notices"] > 0
    with transaction(conn, read_only=True) as cur:
        notices = list_notices(cur, request_id=request.request_id)
        cur.execute(
            "SELECT DISTINCT pseudonym_key_id FROM governance.recipient_outbox WHERE request_id = %s",
            (request.request_id,),
        )
        key_ids = {row[0] for row in cur.fetchall()}
    assert len(notices) == outcome["notices"] and key_ids == {given.key_id(n.recipient_id) for n in notices}
