"""Property: over random shops, holds and clocks near every boundary, the sweep removes exactly what
the plain-Python reference (governance_dev.reference, written from docs/requirements.md) says is overdue —
so a held record is never removed (RET-8) and nothing due survives (RET-1..RET-6, RET-10).

One documented difference: removing an account cascades to (or rewrites) rows of other tables, so
an account whose calendar event, saved product, order, upload, subscription or cookie preference is
held stays too; the reference looks at the account alone.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from dateutil.relativedelta import relativedelta
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from governance.db import connect
from governance.objectstore import ensure_bucket, make_client
from governance.policy import load_policy
from governance.settings import resolve
from governance.sweep import sweep
from governance_dev import reference
from tests.integration import sweep_support as s

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
# The sweep also honours holds in force when it executes (after NOW here): "later" holds protect.
EXECUTED_AT = datetime.now(UTC)
POLICY = load_policy()
EMAILS = ["ane@example.invalid", "bo@example.invalid", "cai@example.invalid"]
NEAR = [-400 * 86400, -86400, -1, 0, 1, 86400, 200 * 86400]  # seconds from the boundary


def near(window: relativedelta):
    """A clock at, just before, just after, or far from the moment it expires at NOW."""
    return st.sampled_from(NEAR).map(lambda d: NOW - window + timedelta(seconds=d))


def email_variant():
    return st.tuples(st.sampled_from(EMAILS), st.sampled_from(["", " ", "upper"])).map(
        lambda t: t[0].upper() if t[1] == "upper" else t[0] + t[1]
    )


P2Y, P60D, P90D, P12M, PT24H = (
    relativedelta(years=2),
    relativedelta(days=60),
    relativedelta(days=90),
    relativedelta(months=12),
    relativedelta(hours=24),
)
RUNS = itertools.count(1)
TABLES = {
    "shop.visits": "visit_id",
    "shop.accounts": "account_id",
    "shop.calendar_events": "event_id",
    "shop.saved_products": "saved_product_id",
    "shop.orders": "order_id",
    "shop.uploads": "upload_id",
    "shop.newsletter_subscriptions": "subscription_id",
    "shop.contact_messages": "message_id",
    "shop.cookie_preferences": "preference_id",
}


@dataclass
class Shop:
    rows: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {
            t: []
            for t in (
                "visits",
                "accounts",
                "calendar_events",
                "saved_products",
                "orders",
                "order_lines",
                "order_line_uploads",
                "saved_product_uploads",
                "uploads",
                "newsletter_subscriptions",
                "newsletter_events",
                "contact_messages",
                "cookie_preferences",
                "legal_holds",
            )
        }
    )


@st.composite
def shops(draw) -> Shop:
    shop = Shop()
    r = shop.rows
    for i in range(1, draw(st.integers(0, 3)) + 1):
        deleted = draw(st.none() | near(P2Y))
        created = (deleted or NOW) - relativedelta(years=3)
        r["accounts"].append(
            {"account_id": i, "email": draw(st.sampled_from(EMAILS)), "created_at": created, "deleted_at": deleted}
        )
    accounts = {a["account_id"]: a for a in r["accounts"]}

    def until(account_id, moment):  # nothing of an account happens after it was deleted
        deleted = accounts[account_id]["deleted_at"] if account_id else None
        return min(moment, deleted) if deleted else moment

    account_ids = st.sampled_from(sorted(accounts)) if accounts else st.none()
    maybe_account = st.none() | account_ids if accounts else st.none()
    for i in range(1, draw(st.integers(0, 3)) + 1):
        if accounts:
            r["calendar_events"].append({"event_id": i, "account_id": draw(account_ids)})
    for i in range(1, draw(st.integers(0, 2)) + 1):
        if accounts:
            a = draw(account_ids)
            r["saved_products"].append({"saved_product_id": i, "account_id": a, "saved_at": until(a, draw(near(P2Y)))})
    for i in range(1, draw(st.integers(0, 4)) + 1):
        u = draw(maybe_account)
        r["uploads"].append({"upload_id": i, "account_id": u, "uploaded_at": until(u, draw(near(P90D)))})
    for i in range(1, draw(st.integers(0, 5)) + 1):
        a = draw(maybe_account)
        placed = until(a, draw(near(P2Y) | near(P60D)))
        r["orders"].append(
            {"order_id": i, "account_id": a, "email": draw(email_variant()), "placed_at": placed, "anonymised_at": None}
        )
        r["order_lines"].append({"order_line_id": i, "order_id": i})
        for upload in r["uploads"]:
            if upload["account_id"] in (None, a) and upload["uploaded_at"] <= placed and draw(st.booleans()):
                r["order_line_uploads"].append({"order_line_id": i, "upload_id": upload["upload_id"]})
    for product in r["saved_products"]:
        for upload in r["uploads"]:
            if upload["account_id"] == product["account_id"] and draw(st.booleans()):
                r["saved_product_uploads"].append(
                    {"saved_product_id": product["saved_product_id"], "upload_id": upload["upload_id"]}
                )
    for i in range(1, draw(st.integers(0, 2)) + 1):
        at = draw(near(P2Y))
        r["newsletter_subscriptions"].append(
            {
                "subscription_id": i,
                "email": draw(email_variant()),
                "account_id": None,
                "subscribed_at": at,
                "confirmed_at": draw(st.none() | st.just(at)),
            }
        )
        for _ in range(draw(st.integers(0, 2))):
            r["newsletter_events"].append(
                {
                    "subscription_id": i,
                    "kind": draw(st.sampled_from(["send", "open", "click"])),
                    "occurred_at": draw(near(P2Y)),
                }
            )
    for i in range(1, draw(st.integers(0, 3)) + 1):
        r["contact_messages"].append({"message_id": i, "email": draw(email_variant()), "sent_at": draw(near(P2Y))})
    for i in range(1, draw(st.integers(0, 3)) + 1):
        a = draw(maybe_account)
        r["cookie_preferences"].append({"preference_id": i, "account_id": a, "given_at": until(a, draw(near(P12M)))})
    for i in range(1, draw(st.integers(0, 4)) + 1):
        r["visits"].append({"visit_id": i, "last_activity_at": draw(near(PT24H))})
    # legal holds: in force, not yet set, lifted or ended before now
    records = [(table, row[key]) for table, key in TABLES.items() for row in r[table.split(".")[1]]]
    for i in range(1, draw(st.integers(0, 4)) + 1):
        kind = draw(st.sampled_from(["record", "record", "account", "email", "rule"]))
        hold = {
            "hold_id": i,
            "scope": "person" if kind in ("account", "email") else kind,
            "rule_id": None,
            "table_name": None,
            "record_key": None,
            "account_id": None,
            "email_sha256": None,
        }
        if kind == "record":
            if not records:
                continue
            hold["table_name"], key = draw(st.sampled_from(records))
            hold["record_key"] = str(key)
        elif kind == "account":
            if not accounts:
                continue
            hold["account_id"] = draw(account_ids)
        elif kind == "email":
            hold["email_sha256"] = reference.email_pseudonym(draw(st.sampled_from(EMAILS)))
        else:
            hold["rule_id"] = draw(st.sampled_from([rule.id for rule in POLICY.rules]))
        timing = draw(st.sampled_from(["in force", "in force", "later", "lifted", "ended"]))
        hold["set_at"] = NOW + timedelta(days=1) if timing == "later" else NOW - timedelta(days=30)
        hold["lifted_at"] = NOW - timedelta(days=1) if timing == "lifted" else None
        hold["ends_at"] = NOW if timing == "ended" else None
        r["legal_holds"].append(hold)
    return shop


INSERT_ORDER = [
    "accounts",
    "calendar_events",
    "saved_products",
    "uploads",
    "orders",
    "order_lines",
    "order_line_uploads",
    "saved_product_uploads",
    "newsletter_subscriptions",
    "newsletter_events",
    "contact_messages",
    "cookie_preferences",
    "visits",
    "legal_holds",
]
FILLERS = {  # NOT NULL columns the rules do not look at
    "accounts": {"password_hash": "x"},
    "calendar_events": {"title": "t", "event_date": "2020-01-01", "created_at": NOW - relativedelta(years=9)},
    "saved_products": {"product_type": "book"},
    "order_lines": {"product_type": "print", "quantity": 1, "unit_price": 1},
    "orders": {"total_amount": 10},
    "contact_messages": {"direction": "inbound", "body": "b"},
    "uploads": {"kind": "photo", "bucket": s.BUCKET, "byte_size": 1},
    "cookie_preferences": {
        "visitor_key": "00000000-0000-0000-0000-000000000001",
        "analytics": True,
        "marketing": False,
    },
    "visits": {"session_key": "00000000-0000-0000-0000-000000000002", "ip_address": "192.0.2.7"},
    "legal_holds": {"reason": "test", "set_by": "test"},
}


def load(conn, shop: Shop) -> None:
    s.empty_shop(conn)
    with conn.cursor() as cur:
        for table in INSERT_ORDER:
            schema = "governance" if table == "legal_holds" else "shop"
            for row in shop.rows[table]:
                row = {**FILLERS.get(table, {}), **row}
                if table == "uploads":
                    row["object_key"] = f"uploads/{row['upload_id']}.jpg"
                if table == "visits":
                    row["started_at"] = row["last_activity_at"] - timedelta(minutes=1)
                columns = ", ".join(row)
                marks = ", ".join(["%s"] * len(row))
                cur.execute(f"INSERT INTO {schema}.{table} ({columns}) VALUES ({marks})", list(row.values()))
    conn.commit()


def ids(conn) -> dict[str, set[int]]:
    out = {}
    with conn.cursor() as cur:
        for table, key in TABLES.items():
            cur.execute(f"SELECT {key} FROM {table}")
            out[table] = {r[0] for r in cur.fetchall()}
        cur.execute("SELECT order_id FROM shop.orders WHERE anonymised_at IS NOT NULL")
        out["anonymised"] = {r[0] for r in cur.fetchall()}
    conn.rollback()
    return out


def accounts_with_held_dependents(shop: Shop, overdue: dict) -> set[int]:
    """Accounts whose removal would cascade into, or rewrite, a held record of another table, or a
    record of a held rule still there when the account goes (its own rules run first: ``overdue``)."""
    holds = reference.holds_in_force(shop.rows["legal_holds"], NOW, EXECUTED_AT)
    records = {(h["table_name"], h["record_key"]) for h in holds if h["scope"] == "record"}
    emails = {h["email_sha256"] for h in holds if h["scope"] == "person" and h["email_sha256"]}
    rules = {h["rule_id"] for h in holds if h["scope"] == "rule"}
    blocked = set()
    r = shop.rows
    # A held account's address holds the records naming it, whichever account placed them (the
    # sweep widens person holds once: governance.sweep.held._people).
    held_accounts = {h["account_id"] for h in holds if h["scope"] == "person" and h["account_id"] is not None}
    emails |= {reference.email_pseudonym(a["email"]) for a in r["accounts"] if a["account_id"] in held_accounts}
    for table, rows, key, rule in (
        ("shop.calendar_events", r["calendar_events"], "event_id", "deleted-account-calendar-events"),
        ("shop.saved_products", r["saved_products"], "saved_product_id", "deleted-account-saved-products"),
    ):
        for row in rows:  # cascade: a record hold or a hold on the child's own rule
            if (table, str(row[key])) in records or rule in rules:
                blocked.add(row["account_id"])
    for table, rows, key, child_rules in (
        ("shop.orders", r["orders"], "order_id", ("order-records",)),
        ("shop.uploads", r["uploads"], "upload_id", reference.UPLOAD_RULES),
        (
            "shop.newsletter_subscriptions",
            r["newsletter_subscriptions"],
            "subscription_id",
            ("newsletter-subscriptions",),
        ),
        ("shop.cookie_preferences", r["cookie_preferences"], "preference_id", ("cookie-preferences",)),
    ):
        gone = set().union(*(overdue[rule] for rule in child_rules if table != "shop.orders"))
        for row in rows:  # SET NULL: the held record, or a record of a held rule, would be rewritten
            held = (
                (table, str(row[key])) in records
                or (row[key] not in gone and bool(rules & set(child_rules)))
                or (row.get("email") and reference.email_pseudonym(row["email"]) in emails)
            )
            if held and row.get("account_id") is not None:
                blocked.add(row["account_id"])
    return blocked


@pytest.fixture(scope="module")
def services(db_url, s3_endpoint):
    requests.post(f"{s3_endpoint}/moto-api/reset", timeout=10).raise_for_status()
    client = make_client(resolve(None, s3_endpoint))
    ensure_bucket(client, s.BUCKET)  # objects themselves are not needed: a missing key counts as gone
    conn = connect(db_url)
    yield conn, client
    conn.close()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(shop=shops())
def test_sweep_removes_exactly_what_the_reference_says_and_never_a_held_record(services, shop):
    conn, s3 = services
    load(conn, shop)
    snapshot = reference.Snapshot(**{k: [dict(row) for row in v] for k, v in shop.rows.items()})
    overdue = reference.overdue(snapshot, POLICY, NOW, holds_also_at=EXECUTED_AT)
    before = ids(conn)
    sweep(conn, s3, POLICY, NOW, f"property-{next(RUNS)}")
    after = ids(conn)
    removed = {table: before[table] - after[table] for table in TABLES}

    blocked = accounts_with_held_dependents(shop, overdue)
    event(f"records removed: {'some' if any(removed.values()) else 'none'}")
    event(f"holds in force: {len(reference.holds_in_force(shop.rows['legal_holds'], NOW, EXECUTED_AT))}")
    event(f"accounts kept for a held dependent: {'yes' if blocked & set(overdue['deleted-accounts']) else 'no'}")
    assert removed["shop.accounts"] == set(overdue["deleted-accounts"]) - blocked
    assert removed["shop.calendar_events"] == set(overdue["deleted-account-calendar-events"])
    assert removed["shop.saved_products"] == set(overdue["deleted-account-saved-products"])
    assert removed["shop.visits"] == set(overdue["visit-data"])
    assert removed["shop.contact_messages"] == set(overdue["contact-messages"])
    assert removed["shop.newsletter_subscriptions"] == set(overdue["newsletter-subscriptions"])
    assert removed["shop.cookie_preferences"] == set(overdue["cookie-preferences"])
    assert removed["shop.uploads"] == set().union(*(overdue[r] for r in reference.UPLOAD_RULES))
    assert removed["shop.orders"] == set() and after["anonymised"] == set(overdue["order-records"])
    # RET-8 spelled out: every record a hold in force names is still there (and not anonymised)
    for hold in reference.holds_in_force(shop.rows["legal_holds"], NOW, EXECUTED_AT):
        if hold["scope"] == "record":
            assert int(hold["record_key"]) in after[hold["table_name"]], hold
            if hold["table_name"] == "shop.orders":
                assert int(hold["record_key"]) not in after["anonymised"], hold
