"""Account deletion with the person's choice (RET-7, #11) against a real PostgreSQL and moto S3:
the categories chosen ``delete`` are erased as ERA-1 erases (the independent check proves nothing
of them is left), the kept ones stay as they are under their retention rules; the account is
marked deleted (the RET-2 clock) when its category is kept; a choice whose deletion would destroy
or orphan kept records is refused at intake and before the run. Every erasure and account deletion
queues one notice per recipient of an erased category (TP-5) in its completion's transaction,
naming the person by pseudonyms only; a rerun queues none."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from governance import requests
from governance.db import transaction
from governance.erasure import answer_erasure, preview, verify_erasure
from governance.erasure.notices import queue_erasure_notices
from governance.errors import RequestError
from governance.notices import list_notices, pseudonym_key
from tests.integration import test_erasure as era
from tests.integration.test_erasure import BUCKET, GUEST, HOLDER, NOW, POLICY, _records_of, _versions

pytestmark = [pytest.mark.integration]

world = era.world  # the guest, the account holder and another person (test_erasure's fixture)
_pseudonym_key = era._pseudonym_key  # autouse: the recipients' pseudonym key

KEEP_ORDERS = {"CAT-2": "delete", "CAT-3": "keep", "CAT-4": "delete", "CAT-5": "delete", "CAT-6": "delete"}
KEEP_ACCOUNT = {"CAT-2": "keep", "CAT-3": "delete", "CAT-4": "delete", "CAT-5": "delete", "CAT-6": "delete"}


def _deletion(conn, account_id: int, choices: dict[str, str]) -> int:
    request = requests.open_request(
        conn,
        POLICY,
        kind="account_deletion",
        account_id=account_id,
        email=HOLDER,
        channel="web_form",
        opened_by="account:self-service",
        choices=choices,
        now=NOW,
    )
    requests.verify(conn, POLICY, request.request_id, verified_by="support:test", method="signed_in_account", now=NOW)
    return request.request_id


def _count(conn, query: str, *params) -> int:
    with conn.cursor() as cur:
        cur.execute(query, params)
        n = cur.fetchone()[0]
    conn.rollback()
    return int(n)


def _orders(conn, ids: list[int]) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT order_id, email, first_name, phone, delivery_street, payment_method, card_last4, anonymised_at "
            "FROM shop.orders WHERE order_id = ANY(%s) ORDER BY 1",
            (ids,),
        )
        rows = cur.fetchall()
    conn.rollback()
    return rows


def _recipients_of(categories: set[str]) -> set[str]:
    return {r.id for r in POLICY.recipients if categories & set(r.categories)}


def test_keeping_the_orders_deletes_everything_else_and_leaves_the_orders_untouched(conn, s3, world):
    """RET-7: CAT-3 kept, CAT-2/4/5/6 deleted: orders and lines as they were (not anonymised; the
    account link goes with the account, ON DELETE SET NULL), everything else gone, the check passes."""
    holder, other = world["holder"], world["other"]
    orders_before = _orders(conn, holder["orders"])
    other_before = _records_of(conn, [other])
    rid = _deletion(conn, holder["account"], KEEP_ORDERS)

    dry = preview(conn, POLICY, rid, now=NOW)
    assert dry["shop.orders"] == {"delete": 0, "anonymise": 0, "keep": 2, "held": 0}
    assert dry["shop.accounts"]["delete"] == 1 and dry["shop.uploads"]["delete"] == 3

    outcome = answer_erasure(conn, s3, POLICY, rid, now=NOW)

    assert outcome["shop.orders.kept"] == 2 and outcome["shop.order_lines.kept"] == 2
    assert "shop.orders.anonymised" not in outcome and outcome["check.kept.shop.orders"] == 2
    assert outcome["shop.accounts.deleted"] == 1 and outcome["check.objects_left"] == 0
    assert _orders(conn, holder["orders"]) == orders_before  # every personal column as it was
    assert (
        _count(
            conn, "SELECT count(*) FROM shop.orders WHERE order_id = ANY(%s) AND account_id IS NULL", holder["orders"]
        )
        == 2
    )
    assert _count(conn, "SELECT count(*) FROM shop.order_lines WHERE order_id = ANY(%s)", holder["orders"]) == 2
    for table, column in (
        ("shop.accounts", "account_id"),
        ("shop.calendar_events", "account_id"),
        ("shop.saved_products", "account_id"),
        ("shop.cookie_preferences", "account_id"),
    ):
        assert _count(conn, f"SELECT count(*) FROM {table} WHERE {column} = %s", holder["account"]) == 0  # noqa: S608
    assert _count(conn, "SELECT count(*) FROM shop.newsletter_subscriptions WHERE lower(email) = %s", HOLDER) == 0
    assert _count(conn, "SELECT count(*) FROM shop.contact_messages WHERE lower(btrim(email)) = %s", HOLDER) == 0
    assert not {k for k in _versions(s3) if "kari-" in k}  # CAT-5: every version of every photo
    assert _records_of(conn, [other]) == other_before
    assert requests.fetch(conn.cursor(), rid).state == "completed"
    conn.rollback()
    again = verify_erasure(conn, s3, POLICY, rid, now=NOW)
    assert again.ok and again.kept["shop.orders"] == 2
    # Without the person's choice the same check finds the kept orders left: it proves, it does not trust.
    assert verify_erasure(conn, s3, POLICY, rid, now=NOW, keep_categories=[]).left["shop.orders"] == 2


def test_keeping_the_account_marks_it_deleted_and_erases_the_rest(conn, s3, world):
    """RET-7, RET-2: CAT-2 kept: the account and its calendar stay, marked deleted (the clock starts);
    orders are erased as ERA-1 does (anonymised, RET-8); a rerun changes nothing."""
    holder = world["holder"]
    rid = _deletion(conn, holder["account"], KEEP_ACCOUNT)

    outcome = answer_erasure(conn, s3, POLICY, rid, now=NOW)

    assert outcome["shop.accounts.marked_deleted"] == 1 and outcome["shop.orders.anonymised"] == 2
    assert outcome["check.kept.shop.accounts"] == 1 and outcome["check.kept.shop.calendar_events"] == 2
    with conn.cursor() as cur:
        cur.execute("SELECT deleted_at, email FROM shop.accounts WHERE account_id = %s", (holder["account"],))
        deleted_at, email = cur.fetchone()
        cur.execute("SELECT clock FROM governance_clocks.ret_2_accounts WHERE record_id = %s", (holder["account"],))
        assert cur.fetchone()[0] == NOW  # RET-2's clock runs from the deletion
        cur.execute("SELECT count(*) FROM shop.saved_products WHERE account_id = %s", (holder["account"],))
        assert cur.fetchone()[0] == 1
        cur.execute("SELECT count(*) FROM shop.cookie_preferences WHERE account_id = %s", (holder["account"],))
        assert cur.fetchone()[0] == 0
        cur.execute(
            "SELECT count(*) FROM governance.evidence WHERE run_id = %s AND kind = 'account_deleted'",
            (f"request-{rid}",),
        )
        assert cur.fetchone()[0] == 1
    conn.rollback()
    assert deleted_at == NOW and email == HOLDER
    assert all(row[1] is None and row[7] is not None for row in _orders(conn, holder["orders"]))

    rerun = answer_erasure(conn, s3, POLICY, rid, now=NOW + timedelta(hours=1))
    assert rerun == outcome
    assert (
        _count(
            conn, "SELECT count(*) FROM shop.accounts WHERE account_id = %s AND deleted_at = %s", holder["account"], NOW
        )
        == 1
    )


@pytest.mark.parametrize("kept", ["CAT-5", "CAT-6"])
def test_keeping_records_the_account_deletion_would_orphan_is_refused_at_intake(conn, world, kept):
    """RET-7: deleting CAT-2 sets the only link of uploads (CAT-5) and cookie preferences (CAT-6) to
    their person to NULL: keeping them is refused, naming the categories; nothing is recorded."""
    choices = {c: "delete" for c in KEEP_ORDERS} | {kept: "keep"}
    before = _count(conn, "SELECT count(*) FROM governance.subject_requests")
    with pytest.raises(RequestError) as refused:
        _deletion(conn, world["holder"]["account"], choices)
    message = str(refused.value)
    assert "CAT-2" in message and kept in message and "RET-7" in message and "keep the deleted category" in message
    assert HOLDER not in message
    assert _count(conn, "SELECT count(*) FROM governance.subject_requests") == before


def test_a_cascade_into_kept_records_is_refused_before_the_run_and_nothing_changes(conn, s3, world):
    """RET-7: when the catalogue changed after intake (the orders now cascade from the account),
    the run refuses before it starts: the kept orders are never destroyed, the request stays verified."""
    holder = world["holder"]
    rid = _deletion(conn, holder["account"], KEEP_ORDERS)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = 'shop.orders'::regclass AND contype = 'f' "
            "AND confrelid = 'shop.accounts'::regclass"
        )
        (name,) = cur.fetchone()
        cur.execute(f"ALTER TABLE shop.orders DROP CONSTRAINT {name}")  # noqa: S608 - the catalogue's own name
        cur.execute(
            f"ALTER TABLE shop.orders ADD CONSTRAINT {name} FOREIGN KEY (account_id) "  # noqa: S608
            "REFERENCES shop.accounts (account_id) ON DELETE CASCADE"
        )
    conn.commit()
    try:
        with pytest.raises(RequestError, match=r"CAT-3 records of shop\.orders \(ON DELETE CASCADE\)"):
            answer_erasure(conn, s3, POLICY, rid, now=NOW)
        assert _count(conn, "SELECT count(*) FROM shop.orders WHERE order_id = ANY(%s)", holder["orders"]) == 2
        assert _count(conn, "SELECT count(*) FROM shop.accounts WHERE account_id = %s", holder["account"]) == 1
        assert (
            _count(
                conn,
                "SELECT count(*) FROM governance.subject_requests WHERE request_id = %s AND state = 'verified'",
                rid,
            )
            == 1
        )
    finally:
        with conn.cursor() as cur:
            cur.execute(f"ALTER TABLE shop.orders DROP CONSTRAINT {name}")  # noqa: S608
            cur.execute(
                f"ALTER TABLE shop.orders ADD CONSTRAINT {name} FOREIGN KEY (account_id) "  # noqa: S608
                "REFERENCES shop.accounts (account_id) ON DELETE SET NULL"
            )
        conn.commit()


def _outbox(conn, rid: int) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT recipient_id, subject_pseudonyms, pseudonym_key_id, order_ids, tables, row_to_json(o)::text "
            "FROM governance.recipient_outbox o WHERE request_id = %s ORDER BY recipient_id",
            (rid,),
        )
        rows = cur.fetchall()
    conn.rollback()
    return rows


def test_an_account_deletion_tells_each_recipient_of_an_erased_category_once_by_pseudonym(conn, s3, world):
    """TP-5: one notice per recipient of CAT-2/4/5/6 (none for a recipient of the kept orders only),
    naming the person by that recipient's pseudonyms (address and account id), no address, no name,
    no value; queued with the completion; the recorded pseudonyms go; a rerun queues none."""
    holder = world["holder"]
    rid = _deletion(conn, holder["account"], KEEP_ORDERS)
    outcome = answer_erasure(conn, s3, POLICY, rid, now=NOW)

    rows = _outbox(conn, rid)
    expected = _recipients_of({"CAT-2", "CAT-4", "CAT-5", "CAT-6"})
    assert {r[0] for r in rows} == expected and len(rows) == len(expected) == outcome["notices"]
    key = pseudonym_key()
    for recipient, pseudonyms, key_id, order_ids, tables, text in rows:
        assert pseudonyms == key.pseudonyms(recipient, emails=[HOLDER], account_ids=[holder["account"]])
        assert key_id == key.key_id(recipient) and order_ids == []  # the orders were not changed
        assert "shop.orders" not in tables
        assert HOLDER not in text.lower() and "birthday" not in text and "summer" not in text.lower()
    assert _count(conn, "SELECT count(*) FROM governance.erasure_recipient_names WHERE request_id = %s", rid) == 0
    with transaction(conn) as cur:
        assert queue_erasure_notices(cur, POLICY, rid, now=NOW) == 0
    answer_erasure(conn, s3, POLICY, rid, now=NOW + timedelta(hours=1))
    assert len(_outbox(conn, rid)) == len(expected)
    with conn.cursor() as cur:
        assert len(list_notices(cur, request_id=rid)) == len(expected)
    conn.rollback()


def test_an_erasure_tells_the_order_recipients_the_anonymised_order_ids(conn, s3, world):
    """TP-5, ERA-1: a guest's erasure: the recipients of CAT-3 are given the ids of the orders
    anonymised (not the held one's: it did not change); the payload names no address."""
    from governance.holds import add_hold

    guest = world["guest"]
    held = guest["orders"][0]
    add_hold(
        conn, POLICY, scope="record", table_name="shop.orders", record_key=held, reason="audit", set_by="legal", now=NOW
    )
    request = requests.open_request(
        conn, POLICY, kind="erasure", email=GUEST, channel="email", opened_by="support:test", now=NOW
    )
    requests.verify(conn, POLICY, request.request_id, verified_by="support:test", method="id_document", now=NOW)
    answer_erasure(conn, s3, POLICY, request.request_id, now=NOW)
    rows = {r[0]: r for r in _outbox(conn, request.request_id)}
    assert set(rows) == _recipients_of({"CAT-3", "CAT-4", "CAT-5"})
    assert rows["delivery-carrier"][3] == sorted(set(guest["orders"]) - {held})
    assert rows["cloud-hosting"][3] == sorted(set(guest["orders"]) - {held})  # it receives CAT-3 too
    assert all(
        r[3] == []
        for r in rows.values()
        if "CAT-3" not in next(x.categories for x in POLICY.recipients if x.id == r[0])
    )
    assert all("ola" not in r[5].lower() and "@" not in r[5] for r in rows.values())
    assert json.loads(rows["delivery-carrier"][5])["record_counts"]["shop.orders"] == 2
    assert BUCKET not in json.dumps([r[4] for r in rows.values()])


def test_the_cli_previews_and_answers_an_account_deletion(conn, s3, s3_url, db_url, world, capsys):
    """RET-7 through `governance request erase`: the dry run counts the kept category's records as
    kept and changes nothing; the run completes; the output is ids and counts only."""
    from governance.cli import main

    rid = _deletion(conn, world["holder"]["account"], KEEP_ORDERS)
    common = ["--db-url", db_url, "--s3-endpoint-url", s3_url, "--now", NOW.isoformat()]
    assert main(["request", "erase", str(rid), "--dry-run", "--json", *common]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert dry["shop.orders"]["keep"] == 2 and dry["shop.accounts"]["delete"] == 1
    assert _count(conn, "SELECT count(*) FROM shop.accounts WHERE account_id = %s", world["holder"]["account"]) == 1
    assert main(["request", "erase", str(rid), *common]) == 0
    out = capsys.readouterr().out
    assert "completed" in out and "shop.orders.kept: 2" in out and HOLDER not in out.lower() and "@" not in out
