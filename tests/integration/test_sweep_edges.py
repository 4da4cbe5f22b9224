"""Edges of the sweep: calendar arithmetic on 29 February, dry runs, quoted identifiers, a policy
that does not match the database, holds on records a removal would cascade into, and versioned
buckets (every version and delete marker goes)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from dateutil.relativedelta import relativedelta

from governance.objectstore import ensure_bucket
from governance.policy import DEFAULT_POLICY_PATH, PolicyError, load_policy, parse_policy
from governance.sweep import plan, sweep, sweep_rule
from tests.integration import sweep_support as s

SECOND = timedelta(seconds=1)


@pytest.fixture
def shop(conn):
    s.empty_shop(conn)
    return conn


def evidence_entries(conn) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM governance.evidence")
        n = cur.fetchone()[0]
    conn.rollback()
    return n


def test_leap_day_clocks_expire_on_28_february(shop, s3):
    """RET-10: two years after 2024-02-29 is 2026-02-28 (and 12 months after 2025-02-28 too)."""
    now = datetime(2026, 2, 28, 12, 0, tzinfo=UTC)
    leap = datetime(2024, 2, 29, 12, 0, tzinfo=UTC)
    with shop.cursor() as cur:
        due = s.account(cur, leap - relativedelta(years=1), leap)
        kept = s.account(cur, leap - relativedelta(years=1), leap + SECOND)
        c_due = s.cookie(cur, datetime(2025, 2, 28, 12, 0, tzinfo=UTC))
        c_kept = s.cookie(cur, datetime(2025, 2, 28, 12, 0, 1, tzinfo=UTC))
    shop.commit()
    policy = load_policy()
    sweep(shop, s3, policy, now, "leap", ["deleted-accounts", "cookie-preferences"])
    with shop.cursor() as cur:
        assert not s.exists(cur, "shop.accounts", "account_id", due)
        assert s.exists(cur, "shop.accounts", "account_id", kept)
        assert not s.exists(cur, "shop.cookie_preferences", "preference_id", c_due)
        assert s.exists(cur, "shop.cookie_preferences", "preference_id", c_kept)
    shop.rollback()


def test_dry_run_and_plan_change_nothing(shop, s3):
    now = datetime(2026, 6, 1, tzinfo=UTC)
    ensure_bucket(s3, s.BUCKET)
    with shop.cursor() as cur:
        s.cookie(cur, now - relativedelta(years=2))
        s.upload(cur, now - timedelta(days=365), None, s3)
        s.visit(cur, now - timedelta(days=3))
    shop.commit()
    policy = load_policy()
    before = evidence_entries(shop)
    plans = {p.rule: p for p in plan(shop, policy, now)}
    assert plans["cookie-preferences"].due == 1 and plans["guest-uploads"].objects == 1
    assert plans["visit-data"].due == 1
    results = {r.rule: r for r in sweep(shop, s3, policy, now, "dry", dry_run=True)}
    assert results["cookie-preferences"].deleted == 1 and results["cookie-preferences"].dry_run
    assert results["guest-uploads"].objects_purged == 1
    with shop.cursor() as cur:
        cur.execute(
            "SELECT (SELECT count(*) FROM shop.cookie_preferences), (SELECT count(*) FROM shop.uploads), "
            "(SELECT count(*) FROM shop.visits), (SELECT count(*) FROM shop.uploads WHERE state = 'purging')"
        )
        assert cur.fetchone() == (1, 1, 1, 0)
    shop.rollback()
    assert evidence_entries(shop) == before
    assert len(s.object_keys(s3)) == 1


QUOTED_POLICY = """
policy: {name: quoting-test}
object_store: {uploads_bucket: shop-uploads}
categories:
  - id: CAT-1
    name: odd names
    legal_basis: test
    stores:
      - table: select.order
        key: group
        person: {account_id: user}
        personal_columns: [desc]
rules:
  - id: odd-rule
    requirements: [RET-1]
    category: CAT-1
    table: select.order
    clock: {column: at}
    window: P1D
    action: {type: delete}
    audit: audit/visit_data.sql
  - id: odd-anonymise
    requirements: [RET-8]
    category: CAT-1
    table: select.limit
    clock: {view: select.window_limit, sql: clocks/ret_3_orders.sql}
    window: P1D
    action: {type: anonymise, marker_column: end, columns: {desc: {strategy: fixed_value, value: "x'; DROP TABLE x; --"}}}
    audit: audit/visit_data.sql
