"""One person's records and objects found from the data map (#10: ACC-1, POR-1; ERA-1 reuses it),
against a real PostgreSQL.

A small shop holds three people: Kari, an account holder who also ordered as a guest under her
address written with other case and spaces; Per, a guest only (orders, order lines, photos on
them, a newsletter subscription with events, contact messages); and Ola, with the same kinds of
data, who must never be included. Holds sit on records of Kari and Per: a held record is still
theirs (an export includes it). Every store is compared with a query written by hand from the
schema (include/sql/schema/010_shop.sql), not from the predicates under test, and with the keys
the fixture inserted.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg2
import pytest
import requests

from governance.db import connect, transaction
from governance.objectstore import make_client
from governance.person import Subject, resolve_subject
from governance.person import records as person_records
from governance.person.columns import Column
from governance.person.records import (
    ObjectRef,
    columns,
    count_records,
    person_objects,
    person_stores,
    read_store,
    selection,
    snapshot,
)
from governance.policy import load_policy
from governance.settings import resolve
from governance_dev.loader import seed
from tests.integration import sweep_support as s

pytestmark = pytest.mark.integration

POLICY = load_policy()
T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
SEEDED_AT = datetime(2026, 1, 1, tzinfo=UTC)
KARI = "Kari.Nordmann@Example.invalid"
PER = "per.hansen@example.invalid"
OLA = "ola.berg@example.invalid"

# Hand-written from the schema: the person's rows of each table, for accounts %(accounts)s and
# addresses %(emails)s (already lower-cased and trimmed). Guests' rows carry no account.
GUEST_ORDER = "(o.account_id = ANY(%(accounts)s) OR (o.account_id IS NULL AND lower(trim(o.email)) = ANY(%(emails)s)))"
EXPECTED_SQL = {
    "shop.accounts": "SELECT a.* FROM shop.accounts a WHERE a.account_id = ANY(%(accounts)s) ORDER BY 1",
    "shop.calendar_events": "SELECT e.* FROM shop.calendar_events e WHERE e.account_id = ANY(%(accounts)s) ORDER BY 1",
    "shop.saved_products": "SELECT p.* FROM shop.saved_products p WHERE p.account_id = ANY(%(accounts)s) ORDER BY 1",
    # CON-1, TP-1 (#11): the consents the person gave
    "shop.marketing_consents": "SELECT m.* FROM shop.marketing_consents m WHERE m.account_id = ANY(%(accounts)s) "
    "ORDER BY 1",
    "shop.orders": f"SELECT o.* FROM shop.orders o WHERE {GUEST_ORDER} ORDER BY 1",
    "shop.order_lines": "SELECT l.* FROM shop.order_lines l JOIN shop.orders o ON o.order_id = l.order_id "
    f"WHERE {GUEST_ORDER} ORDER BY 1",
    "shop.newsletter_subscriptions": "SELECT n.* FROM shop.newsletter_subscriptions n WHERE n.account_id = "
    "ANY(%(accounts)s) OR (n.account_id IS NULL AND lower(trim(n.email)) = ANY(%(emails)s)) ORDER BY 1",
    "shop.newsletter_events": "SELECT e.* FROM shop.newsletter_events e JOIN shop.newsletter_subscriptions n "
    "ON n.subscription_id = e.subscription_id WHERE n.account_id = ANY(%(accounts)s) "
    "OR (n.account_id IS NULL AND lower(trim(n.email)) = ANY(%(emails)s)) ORDER BY 1",
    "shop.contact_messages": "SELECT m.* FROM shop.contact_messages m WHERE lower(trim(m.email)) = ANY(%(emails)s) "
    "ORDER BY 1",
    "shop.uploads": "SELECT u.* FROM shop.uploads u WHERE u.account_id = ANY(%(accounts)s) "
    "OR EXISTS (SELECT 1 FROM shop.order_line_uploads x JOIN shop.order_lines l ON l.order_line_id = x.order_line_id "
    f"JOIN shop.orders o ON o.order_id = l.order_id WHERE x.upload_id = u.upload_id AND {GUEST_ORDER}) "
    "OR EXISTS (SELECT 1 FROM shop.saved_product_uploads x JOIN shop.saved_products p "
    "ON p.saved_product_id = x.saved_product_id WHERE x.upload_id = u.upload_id AND p.account_id = ANY(%(accounts)s)) "
    "ORDER BY 1",
    "shop.cookie_preferences": "SELECT c.* FROM shop.cookie_preferences c WHERE c.account_id = ANY(%(accounts)s) "
    "ORDER BY 1",
    # CAT-7 (RET-9): a request's answer address, and its export archive through it.
    "governance.request_contacts": "SELECT c.* FROM governance.request_contacts c "
    "WHERE lower(btrim(c.reply_to)) = ANY(%(emails)s) ORDER BY 1",
    "governance.request_exports": "SELECT x.* FROM governance.request_exports x WHERE x.request_id IN "
    "(SELECT c.request_id FROM governance.request_contacts c WHERE lower(btrim(c.reply_to)) = ANY(%(emails)s)) "
    "ORDER BY 1",
    # REC-1: corrections waiting for their rectification, through the request's answer address.
    "governance.request_corrections": "SELECT x.* FROM governance.request_corrections x WHERE x.request_id IN "
    "(SELECT c.request_id FROM governance.request_contacts c WHERE lower(btrim(c.reply_to)) = ANY(%(emails)s)) "
    "ORDER BY 1",
}


def line(cur: Any, order_id: int, *upload_ids: int) -> int:
    cur.execute(
        "INSERT INTO shop.order_lines (order_id, product_type, quantity, unit_price) "
        "VALUES (%s, 'photo_book', 1, 399.00) RETURNING order_line_id",
        (order_id,),
    )
    line_id = cur.fetchone()[0]
    for upload_id in upload_ids:
        cur.execute(
            "INSERT INTO shop.order_line_uploads (order_line_id, upload_id) VALUES (%s, %s)", (line_id, upload_id)
        )
    return line_id


def lines_of(cur: Any, order_id: int) -> set[int]:
    cur.execute("SELECT order_line_id FROM shop.order_lines WHERE order_id = %s", (order_id,))
    return {row[0] for row in cur.fetchall()}


def events(cur: Any, subscription_id: int, *kinds: str) -> set[int]:
    for i, kind in enumerate(kinds):
        s.newsletter_event(cur, subscription_id, kind, T0 + timedelta(days=i))
    cur.execute("SELECT event_id FROM shop.newsletter_events WHERE subscription_id = %s", (subscription_id,))
    return {row[0] for row in cur.fetchall()}


def consent(cur: Any, account_id: int) -> int:
    cur.execute(
        "INSERT INTO shop.marketing_consents (account_id, purpose, given_at) "
        "VALUES (%s, 'advertising_audiences', %s) RETURNING consent_id",
        (account_id, T0),
    )
    return int(cur.fetchone()[0])


def kari(cur: Any) -> dict[str, set[int]]:
    """An account holder who also ordered as a guest, with her address in other case and spaces."""
    account = s.account(cur, T0, email=KARI)
    photo, guest_photo, saved_photo, saved_only = (s.upload(cur, T0) for _ in range(4))
    cur.execute("UPDATE shop.uploads SET account_id = %s WHERE upload_id IN (%s, %s)", (account, photo, saved_photo))
    own = s.order(cur, T0, account_id=account, email=KARI.lower(), upload_ids=(photo,))
    guest = s.order(cur, T0, email="  KARI.nordmann@example.INVALID ", upload_ids=(guest_photo,))
    extra_line = line(cur, guest)
    product = s.saved_product(cur, account, T0)
    s.link_saved(cur, product, saved_photo)
    s.link_saved(cur, product, saved_only)  # an upload without its account id: found through the product
    subscription = s.subscription(cur, " kari.nordmann@EXAMPLE.invalid", T0)  # signed up without logging in
    loose = s.upload(cur, T0, account_id=account)  # neither ordered nor saved: found by its account only
    return {
        "shop.accounts": {account},
        "shop.calendar_events": {s.calendar_event(cur, account, T0)},
        "shop.saved_products": {product},
        "shop.marketing_consents": {consent(cur, account)},
        "shop.orders": {own, guest},
        "shop.order_lines": lines_of(cur, own) | lines_of(cur, guest) | {extra_line},
        "shop.newsletter_subscriptions": {subscription},
        "shop.newsletter_events": events(cur, subscription, "send", "open"),
        "shop.contact_messages": {s.message(cur, "kari.nordmann@example.invalid ", T0)},
        "shop.uploads": {photo, guest_photo, saved_photo, saved_only, loose},
        "shop.cookie_preferences": {s.cookie(cur, T0, account)},
    }


def per(cur: Any) -> dict[str, set[int]]:
    """A guest: two orders (one address in other case), photos on their lines (one photo on two
    lines), a newsletter subscription with events and two contact messages."""
    photos = [s.upload(cur, T0) for _ in range(3)]
    first = s.order(cur, T0, email=PER, upload_ids=(photos[0], photos[2]))
    second = s.order(cur, T0 + timedelta(days=3), email=" Per.Hansen@example.invalid", upload_ids=(photos[1],))
    both = line(cur, second, photos[2])
    subscription = s.subscription(cur, PER.upper(), T0)
    return {
        "shop.orders": {first, second},
        "shop.order_lines": lines_of(cur, first) | lines_of(cur, second) | {both},
        "shop.newsletter_subscriptions": {subscription},
        "shop.newsletter_events": events(cur, subscription, "send", "open", "click"),
        "shop.contact_messages": {
            s.message(cur, PER, T0),
            s.message(cur, " PER.hansen@example.invalid", T0, "outbound"),
        },
        "shop.uploads": set(photos),
    }


def ola(cur: Any, kari_account: int) -> None:
    """Someone else, with every kind of record, some close to Kari's and Per's."""
    account = s.account(cur, T0, email=OLA)
    s.calendar_event(cur, account, T0)
    product = s.saved_product(cur, account, T0)
    photo = s.upload(cur, T0, account_id=account)
    s.link_saved(cur, product, photo)
    s.order(cur, T0, account_id=account, email=OLA, upload_ids=(s.upload(cur, T0, account_id=account),))
    s.order(cur, T0, email=f" {OLA.upper()}", upload_ids=(s.upload(cur, T0),))
    # A gift Ola ordered from his account for Kari's address: his order, not hers.
    s.order(cur, T0, account_id=account, email=KARI)
    s.order(cur, T0, email="per.hansen@example.invalid.no")  # an address that merely contains Per's
    events(cur, s.subscription(cur, OLA, T0, account_id=account), "send", "click")
    events(cur, s.subscription(cur, "kari.nordmann@example.invalid", T0, account_id=account), "send")
    s.message(cur, OLA, T0)
    s.cookie(cur, T0, account)
    s.cookie(cur, T0)  # a visitor without an account
    s.visit(cur, T0)
    assert kari_account != account


@pytest.fixture(scope="module")
def shop(db_url):
    """The three people, with holds on records of Kari and Per; the keys each owns."""
    conn = psycopg2.connect(db_url)
    s.empty_shop(conn)
    with conn.cursor() as cur:
        owned = {"kari": kari(cur), "per": per(cur)}
        ola(cur, next(iter(owned["kari"]["shop.accounts"])))
        s.hold(cur, "record", T0, table_name="shop.orders", record_key=str(min(owned["kari"]["shop.orders"])))
        s.hold(cur, "record", T0, table_name="shop.order_lines", record_key=str(min(owned["per"]["shop.order_lines"])))
        cur.execute("SELECT governance.email_pseudonym(%s)", (PER,))
        s.hold(cur, "person", T0, email_sha256=cur.fetchone()[0])
    conn.commit()
    conn.close()
    return owned


def subject_of(conn: Any, *, account_id: int | None = None, email: str | None = None) -> Subject:
    with transaction(conn, read_only=True) as cur:
        return resolve_subject(cur, POLICY, account_id=account_id, email=email)


def expected_rows(cur: Any, table: str, subject: Subject) -> list[tuple[Any, ...]]:
    cur.execute(EXPECTED_SQL[table], subject.params())
    return cur.fetchall()


def test_every_store_that_can_name_a_person_is_searched_and_visits_are_not():
    stores = person_stores(POLICY)
    assert [store.table for _, store in stores] == list(EXPECTED_SQL)  # data-map order
    assert [category.id for category, _ in stores] == ["CAT-2"] * 4 + ["CAT-3"] * 2 + ["CAT-4"] * 3 + [
        "CAT-5",
        "CAT-6",
    ] + ["CAT-7"] * 3


@pytest.mark.parametrize(
    ("who", "lookup"),
    [
        ("kari", {"email": "  KARI.NORDMANN@example.invalid"}),
        ("kari", {"account": True}),
        ("per", {"email": " Per.Hansen@Example.invalid "}),
    ],
)
def test_the_person_s_records_are_exactly_the_hand_written_query_s(conn, shop, who, lookup):
    account = next(iter(shop["kari"]["shop.accounts"])) if lookup.get("account") else None
    subject = subject_of(conn, account_id=account, email=lookup.get("email"))
    assert subject.found
    owned = shop[who]
    with snapshot(conn) as cur:
        counts = count_records(cur, POLICY, subject)
        assert list(counts) == list(EXPECTED_SQL)
        for _, store in person_stores(POLICY):
            rows = list(read_store(cur, POLICY, subject, store))
            assert rows == expected_rows(cur, store.table, subject), store.table
            assert {row[0] for row in rows} == owned.get(store.table, set()), store.table
            assert counts[store.table] == len(rows), store.table


def test_held_records_are_included(conn, shop):
    """An export includes records under a legal hold (only erasure has to respect them): a record
    hold on Kari's guest order and on Per's order line, a person hold on Per's address."""
    subjects = [subject_of(conn, email=KARI), subject_of(conn, email=PER)]
    with snapshot(conn) as cur:
        cur.execute("SELECT table_name, record_key FROM governance.legal_holds WHERE scope = 'record'")
        held = set(cur.fetchall())
        found = {
            (store.table, str(row[0]))
            for subject in subjects
            for _, store in person_stores(POLICY)
            for row in read_store(cur, POLICY, subject, store)
        }
    assert len(held) == 2 and held <= found


