"""Every rule's boundary through the real sweep (PostgreSQL, moto S3 over HTTP).

RET-10: a record has expired when clock + window <= now: exactly at the boundary it goes, one second
later it stays. One hand-made shop holds both sides of every rule's boundary (and holds, RET-8);
one sweep of all rules runs, and each test checks one rule's records, its evidence and its side
effects (partitions, anonymised columns, objects).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests
from dateutil.relativedelta import relativedelta

from governance.db import connect
from governance.objectstore import ensure_bucket, make_client
from governance.policy import load_policy
from governance.settings import resolve
from governance.sweep import plan, sweep, sweep_rule
from governance_dev.reference import email_pseudonym
from tests.integration import sweep_support as s

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)
SECOND = timedelta(seconds=1)
TWO_YEARS = relativedelta(years=2)
RUN = "test-boundaries"
TABLES = [
    "shop.visits",
    "shop.accounts",
    "shop.calendar_events",
    "shop.saved_products",
    "shop.orders",
    "shop.contact_messages",
    "shop.newsletter_subscriptions",
    "shop.uploads",
    "shop.cookie_preferences",
]
RULE_TABLE = {
    "visit-data": "shop.visits",
    "deleted-accounts": "shop.accounts",
    "deleted-account-calendar-events": "shop.calendar_events",
    "deleted-account-saved-products": "shop.saved_products",
    "contact-messages": "shop.contact_messages",
    "newsletter-subscriptions": "shop.newsletter_subscriptions",
    "cookie-preferences": "shop.cookie_preferences",
}


def counts(cur) -> dict[str, int]:
    out = {}
    for table in TABLES:
        cur.execute(f"SELECT count(*) FROM {table}")
        out[table] = cur.fetchone()[0]
    return out


def partitions(cur) -> set[str]:
    cur.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'shop.visits'::regclass"
    )
    return {r[0] for r in cur.fetchall()}


def hour_name(moment: datetime) -> str:
    return "visits_p" + moment.strftime("%Y%m%d%H")


@pytest.fixture(scope="module")
def swept(db_url, s3_endpoint):
    """Build the shop, plan, sweep all rules once; returns ids, before/after counts and the results."""
    requests.post(f"{s3_endpoint}/moto-api/reset", timeout=10).raise_for_status()
    s3 = make_client(resolve(None, s3_endpoint))
    ensure_bucket(s3, s.BUCKET)
    policy = load_policy()
    conn = connect(db_url)
    s.empty_shop(conn)
    ids: dict[str, int] = {}
    with conn.cursor() as cur:
        cur.execute(
            "SELECT governance.ensure_hourly_partitions('shop.visits', %s, %s)",
            (NOW - timedelta(hours=48), NOW + timedelta(hours=1)),
        )
        # RET-1 visits
        ids["v_boundary"] = s.visit(cur, NOW - timedelta(hours=24))
        ids["v_kept"] = s.visit(cur, NOW - timedelta(hours=24) + SECOND)
        ids["v_old"] = s.visit(cur, NOW - timedelta(hours=40))
        ids["v_default"] = s.visit(cur, NOW - timedelta(hours=200))  # no partition for it: the default one
        ids["v_recent"] = s.visit(cur, NOW - timedelta(hours=1))
        ids["v_held"] = s.visit(cur, NOW - timedelta(hours=30, minutes=30))
        ids["v_same_hour_as_held"] = s.visit(cur, NOW - timedelta(hours=30, minutes=10))
        s.hold(cur, "record", NOW - timedelta(days=1), table_name="shop.visits", record_key=str(ids["v_held"]))
        # RET-2 deleted accounts and what hangs on them
        for name, deleted in (
            ("a_due", NOW - TWO_YEARS),
            ("a_kept", NOW - TWO_YEARS + SECOND),
            ("a_held", NOW - relativedelta(years=3)),
        ):
            ids[name] = s.account(cur, NOW - relativedelta(years=5), deleted)
            ids[f"e_{name}"] = s.calendar_event(cur, ids[name], NOW - relativedelta(years=4))
            ids[f"p_{name}"] = s.saved_product(cur, ids[name], NOW - relativedelta(years=4))
        s.hold(cur, "person", NOW - timedelta(days=10), account_id=ids["a_held"])
        # RET-3 orders, per customer: the last order keeps them all; RET-8 anonymise
        ids["acc_a"] = s.account(cur, NOW - relativedelta(years=6))
        ids["o_a_old"] = s.order(cur, NOW - relativedelta(years=3), ids["acc_a"])
        ids["o_a_last"] = s.order(cur, NOW - TWO_YEARS, ids["acc_a"])
        ids["acc_b"] = s.account(cur, NOW - relativedelta(years=6))
        ids["o_b_old"] = s.order(cur, NOW - relativedelta(years=3), ids["acc_b"])
        ids["o_b_last"] = s.order(cur, NOW - TWO_YEARS + SECOND, ids["acc_b"])
        ids["o_g_old"] = s.order(cur, NOW - relativedelta(years=3), email=" Gjest@Example.invalid")
        ids["o_g_last"] = s.order(cur, NOW - TWO_YEARS, email="gjest@example.invalid")
        ids["o_h"] = s.order(cur, NOW - TWO_YEARS + SECOND, email="annen@example.invalid")
        ids["o_k"] = s.order(cur, NOW - relativedelta(years=3), email="holdt@example.invalid")
        s.hold(cur, "person", NOW - timedelta(days=10), email_sha256=email_pseudonym("HOLDT@example.invalid "))
        # RET-4 communication: the last one counts; bulk sends do not renew, opens do
        ids["m_p1"] = s.message(cur, "p1@example.invalid", NOW - TWO_YEARS)
        ids["n_p1"] = s.subscription(
            cur, "P1@example.invalid", NOW - relativedelta(years=3), NOW - relativedelta(years=3)
        )
        s.newsletter_event(cur, ids["n_p1"], "send", NOW - timedelta(days=1))
        ids["m_p2"] = s.message(cur, "p2@example.invalid", NOW - relativedelta(years=3))
        ids["n_p2"] = s.subscription(cur, "p2@example.invalid", NOW - relativedelta(years=3))
        s.newsletter_event(cur, ids["n_p2"], "open", NOW - TWO_YEARS + SECOND)
        # RET-5a..d uploads: the latest expiry among the rules that apply wins
        ids["u_guest_due"] = s.upload(cur, NOW - timedelta(days=90), None, s3)
        ids["u_guest_kept"] = s.upload(cur, NOW - timedelta(days=90) + SECOND, None, s3)
        ids["acc_c"] = s.account(cur, NOW - relativedelta(years=1))
        ids["u_ordered_due"] = s.upload(cur, NOW - timedelta(days=200), ids["acc_c"], s3)
        ids["u_ordered_kept"] = s.upload(cur, NOW - timedelta(days=200), ids["acc_c"], s3)
        s.order(cur, NOW - timedelta(days=60), ids["acc_c"], upload_ids=(ids["u_ordered_due"],))
        s.order(cur, NOW - timedelta(days=60) + SECOND, ids["acc_c"], upload_ids=(ids["u_ordered_kept"],))
        ids["acc_d"] = s.account(cur, NOW - relativedelta(years=3))
        ids["u_saved_due"] = s.upload(cur, NOW - TWO_YEARS, ids["acc_d"], s3)
        s.link_saved(cur, s.saved_product(cur, ids["acc_d"], NOW - TWO_YEARS), ids["u_saved_due"])
        ids["u_unsaved_due"] = s.upload(cur, NOW - timedelta(days=90), ids["acc_d"], s3)
        ids["u_unsaved_kept"] = s.upload(cur, NOW - timedelta(days=90) + SECOND, ids["acc_d"], s3)
        ids["acc_e"] = s.account(cur, NOW - relativedelta(years=4))
        ids["u_saved_kept"] = s.upload(cur, NOW - relativedelta(years=3), ids["acc_e"], s3)
        s.link_saved(cur, s.saved_product(cur, ids["acc_e"], NOW - relativedelta(years=3)), ids["u_saved_kept"])
        s.order(cur, NOW - TWO_YEARS + SECOND, ids["acc_e"])  # renews the saved product's 2 years (RET-5b)
        ids["u_held"] = s.upload(cur, NOW - timedelta(days=400), None, s3)
        s.hold(cur, "record", NOW - timedelta(days=1), table_name="shop.uploads", record_key=str(ids["u_held"]))
        # RET-6 cookie preferences (decision: 12 months)
        ids["c_due"] = s.cookie(cur, NOW - relativedelta(months=12))
        ids["c_kept"] = s.cookie(cur, NOW - relativedelta(months=12) + SECOND)
        ids["c_future_hold"] = s.cookie(cur, NOW - relativedelta(months=13))
        s.hold(
            cur, "record", FAR_FUTURE, table_name="shop.cookie_preferences", record_key=str(ids["c_future_hold"])
        )  # in force neither at now nor when the sweep runs
        ids["c_hold_since_now"] = s.cookie(cur, NOW - relativedelta(months=13))
        s.hold(
            cur,
            "record",
            NOW + timedelta(days=1),
            table_name="shop.cookie_preferences",
            record_key=str(ids["c_hold_since_now"]),
        )  # set after the run's now, in force as it executes
        cur.execute("SELECT order_id, total_amount, placed_at, currency FROM shop.orders ORDER BY 1")
        orders_before = cur.fetchall()
        cur.execute("SELECT order_id, product_type, quantity, unit_price FROM shop.order_lines ORDER BY 1")
        lines_before = cur.fetchall()
        before = counts(cur)
        parts_before = partitions(cur)
    conn.commit()
    plans = {p.rule: p for p in plan(conn, policy, NOW)}
    results = {r.rule: r for r in sweep(conn, s3, policy, NOW, RUN, batch_size=2)}
    with conn.cursor() as cur:
        after = counts(cur)
        parts_after = partitions(cur)
        totals = s.evidence_totals(cur, RUN)
        summaries = s.latest_summaries(cur, RUN)
    conn.commit()
    yield {
        "ids": ids,
        "before": before,
        "after": after,
        "plans": plans,
        "results": results,
        "totals": totals,
        "summaries": summaries,
        "conn": conn,
        "s3": s3,
        "policy": policy,
        "orders_before": orders_before,
        "lines_before": lines_before,
        "parts_before": parts_before,
        "parts_after": parts_after,
        "objects": s.object_keys(s3),
    }
    conn.close()


def alive(swept, table: str, key_column: str, name: str) -> bool:
    with swept["conn"].cursor() as cur:
        present = s.exists(cur, table, key_column, swept["ids"][name])
    swept["conn"].rollback()
    return present


def test_visits_boundary_partitions_and_holds(swept):
    """RET-1: 24 h after the last activity, at the boundary gone; whole expired hours dropped."""
    assert not alive(swept, "shop.visits", "visit_id", "v_boundary")
    assert alive(swept, "shop.visits", "visit_id", "v_kept")
    assert not alive(swept, "shop.visits", "visit_id", "v_old")
    assert not alive(swept, "shop.visits", "visit_id", "v_default")
    assert alive(swept, "shop.visits", "visit_id", "v_recent")
    # RET-8: the held visit stays; its partition is swept row-wise instead of dropped
    assert alive(swept, "shop.visits", "visit_id", "v_held")
    assert not alive(swept, "shop.visits", "visit_id", "v_same_hour_as_held")
    held_hour = hour_name(NOW - timedelta(hours=31))
    boundary_hour = hour_name(NOW - timedelta(hours=24))
    dropped = swept["parts_before"] - swept["parts_after"]
    assert dropped == {hour_name(NOW - timedelta(hours=h)) for h in range(25, 49)} - {held_hour}
    assert held_hour in swept["parts_after"] and boundary_hour in swept["parts_after"]
    with swept["conn"].cursor() as cur:  # really dropped, not detached
        cur.execute("SELECT count(*) FROM pg_class WHERE relname = ANY(%s)", (sorted(dropped),))
        assert cur.fetchone()[0] == 0
    swept["conn"].rollback()
    # created ahead: now-1h .. now+48h
    assert hour_name(NOW + timedelta(hours=47)) in swept["parts_after"]
    result = swept["results"]["visit-data"]
    assert result.partitions_dropped == len(dropped) and result.strategy == "partitions"
    assert set(swept["plans"]["visit-data"].partitions_to_drop) == {f"shop.{p}" for p in dropped}


def test_deleted_accounts_and_dependents_boundary(swept):
    """RET-2: 2 years after the deletion; dependents first, each counted under its own rule."""
    for name, gone in (("a_due", True), ("a_kept", False), ("a_held", False)):
        assert alive(swept, "shop.accounts", "account_id", name) is not gone
        assert alive(swept, "shop.calendar_events", "event_id", f"e_{name}") is not gone
        assert alive(swept, "shop.saved_products", "saved_product_id", f"p_{name}") is not gone
    totals = swept["totals"]
    assert totals["deleted-account-calendar-events"]["deleted"] == 1
    assert totals["deleted-account-saved-products"]["deleted"] == 1
    assert totals["deleted-accounts"]["deleted"] == 1
    assert swept["results"]["deleted-accounts"].held == 1


def test_orders_anonymised_per_customer_keeping_amounts_dates_lines(swept):
    """RET-3 per customer, RET-8: personal columns NULL/fixed; amounts, dates and lines stay."""
    conn = swept["conn"]
    with conn.cursor() as cur:
        cur.execute(
            "SELECT order_id, anonymised_at, email, first_name, last_name, phone, delivery_street, "
            "billing_city, card_last4, payment_reference, payment_method, account_id FROM shop.orders"
        )
        rows = {r[0]: r for r in cur.fetchall()}
        cur.execute("SELECT order_id, total_amount, placed_at, currency FROM shop.orders ORDER BY 1")
        assert cur.fetchall() == swept["orders_before"]
        cur.execute("SELECT order_id, product_type, quantity, unit_price FROM shop.order_lines ORDER BY 1")
        assert cur.fetchall() == swept["lines_before"]
    conn.rollback()
    ids = swept["ids"]
    for name in ("o_a_old", "o_a_last", "o_g_old", "o_g_last"):
        row = rows[ids[name]]
        assert row[1] == NOW, name
        assert row[2:10] == (None,) * 8, name
        assert row[10] == "anonymised" and row[11] is None, name
    for name in ("o_b_old", "o_b_last", "o_h", "o_k"):  # one recent order keeps the customer's; o_k is held
        assert rows[ids[name]][1] is None and rows[ids[name]][2] is not None, name
    assert swept["totals"]["order-records"] == {"anonymised": 4}


def test_anonymised_orders_are_never_selected_again(swept):
    conn, policy = swept["conn"], swept["policy"]
    assert plan(conn, policy, NOW, ["order-records"])[0].due == 0
    # years later only the orders not yet anonymised are due (the held one is held)
    later = plan(conn, policy, NOW + relativedelta(years=5), ["order-records"])[0]
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM shop.orders WHERE anonymised_at IS NULL")
        not_anonymised = cur.fetchone()[0]
    conn.rollback()
    assert later.due + later.held == not_anonymised and later.held == 1
    result = sweep_rule(conn, swept["s3"], policy, "order-records", NOW, "test-boundaries-again")
    assert result.anonymised == 0
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM shop.orders WHERE anonymised_at IS NOT NULL AND anonymised_at <> %s", (NOW,))
        assert cur.fetchone()[0] == 0
        cur.execute(
            "SELECT count(*) FROM governance.evidence WHERE run_id = 'test-boundaries-again' AND kind = 'sweep_batch'"
        )
        assert cur.fetchone()[0] == 0
    conn.rollback()


def test_communication_boundary(swept):
    """RET-4: 2 years after the last communication; a bulk send does not renew it, an open does."""
    assert not alive(swept, "shop.contact_messages", "message_id", "m_p1")
    assert not alive(swept, "shop.newsletter_subscriptions", "subscription_id", "n_p1")
    assert alive(swept, "shop.contact_messages", "message_id", "m_p2")
    assert alive(swept, "shop.newsletter_subscriptions", "subscription_id", "n_p2")


def test_uploads_boundary_rows_and_objects(swept):
    """RET-5a..d: the latest expiry of the rules that apply decides; row and object go together."""
    gone = ["u_guest_due", "u_ordered_due", "u_saved_due", "u_unsaved_due"]
    kept = ["u_guest_kept", "u_ordered_kept", "u_unsaved_kept", "u_saved_kept", "u_held"]
    for name in gone:
        assert not alive(swept, "shop.uploads", "upload_id", name), name
    for name in kept:
        assert alive(swept, "shop.uploads", "upload_id", name), name
    conn = swept["conn"]
    with conn.cursor() as cur:
        cur.execute("SELECT object_key FROM shop.uploads")
        keys = {r[0] for r in cur.fetchall()}
        cur.execute("SELECT count(*) FROM shop.uploads WHERE state <> 'stored'")
        assert cur.fetchone()[0] == 0
    conn.rollback()
    assert swept["objects"] == keys  # no orphan object, no row pointing at nothing
    totals = swept["totals"]
    # one each: u_ordered_due is governed by ordered-uploads (its latest expiry), not unsaved-account-uploads
    for rule in ("ordered-uploads", "saved-uploads", "guest-uploads", "unsaved-account-uploads"):
        expected = 1
        assert totals[rule]["deleted"] == expected, rule
        assert totals[rule]["objects_deleted"] == expected, rule
        assert totals[rule]["tombstoned"] == expected, rule


def test_cookie_boundary_and_holds_not_yet_in_force(swept):
    """RET-6 decision (12 months). A hold not yet in force does not protect; a hold placed after the
    run's "now" but in force when the sweep executes does (a rerun of an old run, RET-8)."""
    assert not alive(swept, "shop.cookie_preferences", "preference_id", "c_due")
    assert alive(swept, "shop.cookie_preferences", "preference_id", "c_kept")
    assert not alive(swept, "shop.cookie_preferences", "preference_id", "c_future_hold")
    assert alive(swept, "shop.cookie_preferences", "preference_id", "c_hold_since_now")


