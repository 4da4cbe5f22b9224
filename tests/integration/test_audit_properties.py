"""Property tests: the audit's SQL predicates agree with the plain-Python reference (RET-1..RET-10).

Hypothesis builds small random shops whose clocks sit near the windows' boundaries (exactly at,
a second either side, 29 February, several rules on one upload, e-mails differing in case and
spaces, bulk sends, legal holds in and out of force), inserts them into a real PostgreSQL and
checks, per rule, that the records the audit SQL reports — and by how many seconds — are exactly
those ``governance_dev.reference.overdue`` computes. A sample is also run through the full audit
(GX, object store, evidence off) to check the counts GX reports.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from dateutil.relativedelta import relativedelta
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from psycopg2.extras import execute_values

from governance.audit import audit_parameters, audit_sql_text, render, run_audit
from governance.policy import load_policy
from governance_dev import reference
from governance_dev.reference import Snapshot, email_pseudonym

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
POLICY = load_policy()
WINDOWS = [
    relativedelta(hours=24),
    relativedelta(days=60),
    relativedelta(days=90),
    relativedelta(months=12),
    relativedelta(years=2),
    relativedelta(days=7),  # RET-9: request exports
    relativedelta(days=30),  # RET-9: request contacts, after the request closed
]
EMAILS = [
    "kari@example.com",
    " Kari@Example.com",
    "KARI@EXAMPLE.COM ",
    "ola@example.net",
    "Ola@example.net",
    "per@example.org",
    "liv@example.org",
]
UPLOAD_RULES = reference.UPLOAD_RULES

# --- inserting a Snapshot ----------------------------------------------------------------------

SHOP_TABLES = [
    "shop.order_line_uploads",
    "shop.saved_product_uploads",
    "shop.newsletter_events",
    "shop.order_lines",
    "shop.uploads",
    "shop.calendar_events",
    "shop.saved_products",
    "shop.orders",
    "shop.newsletter_subscriptions",
    "shop.contact_messages",
    "shop.cookie_preferences",
    "shop.visits",
    "shop.accounts",
    "governance.legal_holds",
    "governance.request_exports",
    "governance.request_contacts",
    "governance.subject_requests",
]
EXPORTS_BUCKET = POLICY.object_store.exports_bucket
OPEN_STATES = ("received", "verified", "in_progress")
OLD = datetime(2015, 1, 1, tzinfo=UTC)


def empty_shop(conn) -> None:
    with conn.cursor() as cur:
        cur.execute("TRUNCATE " + ", ".join(SHOP_TABLES) + " RESTART IDENTITY CASCADE")
    conn.commit()


def insert_snapshot(conn, shop: Snapshot, *, bucket: str = "shop-uploads", prefix: str = "uploads/") -> None:
    """Insert the rows of a Snapshot, filling the columns the rules do not read with fixed values."""

    def rows(items: list[dict[str, Any]], *cols: str) -> list[tuple]:
        return [tuple(item.get(c) for c in cols) for item in items]

    with conn.cursor() as cur:

        def put(table: str, columns: str, template: str, values: list[tuple]) -> None:
            if values:
                execute_values(cur, f"INSERT INTO {table} ({columns}) VALUES %s", values, template=template)

        put(
            "shop.accounts",
            "account_id, email, password_hash, created_at, deleted_at",
            "(%s, %s, 'x', '2015-01-01Z', %s)",
            rows(shop.accounts, "account_id", "email", "deleted_at"),
        )
        put(
            "shop.visits",
            "visit_id, session_key, ip_address, started_at, last_activity_at",
            "(%s, gen_random_uuid(), '192.0.2.1', %s, %s)",
            [(v["visit_id"], v["last_activity_at"], v["last_activity_at"]) for v in shop.visits],
        )
        put(
            "shop.calendar_events",
            "event_id, account_id, title, event_date, created_at",
            "(%s, %s, 'event', '2020-01-01', '2015-01-01Z')",
            rows(shop.calendar_events, "event_id", "account_id"),
        )
        put(
            "shop.saved_products",
            "saved_product_id, account_id, product_type, saved_at",
            "(%s, %s, 'photo_book', %s)",
            rows(shop.saved_products, "saved_product_id", "account_id", "saved_at"),
        )
        put(
            "shop.orders",
            "order_id, account_id, email, placed_at, anonymised_at, total_amount",
            "(%s, %s, %s, %s, %s, 100)",
            rows(shop.orders, "order_id", "account_id", "email", "placed_at", "anonymised_at"),
        )
        put(
            "shop.order_lines",
            "order_line_id, order_id, product_type, quantity, unit_price",
            "(%s, %s, 'print', 1, 9)",
            rows(shop.order_lines, "order_line_id", "order_id"),
        )
        put(
            "shop.uploads",
            "upload_id, account_id, kind, bucket, object_key, byte_size, uploaded_at",
            "(%s, %s, 'photo', %s, %s, 1, %s)",
            [
                (u["upload_id"], u.get("account_id"), bucket, f"{prefix}{u['upload_id']}.jpg", u["uploaded_at"])
                for u in shop.uploads
            ],
        )
        put(
            "shop.order_line_uploads",
            "order_line_id, upload_id",
            None,
            rows(shop.order_line_uploads, "order_line_id", "upload_id"),
        )
        put(
            "shop.saved_product_uploads",
            "saved_product_id, upload_id",
            None,
            rows(shop.saved_product_uploads, "saved_product_id", "upload_id"),
        )
        put(
            "shop.newsletter_subscriptions",
            "subscription_id, account_id, email, subscribed_at, confirmed_at",
            None,
            rows(
                shop.newsletter_subscriptions, "subscription_id", "account_id", "email", "subscribed_at", "confirmed_at"
            ),
        )
        put(
            "shop.newsletter_events",
            "subscription_id, kind, occurred_at",
            None,
            rows(shop.newsletter_events, "subscription_id", "kind", "occurred_at"),
        )
        put(
            "shop.contact_messages",
            "message_id, email, direction, body, sent_at",
            "(%s, %s, 'inbound', 'hei', %s)",
            rows(shop.contact_messages, "message_id", "email", "sent_at"),
        )
        put(
            "shop.cookie_preferences",
            "preference_id, visitor_key, account_id, analytics, marketing, given_at",
            "(%s, gen_random_uuid(), %s, false, false, %s)",
            rows(shop.cookie_preferences, "preference_id", "account_id", "given_at"),
        )
        put(
            "governance.subject_requests",
            "request_id, kind, email_sha256, channel, opened_by, received_at, opened_at, due_at, state, "
            "verified_by, verified_at, verification_method, started_at, closed_at, refused_reason",
            "(%s, 'access', %s, 'email', 'test', '2015-01-01Z', '2015-01-01Z', '2015-02-01Z', %s, %s, %s, %s, %s, %s, %s)",
            [request_values(r) for r in shop.subject_requests],
        )
        put(
            "governance.request_contacts",
            "request_id, reply_to, created_at",
            "(%s, %s, '2015-01-01Z')",
            rows(shop.request_contacts, "request_id", "reply_to"),
        )
        put(
            "governance.request_exports",
            "export_id, request_id, bucket, object_key, created_at, byte_size, sha256, file_count",
            "(%s, %s, %s, %s, %s, 1, repeat('0', 64), 1)",
            [
                (x["export_id"], x["request_id"], EXPORTS_BUCKET, f"exports/{x['export_id']}.zip", x["created_at"])
                for x in shop.request_exports
            ],
        )
        put(
            "governance.legal_holds",
            "scope, rule_id, table_name, record_key, account_id, email_sha256, reason, set_by, set_at, ends_at, "
            "lifted_at",
            "(%s, %s, %s, %s, %s, %s, 'test', 'test', %s, %s, %s)",
            rows(
                shop.legal_holds,
                "scope",
                "rule_id",
                "table_name",
                "record_key",
                "account_id",
                "email_sha256",
                "set_at",
                "ends_at",
                "lifted_at",
            ),
        )
    conn.commit()


def request_values(request: dict[str, Any]) -> tuple:
    """A ledger row in ``request['state']`` that the schema's CHECKs accept: verified, started and
    refused with a reason as the state needs; a distinct subject per request (one open per subject)."""
    state = request["state"]
    verified = state in ("verified", "in_progress", "completed")
    started = state in ("in_progress", "completed")
    return (
        request["request_id"],
        email_pseudonym(f"subject{request['request_id']}@example.com"),
        state,
        "test" if verified else None,
        OLD if verified else None,
        "id_document" if verified else None,
        OLD if started else None,
        request["closed_at"],
        "test" if state == "refused" else None,
    )


def audit_sql_past(conn, now: datetime) -> tuple[dict[str, dict[int, int]], dict[str, dict[int, int]]]:
    """(overdue, held): rule id -> {record id: seconds past the window}, straight from the audit
    predicates (no GX); a predicate returns every record past its window, flagging the held ones."""
    overdue: dict[str, dict[int, int]] = {rule.id: {} for rule in POLICY.rules}
    held: dict[str, dict[int, int]] = {rule.id: {} for rule in POLICY.rules}
    params = audit_parameters(POLICY, now)
    with conn.cursor() as cur:
        for text in dict.fromkeys(audit_sql_text(rule) for rule in POLICY.rules):
            cur.execute(render(cur, text, params))
            for rule_id, record_id, seconds, is_held in cur.fetchall():
                seen = overdue[rule_id].keys() | held[rule_id].keys()
                assert record_id not in seen, f"{rule_id}: record {record_id} reported twice"
                (held if is_held else overdue)[rule_id][record_id] = seconds
    conn.rollback()
    return overdue, held


def audit_sql_overdue(conn, now: datetime) -> dict[str, dict[int, int]]:
    """rule id -> {record id: overdue seconds} of the records no hold keeps."""
    return audit_sql_past(conn, now)[0]


# --- random small shops, clocks near the boundaries ---------------------------------------------


@st.composite
def instants(draw) -> datetime:
    """A clock: at, or a second either side of, some window's boundary from NOW; or anywhere."""
    kind = draw(st.sampled_from(["boundary", "boundary", "near", "any", "leap", "old"]))
    if kind == "leap":
        return datetime(2024, 2, 29, 12, 0, tzinfo=UTC) + timedelta(seconds=draw(st.integers(-1, 1)))
    if kind == "any":
        return NOW - timedelta(seconds=draw(st.integers(-86400, 4 * 365 * 86400)))
    if kind == "old":  # past every window
        return NOW - relativedelta(years=2) - timedelta(seconds=draw(st.integers(1, 2 * 365 * 86400)))
    boundary = NOW - draw(st.sampled_from(WINDOWS))
    if kind == "boundary":
        return boundary + timedelta(seconds=draw(st.integers(-1, 1)))
    return boundary + timedelta(
        seconds=draw(st.integers(-3 * 86400, 3 * 86400)), microseconds=draw(st.sampled_from([0, 0, 1, 999_999]))
    )