"""


def test_identifiers_from_the_policy_are_quoted(shop, s3):
    """Names that are SQL keywords work, and values (even hostile ones) are parameters."""
    data = yaml.safe_load(QUOTED_POLICY)
    data["categories"][0]["stores"].append(
        {"table": "select.limit", "key": "group", "person": {"account_id": "user"}, "personal_columns": ["desc"]}
    )
    policy = parse_policy(data)
    now = datetime(2026, 1, 10, tzinfo=UTC)
    with shop.cursor() as cur:
        cur.execute('DROP SCHEMA IF EXISTS "select" CASCADE; CREATE SCHEMA "select"')
        for table in ("order", "limit"):
            cur.execute(
                f'CREATE TABLE "select"."{table}" ("group" bigserial PRIMARY KEY, "user" bigint, '
                f'"desc" text, "end" timestamptz, "at" timestamptz NOT NULL)'
            )
            cur.execute(
                f'INSERT INTO "select"."{table}" ("user", "desc", "at") VALUES (1, %s, %s), (2, %s, %s)',
                ("old", now - timedelta(days=1), "new", now - timedelta(days=1) + SECOND),
            )
        cur.execute(
            'CREATE VIEW "select"."window_limit" AS SELECT o."group" AS record_id, o."at" AS clock '
            'FROM "select"."limit" o WHERE o."end" IS NULL'
        )
        cur.execute("CREATE TABLE IF NOT EXISTS x (y int)")
    shop.commit()
    assert [p.due for p in plan(shop, policy, now)] == [1, 1]
    deleted = sweep_rule(shop, s3, policy, "odd-rule", now, "quoted")
    anonymised = sweep_rule(shop, s3, policy, "odd-anonymise", now, "quoted")
    assert (deleted.deleted, anonymised.anonymised) == (1, 1)
    with shop.cursor() as cur:
        cur.execute('SELECT "desc" FROM "select"."order"')
        assert cur.fetchall() == [("new",)]
        cur.execute('SELECT "desc", "end" IS NOT NULL FROM "select"."limit" ORDER BY "group"')
        assert cur.fetchall() == [("x'; DROP TABLE x; --", True), ("new", False)]
        cur.execute("SELECT to_regclass('public.x') IS NOT NULL")
        assert cur.fetchone()[0]
        cur.execute('DROP SCHEMA "select" CASCADE; DROP TABLE x')
    shop.commit()


def test_a_policy_naming_a_missing_table_fails_before_any_run(shop, s3):
    data = copy.deepcopy(yaml.safe_load(DEFAULT_POLICY_PATH.read_text()))
    for category in data["categories"]:
        for store in category["stores"]:
            if store["table"] == "shop.cookie_preferences":
                store["table"] = "shop.cookie_consents"
    for rule in data["rules"]:
        if rule["table"] == "shop.cookie_preferences":
            rule["table"] = "shop.cookie_consents"
    for switch in (w for p in data.get("purposes", []) for w in p.get("switch_off", [])):  # RES-1, OBJ-1
        if switch["table"] == "shop.cookie_preferences":
            switch["table"] = "shop.cookie_consents"
    policy = parse_policy(data, "broken.yaml")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with shop.cursor() as cur:
        visit_id = s.visit(cur, now - timedelta(days=5))  # due under visit-data, which is fine
    shop.commit()
    before = evidence_entries(shop)
    for call in (
        lambda: plan(shop, policy, now),
        lambda: sweep(shop, s3, policy, now, "broken"),
        lambda: sweep_rule(shop, s3, policy, "visit-data", now, "broken"),
    ):
        with pytest.raises(PolicyError) as error:
            call()
        assert "broken.yaml" in str(error.value) and "shop.cookie_consents" in str(error.value)
    with shop.cursor() as cur:
        assert s.exists(cur, "shop.visits", "visit_id", visit_id)
    shop.rollback()
    assert evidence_entries(shop) == before


def test_a_held_dependent_keeps_its_account(shop, s3):
    """Removing an account cascades to its calendar and saved products: a held one keeps the account
    (RET-8 wins), and a hold on a dependent rule keeps the accounts that still have such records."""
    now = datetime(2026, 6, 1, tzinfo=UTC)
    long_ago = now - relativedelta(years=3)
    with shop.cursor() as cur:
        held_event_owner = s.account(cur, long_ago - relativedelta(years=1), long_ago)
        held_event = s.calendar_event(cur, held_event_owner, long_ago)
        s.hold(cur, "record", now - timedelta(days=1), table_name="shop.calendar_events", record_key=str(held_event))
        free = s.account(cur, long_ago - relativedelta(years=1), long_ago)
        s.calendar_event(cur, free, long_ago)
        order_owner = s.account(cur, long_ago - relativedelta(years=1), long_ago)
        held_order = s.order(cur, now - timedelta(days=10), order_owner)  # SET NULL would rewrite it
        s.hold(cur, "record", now - timedelta(days=1), table_name="shop.orders", record_key=str(held_order))
    shop.commit()
    results = {r.rule: r for r in sweep(shop, s3, load_policy(), now, "held-dependents")}
    assert results["deleted-accounts"].deleted == 1 and results["deleted-accounts"].held == 2
    with shop.cursor() as cur:
        assert s.exists(cur, "shop.accounts", "account_id", held_event_owner)
        assert s.exists(cur, "shop.calendar_events", "event_id", held_event)
        assert not s.exists(cur, "shop.accounts", "account_id", free)
        assert s.exists(cur, "shop.accounts", "account_id", order_owner)
        cur.execute("SELECT account_id FROM shop.orders WHERE order_id = %s", (held_order,))
        assert cur.fetchone()[0] == order_owner
    shop.rollback()


def test_rule_hold_keeps_everything_the_rule_would_remove(shop, s3):
    now = datetime(2026, 6, 1, tzinfo=UTC)
    with shop.cursor() as cur:
        ids = [s.cookie(cur, now - relativedelta(years=2)) for _ in range(3)]
        s.hold(cur, "rule", now - timedelta(days=1), rule_id="cookie-preferences")
    shop.commit()
    p = plan(shop, load_policy(), now, ["cookie-preferences"])[0]
    assert (p.due, p.held) == (0, 3)
    result = sweep_rule(shop, s3, load_policy(), "cookie-preferences", now, "rule-hold")
    assert (result.deleted, result.held) == (0, 3)
    with shop.cursor() as cur:
        assert all(s.exists(cur, "shop.cookie_preferences", "preference_id", i) for i in ids)
    shop.rollback()


def test_versioned_bucket_loses_every_version_and_delete_marker(shop, s3):
    """CAT-5, RET-9: on a versioned bucket a plain delete leaves the bytes; every version must go."""
    now = datetime(2026, 6, 1, tzinfo=UTC)
    ensure_bucket(s3, s.BUCKET)
    s3.put_bucket_versioning(Bucket=s.BUCKET, VersioningConfiguration={"Status": "Enabled"})
    with shop.cursor() as cur:
        gone = s.upload(cur, now - timedelta(days=365), None, s3, key="uploads/a.jpg")
        kept = s.upload(cur, now - timedelta(days=1), None, s3, key="uploads/a.jpg.txt")  # shares the prefix
    shop.commit()
    s3.put_object(Bucket=s.BUCKET, Key="uploads/a.jpg", Body=b"v2")
    s3.delete_object(Bucket=s.BUCKET, Key="uploads/a.jpg")  # a delete marker on top of two versions
    s3.put_object(Bucket=s.BUCKET, Key="uploads/a.jpg", Body=b"v3")
    result = sweep_rule(shop, s3, load_policy(), "guest-uploads", now, "versions")
    assert result.deleted == 1 and result.objects_purged == 4  # three versions and one delete marker
    assert s.object_keys(s3) == {"uploads/a.jpg.txt"}
    with shop.cursor() as cur:
        assert not s.exists(cur, "shop.uploads", "upload_id", gone)
        assert s.exists(cur, "shop.uploads", "upload_id", kept)
    shop.rollback()