def test_nobody_s_records_for_a_subject_that_matches_nobody(conn, shop):
    subject = subject_of(conn, email="nobody@example.invalid")
    assert not subject.found
    with snapshot(conn) as cur:
        assert set(count_records(cur, POLICY, subject).values()) == {0}
        assert list(person_objects(cur, POLICY, subject)) == []
        assert list(read_store(cur, POLICY, subject, POLICY.store("shop.orders"))) == []


def test_the_person_s_objects(conn, shop):
    for who, email in (("kari", KARI), ("per", PER)):
        subject = subject_of(conn, email=email)
        with snapshot(conn) as cur:
            objects = list(person_objects(cur, POLICY, subject))
            cur.execute(
                "SELECT upload_id::text, bucket, object_key FROM shop.uploads WHERE upload_id = ANY(%s) ORDER BY upload_id",
                (sorted(shop[who]["shop.uploads"]),),
            )
            expected = [
                ObjectRef("shop.uploads", key, bucket, object_key) for key, bucket, object_key in cur.fetchall()
            ]
        assert objects == expected and len(objects) == len(shop[who]["shop.uploads"])


def test_columns_come_from_the_catalog_in_table_order(conn, shop):
    with snapshot(conn) as cur:
        described = columns(cur, POLICY.store("shop.order_lines"))
        cur.execute("SELECT * FROM shop.order_lines LIMIT 0")
        assert [c.name for c in described] == [d.name for d in cur.description]
    assert described == [
        Column("order_line_id", "bigint"),
        Column("order_id", "bigint"),
        Column("product_type", "text"),
        Column("quantity", "integer"),
        Column("unit_price", "numeric(12,2)"),
    ]


