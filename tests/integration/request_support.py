"""A person spread over the shop, for the request-answering tests (ACC-1, POR-1), and what an
independent reading of the shop says they hold.

``seed_person`` writes one person under an account and, as a guest, under another spelling of
the same address (as RET-3 groups guests), with every kind of record the data map has, photos in
the uploads bucket, and a legal hold on one of their orders; plus someone else, who must never show
up. ``expected_keys`` is written by hand from the schema, table by table, not from the data map: it
is the independent query the export is compared with.
"""

from __future__ import annotations

import io
import json
import os
import re
import uuid
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from governance import requests
from governance.holds import add_hold
from governance.objectstore import ensure_bucket

UPLOADS = "shop-uploads"
EXPORTS = "governance-exports"
ADDRESS = "Kari.Nordmann@example.no"
GUEST_SPELLING = "  kari.nordmann@EXAMPLE.no "
OTHER = "ola.hansen@example.no"


@dataclass
class Person:
    account_id: int
    uploads: dict[int, bytes] = field(default_factory=dict)  # upload_id -> the photo's bytes
    held_order: int = 0
    personal_values: list[str] = field(default_factory=list)  # what must never leave the shop


def buckets(s3: Any) -> None:
    for bucket in (UPLOADS, EXPORTS):
        ensure_bucket(s3, bucket)


def _upload(cur: Any, s3: Any, account_id: int | None, when: datetime, name: str) -> tuple[int, bytes]:
    body = os.urandom(3000) + name.encode()
    key = f"uploads/{uuid.uuid4().hex}/{name}"
    s3.put_object(Bucket=UPLOADS, Key=key, Body=body, ContentType="image/jpeg")
    cur.execute(
        "INSERT INTO shop.uploads (account_id, kind, bucket, object_key, byte_size, uploaded_at) "
        "VALUES (%s, 'photo', %s, %s, %s, %s) RETURNING upload_id",
        (account_id, UPLOADS, key, len(body), when),
    )
    return cur.fetchone()[0], body


def _order(cur: Any, account_id: int | None, email: str, when: datetime) -> tuple[int, int]:
    cur.execute(
        "INSERT INTO shop.orders (account_id, email, first_name, last_name, phone, delivery_street, total_amount, "
        "placed_at) VALUES (%s, %s, 'Kari', 'Nordmann', '+47 412 15 934', 'Fjordveien 17', 249.50, %s) "
        "RETURNING order_id",
        (account_id, email, when),
    )
    order_id = cur.fetchone()[0]
    cur.execute(
        "INSERT INTO shop.order_lines (order_id, product_type, quantity, unit_price) VALUES (%s, 'print', 2, 99.75) "
        "RETURNING order_line_id",
        (order_id,),
    )
    return order_id, cur.fetchone()[0]


def seed_person(conn: Any, s3: Any, policy: Any, now: datetime) -> Person:
    """The person (account + guest orders under another spelling), someone else, and a legal hold."""
    when = now - timedelta(days=30)
    buckets(s3)
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO shop.accounts (email, password_hash, first_name, last_name, created_at) "
            "VALUES (%s, 'x', 'Kari', 'Nordmann', %s) RETURNING account_id",
            (ADDRESS, when),
        )
        person = Person(cur.fetchone()[0])
        person.personal_values = [ADDRESS, "Fjordveien 17", "+47 412 15 934", "Nordmann"]
        a = person.account_id
        cur.execute(
            "INSERT INTO shop.calendar_events (account_id, title, event_date, created_at) "
            "VALUES (%s, 'Bursdag', '2026-06-01', %s)",
            (a, when),
        )
        cur.execute(
            "INSERT INTO shop.saved_products (account_id, product_type, title, saved_at) "
            "VALUES (%s, 'photo_book', 'Sommer', %s) RETURNING saved_product_id",
            (a, when),
        )
        saved = cur.fetchone()[0]
        upload, body = _upload(cur, s3, a, when, "sommer.jpg")
        person.uploads[upload] = body
        upload, body = _upload(cur, s3, None, when, "saved.jpg")  # an account's, only through its saved product
        cur.execute(
            "INSERT INTO shop.saved_product_uploads (saved_product_id, upload_id) VALUES (%s, %s)", (saved, upload)
        )
        person.uploads[upload] = body
        _order(cur, a, ADDRESS, when)
        person.held_order, line = _order(cur, None, GUEST_SPELLING, when)  # a guest order of the same person
        upload, body = _upload(cur, s3, None, when, "gjest.jpg")  # a guest's photo, through the order line
        cur.execute("INSERT INTO shop.order_line_uploads (order_line_id, upload_id) VALUES (%s, %s)", (line, upload))
        person.uploads[upload] = body
        cur.execute(
            "INSERT INTO shop.newsletter_subscriptions (email, first_name, subscribed_at) "
            "VALUES (%s, 'Kari', %s) RETURNING subscription_id",
            (ADDRESS.lower(), when),
        )
        subscription = cur.fetchone()[0]
        for kind in ("send", "open"):
            cur.execute(
                "INSERT INTO shop.newsletter_events (subscription_id, kind, occurred_at) VALUES (%s, %s, %s)",
                (subscription, kind, when),
            )
        cur.execute(
            "INSERT INTO shop.contact_messages (email, name, direction, body, sent_at) "
            "VALUES (%s, 'Kari Nordmann', 'inbound', 'Hvor er bildene mine?', %s)",
            (GUEST_SPELLING, when),
        )
        cur.execute(
            "INSERT INTO shop.cookie_preferences (visitor_key, account_id, analytics, marketing, given_at) "
            "VALUES (%s, %s, true, false, %s)",
            (str(uuid.uuid4()), a, when),
        )
        # someone else, sharing nothing with the person
        cur.execute(
            "INSERT INTO shop.accounts (email, password_hash, first_name, created_at) "
            "VALUES (%s, 'x', 'Ola', %s) RETURNING account_id",
            (OTHER, when),
        )
        other = cur.fetchone()[0]
        _order(cur, other, OTHER, when)
        _upload(cur, s3, other, when, "ola.jpg")
        cur.execute(
            "INSERT INTO shop.contact_messages (email, direction, body, sent_at) VALUES (%s, 'inbound', 'hei', %s)",
            (OTHER, when),
        )
    conn.commit()
    add_hold(
        conn,
        policy,
        scope="record",
        reason="court order 26-123",
        set_by="legal",
        now=now - timedelta(days=2),
        table_name="shop.orders",
        record_key=person.held_order,
    )
    return person