@st.composite
def shops(draw) -> Snapshot:
    ids = iter(range(1, 10_000))
    maybe = lambda p=0.5: draw(st.floats(0, 1)) < p  # noqa: E731
    shop = Snapshot()
    for _ in range(draw(st.integers(0, 4))):
        shop.accounts.append(
            {
                "account_id": next(ids),
                "email": draw(st.sampled_from(EMAILS)),
                "deleted_at": draw(instants()) if maybe(0.6) else None,
            }
        )
    account_ids = [a["account_id"] for a in shop.accounts]
    an_account = st.sampled_from(account_ids) if account_ids else st.none()

    for _ in range(draw(st.integers(0, 4))):
        shop.visits.append({"visit_id": next(ids), "last_activity_at": draw(instants())})
    for account_id in account_ids:
        for _ in range(draw(st.integers(0, 2))):
            shop.calendar_events.append({"event_id": next(ids), "account_id": account_id})
        for _ in range(draw(st.integers(0, 2))):
            shop.saved_products.append(
                {"saved_product_id": next(ids), "account_id": account_id, "saved_at": draw(instants())}
            )
    for _ in range(draw(st.integers(0, 6))):
        anonymised = maybe(0.15)
        shop.orders.append(
            {
                "order_id": next(ids),
                "account_id": draw(an_account) if maybe(0.5) else None,
                "email": None if anonymised else draw(st.sampled_from(EMAILS)),
                "placed_at": draw(instants()),
                "anonymised_at": NOW - timedelta(days=1) if anonymised else None,
            }
        )
    for o in shop.orders:
        if maybe(0.7):
            shop.order_lines.append({"order_line_id": next(ids), "order_id": o["order_id"]})
    for _ in range(draw(st.integers(0, 6))):
        upload = {
            "upload_id": next(ids),
            "account_id": draw(an_account) if maybe(0.6) else None,
            "uploaded_at": draw(instants()),
        }
        shop.uploads.append(upload)
        for line in shop.order_lines:
            if maybe(0.2):
                shop.order_line_uploads.append(
                    {"order_line_id": line["order_line_id"], "upload_id": upload["upload_id"]}
                )
        for product in shop.saved_products:
            if product["account_id"] == upload["account_id"] and maybe(0.4):
                shop.saved_product_uploads.append(
                    {"saved_product_id": product["saved_product_id"], "upload_id": upload["upload_id"]}
                )
    for _ in range(draw(st.integers(0, 3))):
        subscription = {
            "subscription_id": next(ids),
            "account_id": draw(an_account) if maybe(0.3) else None,
            "email": draw(st.sampled_from(EMAILS)),
            "subscribed_at": draw(instants()),
            "confirmed_at": draw(instants()) if maybe(0.5) else None,
        }
        shop.newsletter_subscriptions.append(subscription)
        for _ in range(draw(st.integers(0, 3))):
            shop.newsletter_events.append(
                {
                    "subscription_id": subscription["subscription_id"],
                    "kind": draw(st.sampled_from(["send", "send", "open", "click"])),
                    "occurred_at": draw(instants()),
                }
            )
    for _ in range(draw(st.integers(0, 3))):
        shop.contact_messages.append(
            {"message_id": next(ids), "email": draw(st.sampled_from(EMAILS)), "sent_at": draw(instants())}
        )
    for _ in range(draw(st.integers(0, 3))):
        shop.cookie_preferences.append(
            {
                "preference_id": next(ids),
                "account_id": draw(an_account) if maybe(0.3) else None,
                "given_at": draw(instants()),
            }
        )
    for _ in range(draw(st.integers(0, 3))):  # RET-9: a request's answer address and export archive
        request_id = next(ids)
        state = draw(st.sampled_from([*OPEN_STATES, "completed", "refused", "withdrawn"]))
        closed_at = None if state in OPEN_STATES else draw(instants())
        shop.subject_requests.append({"request_id": request_id, "state": state, "closed_at": closed_at})
        if maybe(0.8):
            shop.request_contacts.append({"request_id": request_id, "reply_to": draw(st.sampled_from(EMAILS))})
        if maybe(0.5):
            shop.request_exports.append(
                {"export_id": next(ids), "request_id": request_id, "created_at": draw(instants())}
            )
    shop.legal_holds = [draw(holds(shop)) for _ in range(draw(st.integers(0, 3)))]
    return shop