def test_rows_are_streamed_in_batches_from_one_snapshot(conn, db_url, shop, monkeypatch):
    """A server-side cursor fetching two rows at a time returns every row; an order placed while
    the snapshot is open is not seen in it (every store is read as of one instant)."""
    monkeypatch.setattr(person_records, "ITERSIZE", 2)
    subject = subject_of(conn, email=PER)
    store = POLICY.store("shop.order_lines")
    with snapshot(conn) as cur:
        before = count_records(cur, POLICY, subject)
        other = psycopg2.connect(db_url)
        try:
            with other.cursor() as writer:
                s.order(writer, T0, email=PER)
            other.commit()
            rows = list(read_store(cur, POLICY, subject, store))
            assert len(rows) == before["shop.order_lines"] == len(shop["per"]["shop.order_lines"]) == 3
            assert count_records(cur, POLICY, subject) == before
        finally:
            with other.cursor() as writer:
                writer.execute("DELETE FROM shop.orders WHERE order_id > %s", (max(shop["per"]["shop.orders"]),))
            other.commit()
            other.close()


@pytest.fixture(scope="module")
def seeded_url(make_database, s3_endpoint):
    """A synthetic shop of some size (statistics taken), so the planner chooses as it would in production."""
    url = make_database()
    requests.post(f"{s3_endpoint}/moto-api/reset", timeout=10).raise_for_status()
    conn = connect(url)
    seed(conn, make_client(resolve(None, s3_endpoint)), POLICY, SEEDED_AT, customers=2000, max_objects=400)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("ANALYZE")
    conn.close()
    return url