def open_verified(conn: Any, policy: Any, now: datetime, *, kind: str = "access", email: str = ADDRESS) -> int:
    request = requests.open_request(
        conn, policy, kind=kind, email=email, channel="email", opened_by="support", now=now - timedelta(days=1)
    )
    requests.verify(
        conn, policy, request.request_id, verified_by="support", method="id_document", now=now - timedelta(hours=20)
    )
    return request.request_id


# The person's records, table by table, written from the schema (not from the data map's links).
_PERSON = "(SELECT account_id FROM shop.accounts WHERE lower(btrim(email)) = %(email)s)"
_ORDERS = (
    f"SELECT order_id FROM shop.orders WHERE account_id IN {_PERSON} "
    "OR (account_id IS NULL AND lower(btrim(email)) = %(email)s)"
)
_LINES = f"SELECT order_line_id FROM shop.order_lines WHERE order_id IN ({_ORDERS})"
_SUBSCRIPTIONS = (
    f"SELECT subscription_id FROM shop.newsletter_subscriptions WHERE account_id IN {_PERSON} "
    "OR (account_id IS NULL AND lower(btrim(email)) = %(email)s)"
)
_SAVED = f"SELECT saved_product_id FROM shop.saved_products WHERE account_id IN {_PERSON}"
INDEPENDENT = {
    "shop.accounts": f"SELECT account_id FROM shop.accounts WHERE account_id IN {_PERSON}",
    "shop.calendar_events": f"SELECT event_id FROM shop.calendar_events WHERE account_id IN {_PERSON}",
    "shop.saved_products": _SAVED,
    "shop.orders": _ORDERS,
    "shop.order_lines": _LINES,
    "shop.newsletter_subscriptions": _SUBSCRIPTIONS,
    "shop.newsletter_events": f"SELECT event_id FROM shop.newsletter_events WHERE subscription_id IN ({_SUBSCRIPTIONS})",
    "shop.contact_messages": "SELECT message_id FROM shop.contact_messages WHERE lower(btrim(email)) = %(email)s",
    "shop.uploads": (
        f"SELECT upload_id FROM shop.uploads WHERE account_id IN {_PERSON} "
        f"OR upload_id IN (SELECT upload_id FROM shop.order_line_uploads WHERE order_line_id IN ({_LINES})) "
        f"OR upload_id IN (SELECT upload_id FROM shop.saved_product_uploads WHERE saved_product_id IN ({_SAVED}))"
    ),
    "shop.cookie_preferences": f"SELECT preference_id FROM shop.cookie_preferences WHERE account_id IN {_PERSON}",
    "governance.request_contacts": (
        "SELECT request_id FROM governance.request_contacts WHERE lower(btrim(reply_to)) = %(email)s"
    ),
}


def expected_keys(conn: Any, email: str = ADDRESS) -> dict[str, set[int]]:
    """Table -> the keys of the person's records, by the queries above (before the export exists)."""
    found = {}
    with conn.cursor() as cur:
        for table, query in INDEPENDENT.items():
            cur.execute(query, {"email": email.strip().lower()})
            found[table] = {row[0] for row in cur.fetchall()}
    conn.rollback()
    return found


@dataclass
class Archive:
    members: dict[str, bytes]

    @classmethod
    def of(cls, body: bytes) -> Archive:
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            assert archive.testzip() is None
            return cls({name: archive.read(name) for name in archive.namelist()})

    def rows(self, table: str) -> list[dict[str, Any]]:
        return json.loads(self.members[f"data/{table}.json"])

    def keys(self, table: str, key: str) -> set[int]:
        return {int(row[key]) for row in self.rows(table)}

    def files(self) -> dict[str, bytes]:
        return {name: body for name, body in self.members.items() if name.startswith("files/")}


def link_of(message: Any) -> str:
    text = message.get_body(("plain",)).get_content() if message.is_multipart() else message.get_payload(decode=True)
    text = text.decode() if isinstance(text, bytes) else text
    match = re.search(r"https?://\S+", text)
    assert match, "the mail carries the download link"
    return match.group(0)


DAGS = Path(__file__).resolve().parents[2] / "dags"


def loaded_dag(dag_id: str) -> Any:
    """The DAG as Airflow parses it, with no retries (a failure here should fail now, not after the
    production backoff)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag(dag_id)
    for task in dag.tasks:
        task.retries = 0
    return dag