TABLE_KEYS = {
    "shop.visits": ("visits", "visit_id"),
    "shop.accounts": ("accounts", "account_id"),
    "shop.calendar_events": ("calendar_events", "event_id"),
    "shop.saved_products": ("saved_products", "saved_product_id"),
    "shop.orders": ("orders", "order_id"),
    "shop.uploads": ("uploads", "upload_id"),
    "shop.contact_messages": ("contact_messages", "message_id"),
    "shop.newsletter_subscriptions": ("newsletter_subscriptions", "subscription_id"),
    "shop.cookie_preferences": ("cookie_preferences", "preference_id"),
    "governance.request_contacts": ("request_contacts", "request_id"),
    "governance.request_exports": ("request_exports", "export_id"),
}


@st.composite
def holds(draw, shop: Snapshot) -> dict[str, Any]:
    hold = {
        "scope": None,
        "rule_id": None,
        "table_name": None,
        "record_key": None,
        "account_id": None,
        "email_sha256": None,
        "set_at": NOW - timedelta(days=draw(st.integers(-1, 30)) or 1),
        "ends_at": None,
        "lifted_at": None,
    }
    # in force, lifted, ended, or not yet set: all relative to NOW (RET-10: holds_at(now))
    state = draw(st.sampled_from(["active", "active", "lifted", "ended"]))
    if state == "lifted":
        hold["lifted_at"] = NOW - timedelta(seconds=draw(st.integers(0, 1)))
    elif state == "ended":
        hold["ends_at"] = max(NOW + timedelta(seconds=draw(st.integers(-1, 1))), hold["set_at"] + timedelta(seconds=1))
    candidates = [(t, row[key]) for t, (attr, key) in TABLE_KEYS.items() for row in getattr(shop, attr)]
    scope = draw(st.sampled_from(["rule", "record", "person"] if candidates else ["rule", "person"]))
    hold["scope"] = scope
    if scope == "rule":
        hold["rule_id"] = draw(st.sampled_from([r.id for r in POLICY.rules]))
    elif scope == "record":
        table, key = draw(st.sampled_from(candidates))
        hold["table_name"], hold["record_key"] = table, str(key)
    else:
        if shop.accounts and draw(st.booleans()):
            hold["account_id"] = draw(st.sampled_from([a["account_id"] for a in shop.accounts]))
        else:
            hold["email_sha256"] = email_pseudonym(draw(st.sampled_from(EMAILS)))
    return hold