def rows_read(node: dict[str, Any]) -> Iterator[tuple[str, int]]:
    """(node, rows it produced or threw away) for every node of an EXPLAIN (ANALYZE, FORMAT JSON) plan."""
    read = node["Actual Rows"] * node["Actual Loops"] + node.get("Rows Removed by Filter", 0)
    yield f"{node['Node Type']} {node.get('Relation Name') or node.get('Index Name') or ''}", read
    for child in node.get("Plans", []):
        yield from rows_read(child)


def test_one_person_s_queries_read_only_that_person_s_rows(seeded_url):
    """No node of a person's query reads more rows than the person has: an index path exists for
    every store and link, and a guest is found by the address index, not by reading every order
    without an account (the benchmark's target: one person under 1 s at 1,000,000 customers)."""
    conn = connect(seeded_url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT (SELECT o.email FROM shop.orders o JOIN shop.order_lines l USING (order_id) "
                "JOIN shop.order_line_uploads USING (order_line_id) WHERE o.account_id IS NULL ORDER BY o.order_id LIMIT 1),"
                "(SELECT account_id FROM shop.orders WHERE account_id IS NOT NULL GROUP BY 1 ORDER BY count(*) DESC, 1 "
                "LIMIT 1)"
            )
            guest, account = cur.fetchone()
            cur.execute("SELECT count(*) FROM shop.orders WHERE account_id IS NULL")
            assert cur.fetchone()[0] > 200  # a scan of the guests' orders would show
        conn.rollback()
        for subject in (subject_of(conn, email=guest), subject_of(conn, account_id=account)):
            with snapshot(conn) as cur:
                counts = count_records(cur, POLICY, subject)
                assert counts["shop.orders"] and counts["shop.uploads"]
                # Small tables are cheaper to scan whole; at 1,000,000 customers they are not.
                cur.execute("SET LOCAL enable_seqscan = off")
                for _, store in person_stores(POLICY):
                    cur.execute(
                        b"EXPLAIN (ANALYZE, FORMAT JSON) " + selection(POLICY, store).as_string(conn).encode(),
                        subject.params(),
                    )
                    plan = cur.fetchone()[0][0]["Plan"]
                    worst = max(rows_read(plan), key=lambda item: item[1])
                    assert worst[1] <= 50, f"{store.table}: {worst} of {counts}"
    finally:
        conn.close()