def test_evidence_counts_equal_rows_removed_and_plan_matched(swept):
    before, after, totals = swept["before"], swept["after"], swept["totals"]
    for rule, table in RULE_TABLE.items():
        assert totals.get(rule, {}).get("deleted", 0) == before[table] - after[table], rule
    uploads = sum(
        totals[r]["deleted"] for r in ("ordered-uploads", "saved-uploads", "guest-uploads", "unsaved-account-uploads")
    )
    assert uploads == before["shop.uploads"] - after["shop.uploads"]
    for rule, p in swept["plans"].items():
        result = swept["results"][rule]
        assert p.due == result.deleted + result.anonymised, rule
        assert p.held == result.held, rule
    # the per-rule summaries carry the same totals
    for rule, counted in totals.items():
        assert {k: v for k, v in swept["summaries"][rule].items() if k != "held"} == counted, rule


def test_rerun_of_the_same_run_changes_and_records_nothing(swept):
    conn, policy = swept["conn"], swept["policy"]
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM governance.evidence")
        entries = cur.fetchone()[0]
    conn.rollback()
    results = sweep(conn, swept["s3"], policy, NOW, RUN, batch_size=2)
    assert all(r.deleted == r.anonymised == r.partitions_dropped == 0 for r in results)
    with conn.cursor() as cur:
        assert counts(cur) == swept["after"]
        cur.execute("SELECT count(*) FROM governance.evidence")
        assert cur.fetchone()[0] == entries
        cur.execute("SELECT count(*) FROM governance.verify_evidence()")
        assert cur.fetchone()[0] == 0
    conn.rollback()


def test_evidence_holds_no_personal_data(swept):
    conn = swept["conn"]
    with conn.cursor() as cur:
        cur.execute(
            "SELECT string_agg(counts::text || details::text || step, ' ') FROM governance.evidence WHERE run_id = %s",
            (RUN,),
        )
        text = cur.fetchone()[0]
        cur.execute("SELECT object_key FROM shop.uploads")
        keys = [r[0] for r in cur.fetchall()]
    conn.rollback()
    for needle in ["@example.invalid", "Storgata", "Kari", "192.0.2.1", "uploads/", *keys]:
        assert needle not in text
    entry = swept["results"]["visit-data"]
    assert entry.max_batch_seconds > 0 and entry.batches > 0