# --- the properties ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shop_conn(db_url):
    from governance.db import connect

    conn = connect(db_url)
    yield conn
    conn.close()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(shop=shops())
def test_audit_sql_agrees_with_the_reference(shop_conn, shop):
    empty_shop(shop_conn)
    insert_snapshot(shop_conn, shop)
    expected = reference.overdue(shop, POLICY, NOW)
    for rule_id, records in expected.items():
        event(f"{rule_id}: {'some' if records else 'none'} overdue")
        if 0 in records.values():
            event("a record exactly at its boundary")
    if len(expected["order-records"]) < len([o for o in shop.orders if not o["anonymised_at"]]):
        event("order-records: some kept")
    if any(h for h in shop.legal_holds):
        event("with legal holds")
    overdue, held = audit_sql_past(shop_conn, NOW)
    assert overdue == expected
    # RET-8: the held flag marks exactly the records past their window that a hold keeps.
    past = reference.overdue(Snapshot(**{**shop.__dict__, "legal_holds": []}), POLICY, NOW)
    assert held == {
        rule_id: {k: v for k, v in records.items() if k not in expected[rule_id]} for rule_id, records in past.items()
    }
    if any(held.values()):
        event("some records held")


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(shop=shops(), shift=st.sampled_from([timedelta(0), timedelta(seconds=-1), timedelta(seconds=1)]))
def test_gx_counts_agree_with_the_reference(shop_conn, db_url, s3, shop, shift):
    """Through GX: per-rule counts and oldest ages; object store: one object per upload row."""
    from governance.objectstore import ensure_bucket

    now = NOW + shift
    empty_shop(shop_conn)
    insert_snapshot(shop_conn, shop)
    for bucket in ("shop-uploads", EXPORTS_BUCKET):
        ensure_bucket(s3, bucket)
        for key in [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]:
            s3.delete_object(Bucket=bucket, Key=key)
    for upload in shop.uploads:
        s3.put_object(Bucket="shop-uploads", Key=f"uploads/{upload['upload_id']}.jpg", Body=b"x")
    for export in shop.request_exports:
        s3.put_object(Bucket=EXPORTS_BUCKET, Key=f"exports/{export['export_id']}.zip", Body=b"PK")

    report = run_audit(shop_conn, s3, POLICY, now, f"prop-{uuid.uuid4().hex[:8]}", db_url=db_url, record=False)
    expected = reference.overdue(shop, POLICY, now)
    unheld = reference.overdue(Snapshot(**{**shop.__dict__, "legal_holds": []}), POLICY, now)
    for rule in POLICY.rules:
        result = report.rule(rule.id)
        assert result.overdue == len(expected[rule.id]), rule.id
        assert result.oldest_overdue_seconds == (max(expected[rule.id].values()) if expected[rule.id] else None)
        assert result.held == len(unheld[rule.id]) - len(expected[rule.id]), rule.id
    overdue_uploads: dict[int, int] = defaultdict(int)
    for rule_id in UPLOAD_RULES:
        overdue_uploads.update(expected[rule_id])
    objects = report.rule("uploads-object-store")
    assert objects.overdue == len(overdue_uploads)
    assert objects.oldest_overdue_seconds == (max(overdue_uploads.values()) if overdue_uploads else None)
    exports = report.rule("request-exports-object-store")  # RET-9: each overdue archive's object
    assert exports.overdue == len(expected["request-exports"])
    assert exports.held == len(unheld["request-exports"]) - len(expected["request-exports"])
