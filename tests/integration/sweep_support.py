"""Small hand-made shop rows for the sweep tests (the seed is used where a whole shop is wanted).

Every helper inserts one row and returns its key; values are synthetic. ``empty_shop`` clears the
shop and the holds between tests of a module that shares one database.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime, timedelta
from typing import Any

BUCKET = "shop-uploads"
_counter = itertools.count(1)


def empty_shop(conn: Any) -> None:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT string_agg(format('%I.%I', schemaname, tablename), ', ') FROM pg_tables "
            "WHERE schemaname = 'shop' AND tablename NOT LIKE 'visits%'"
        )
        tables = cur.fetchone()[0]
        cur.execute(f"TRUNCATE {tables}, shop.visits, governance.legal_holds CASCADE")
    conn.commit()


def account(cur: Any, created: datetime, deleted: datetime | None = None, email: str | None = None) -> int:
    n = next(_counter)
    cur.execute(
        "INSERT INTO shop.accounts (email, password_hash, first_name, last_name, created_at, deleted_at) "
        "VALUES (%s, 'x', 'Kari', 'Nordmann', %s, %s) RETURNING account_id",
        (email or f"kunde{n}@example.invalid", created, deleted),
    )
    return cur.fetchone()[0]


def calendar_event(cur: Any, account_id: int, created: datetime) -> int:
    cur.execute(
        "INSERT INTO shop.calendar_events (account_id, title, event_date, created_at) "
        "VALUES (%s, 'Bursdag', '2020-05-17', %s) RETURNING event_id",
        (account_id, created),
    )
    return cur.fetchone()[0]


def saved_product(cur: Any, account_id: int, saved: datetime) -> int:
    cur.execute(
        "INSERT INTO shop.saved_products (account_id, product_type, title, saved_at) "
        "VALUES (%s, 'photo_book', 'Ferie', %s) RETURNING saved_product_id",
        (account_id, saved),
    )
    return cur.fetchone()[0]


def order(
    cur: Any,
    placed: datetime,
    account_id: int | None = None,
    email: str | None = None,
    upload_ids: tuple[int, ...] = (),
) -> int:
    n = next(_counter)
    cur.execute(
        "INSERT INTO shop.orders (account_id, email, first_name, last_name, phone, delivery_street, "
        "delivery_postal_code, delivery_city, delivery_country, billing_street, billing_postal_code, billing_city, "
        "payment_method, card_last4, payment_reference, total_amount, placed_at) "
        "VALUES (%s, %s, 'Ola', 'Hansen', '+4790000000', 'Storgata 1', '0155', 'Oslo', 'NO', 'Storgata 1', '0155', "
        "'Oslo', 'card', '4242', %s, 499.00, %s) RETURNING order_id",
        (account_id, email or f"ordre{n}@example.invalid", f"ref-{n}", placed),
    )
    order_id = cur.fetchone()[0]
    cur.execute(
        "INSERT INTO shop.order_lines (order_id, product_type, quantity, unit_price) "
        "VALUES (%s, 'print', 2, 249.50) RETURNING order_line_id",
        (order_id,),
    )
    line_id = cur.fetchone()[0]
    for upload_id in upload_ids:
        cur.execute(
            "INSERT INTO shop.order_line_uploads (order_line_id, upload_id) VALUES (%s, %s)", (line_id, upload_id)
        )
    return order_id


def upload(
    cur: Any,
    uploaded: datetime,
    account_id: int | None = None,
    s3: Any = None,
    key: str | None = None,
    bucket: str = BUCKET,
) -> int:
    key = key or f"uploads/{uuid.uuid4().hex}.jpg"
    cur.execute(
        "INSERT INTO shop.uploads (account_id, kind, bucket, object_key, byte_size, uploaded_at) "
        "VALUES (%s, 'photo', %s, %s, 4, %s) RETURNING upload_id",
        (account_id, bucket, key, uploaded),
    )
    upload_id = cur.fetchone()[0]
    if s3 is not None:
        s3.put_object(Bucket=bucket, Key=key, Body=b"jpeg")
    return upload_id


def link_saved(cur: Any, saved_product_id: int, upload_id: int) -> None:
    cur.execute(
        "INSERT INTO shop.saved_product_uploads (saved_product_id, upload_id) VALUES (%s, %s)",
        (saved_product_id, upload_id),
    )


def subscription(
    cur: Any, email: str, subscribed: datetime, confirmed: datetime | None = None, account_id: int | None = None
) -> int:
    cur.execute(
        "INSERT INTO shop.newsletter_subscriptions (account_id, email, first_name, subscribed_at, confirmed_at) "
        "VALUES (%s, %s, 'Per', %s, %s) RETURNING subscription_id",
        (account_id, email, subscribed, confirmed),
    )
    return cur.fetchone()[0]


def newsletter_event(cur: Any, subscription_id: int, kind: str, at: datetime) -> None:
    cur.execute(
        "INSERT INTO shop.newsletter_events (subscription_id, kind, occurred_at) VALUES (%s, %s, %s)",
        (subscription_id, kind, at),
    )


def message(cur: Any, email: str, sent: datetime, direction: str = "inbound") -> int:
    cur.execute(
        "INSERT INTO shop.contact_messages (email, name, direction, subject, body, sent_at) "
        "VALUES (%s, 'Per', %s, 'Bestilling', 'Hei', %s) RETURNING message_id",
        (email, direction, sent),
    )
    return cur.fetchone()[0]


def cookie(cur: Any, given: datetime, account_id: int | None = None) -> int:
    cur.execute(
        "INSERT INTO shop.cookie_preferences (visitor_key, account_id, analytics, marketing, given_at) "
        "VALUES (%s, %s, true, false, %s) RETURNING preference_id",
        (str(uuid.uuid4()), account_id, given),
    )
    return cur.fetchone()[0]


def visit(cur: Any, last_activity: datetime) -> int:
    cur.execute(
        "INSERT INTO shop.visits (session_key, ip_address, country, started_at, last_activity_at) "
        "VALUES (%s, '192.0.2.1', 'NO', %s, %s) RETURNING visit_id",
        (str(uuid.uuid4()), last_activity - timedelta(minutes=5), last_activity),
    )
    return cur.fetchone()[0]


def hold(cur: Any, scope: str, set_at: datetime, **target: Any) -> None:
    columns = ", ".join(["scope", "reason", "set_by", "set_at", *target])
    marks = ", ".join(["%s"] * (4 + len(target)))
    cur.execute(
        f"INSERT INTO governance.legal_holds ({columns}) VALUES ({marks})",
        (scope, "court order (test)", "test", set_at, *target.values()),
    )


def exists(cur: Any, table: str, key_column: str, key: Any) -> bool:
    cur.execute(f"SELECT EXISTS (SELECT 1 FROM {table} WHERE {key_column} = %s)", (key,))
    return cur.fetchone()[0]


def evidence_totals(cur: Any, run_id: str, kind: str = "sweep_batch") -> dict[str, dict[str, int]]:
    """rule -> counter -> sum over the run's entries of that kind."""
    cur.execute(
        "SELECT e.rule_id, c.key, sum(c.value::bigint) FROM governance.evidence e, jsonb_each_text(e.counts) c "
        "WHERE e.run_id = %s AND e.kind = %s GROUP BY 1, 2",
        (run_id, kind),
    )
    totals: dict[str, dict[str, int]] = {}
    for rule, key, value in cur.fetchall():
        totals.setdefault(rule, {})[key] = int(value)
    return totals


def create_locked_bucket(s3: Any, bucket: str = BUCKET) -> None:
    """The uploads bucket with S3 Object Lock enabled, so a test can lock objects and make their
    purge fail per key (AccessDenied), as a legal hold on an object does."""
    s3.create_bucket(
        Bucket=bucket,
        ObjectLockEnabledForBucket=True,
        CreateBucketConfiguration={"LocationConstraint": s3.meta.region_name},
    )


def object_keys(s3: Any, bucket: str = BUCKET) -> set[str]:
    keys = set()
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        keys.update(v["Key"] for v in page.get("Versions", []) + page.get("DeleteMarkers", []))
    return keys


def latest_summaries(cur: Any, run_id: str) -> dict[str, dict[str, int]]:
    """rule -> counts of its latest kind='sweep_rule' entry of the run (they are cumulative)."""
    cur.execute(
        "SELECT DISTINCT ON (rule_id) rule_id, counts FROM governance.evidence "
        "WHERE run_id = %s AND kind = 'sweep_rule' ORDER BY rule_id, entry_id DESC",
        (run_id,),
    )
    return {rule: {k: int(v) for k, v in counts.items()} for rule, counts in cur.fetchall()}
