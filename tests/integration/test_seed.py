"""The synthetic shop loaded into a real PostgreSQL with its objects in a real S3 endpoint (moto server).

The key cross-check: on seeded data, the audit's SQL predicates (include/sql/audit/*.sql) return
exactly the records — and the seconds overdue — that the plain-Python reference
(governance_dev.reference) computes from the generated rows. Two independent implementations of
RET-1..RET-6, RET-8 and RET-10 that must agree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from governance.db import connect
from governance.objectstore import ensure_bucket, iter_keys, make_client
from governance.policy import SQL_DIR, load_policy
from governance.settings import resolve
from governance_dev import reference
from governance_dev.generator import LEAP_DAY_CLOCK
from governance_dev.guard import SeedRefused
from governance_dev.loader import personal_values, seed
from governance_dev.tables import COLUMNS

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
POLICY = load_policy()
BUCKET = POLICY.object_store.uploads_bucket
CUSTOMERS = 300
FAR = timedelta(days=365 * 200)

# Every foreign key of the shop as (child table, column, parent table, parent column).
FOREIGN_KEYS = [
    ("shop.calendar_events", "account_id", "shop.accounts", "account_id"),
    ("shop.orders", "account_id", "shop.accounts", "account_id"),
    ("shop.order_lines", "order_id", "shop.orders", "order_id"),
    ("shop.newsletter_subscriptions", "account_id", "shop.accounts", "account_id"),
    ("shop.newsletter_events", "subscription_id", "shop.newsletter_subscriptions", "subscription_id"),
    ("shop.uploads", "account_id", "shop.accounts", "account_id"),
    ("shop.saved_products", "account_id", "shop.accounts", "account_id"),
    ("shop.saved_product_uploads", "saved_product_id", "shop.saved_products", "saved_product_id"),
    ("shop.saved_product_uploads", "upload_id", "shop.uploads", "upload_id"),
    ("shop.order_line_uploads", "order_line_id", "shop.order_lines", "order_line_id"),
    ("shop.order_line_uploads", "upload_id", "shop.uploads", "upload_id"),
    ("shop.cookie_preferences", "account_id", "shop.accounts", "account_id"),
]


def audit_params(now: datetime) -> dict:
    params = {"now": now}
    for rule in POLICY.rules:
        params["window__" + rule.id.replace("-", "_")] = POLICY.window(rule).iso
    return params


def audit_sql(conn, now: datetime) -> dict[str, dict[int, int]]:
    """rule id -> {record id: overdue seconds} from the audit's own SQL files."""
    found: dict[str, dict[int, int]] = {rule.id: {} for rule in POLICY.rules}
    with conn.cursor() as cur:
        for path in sorted({rule.audit for rule in POLICY.rules}):
            cur.execute((SQL_DIR / path).read_text(), audit_params(now))
            for rule_id, record_id, seconds, held in cur.fetchall():
                assert record_id not in found[rule_id], f"{path} returns {rule_id} record {record_id} twice"
                if not held:  # held records (RET-8) are flagged, not left out (include/sql/audit/README.md)
                    found[rule_id][record_id] = seconds
    conn.rollback()
    return found


def bucket_objects(s3) -> dict[str, int]:
    sizes = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for item in page.get("Contents", []):
            sizes[item["Key"]] = item["Size"]
    return sizes


def upload_rows(conn) -> dict[str, int]:
    with conn.cursor() as cur:
        cur.execute("SELECT object_key, byte_size FROM shop.uploads WHERE bucket = %s", (BUCKET,))
        rows = dict(cur.fetchall())
    conn.rollback()
    return rows


def checksums(conn) -> dict[str, str]:
    sums = {}
    with conn.cursor() as cur:
        for table in [*COLUMNS, "governance.legal_holds"]:
            cur.execute(f"SELECT md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM {table} t")
            sums[table] = cur.fetchone()[0]
    conn.rollback()
    return sums


def reset_s3(endpoint: str):
    requests.post(f"{endpoint}/moto-api/reset", timeout=10).raise_for_status()
    return make_client(resolve(None, endpoint))


@pytest.fixture(scope="module")
def seeded(make_database, s3_endpoint):
    """One seeded shop for the read-only checks; the bucket's listing is taken right after seeding."""
    url = make_database()
    s3 = reset_s3(s3_endpoint)
    conn = connect(url)
    report = seed(conn, s3, POLICY, NOW, customers=CUSTOMERS, seed=42)
    objects = bucket_objects(s3)
    conn.close()
    return {"url": url, "report": report, "objects": objects}


@pytest.fixture
def seeded_conn(seeded):
    connection = connect(seeded["url"])
    yield connection
    connection.rollback()
    connection.close()


def test_every_upload_row_has_its_object_and_nothing_else_is_in_the_bucket(seeded, seeded_conn):
    rows = upload_rows(seeded_conn)
    assert rows and rows == seeded["objects"]  # same keys, and byte_size is the object's size
    assert seeded["report"].objects == len(rows) == seeded["report"].rows["shop.uploads"]
    assert all(key.startswith("uploads/") and key.endswith((".jpg", ".txt")) for key in rows)


def test_audit_sql_returns_exactly_the_reference_records(seeded, seeded_conn):
    """The cross-check: two independent implementations of every rule agree record by record."""
    report = seeded["report"]
    expected = reference.overdue(report.snapshot, POLICY, NOW)
    actual = audit_sql(seeded_conn, NOW)
    for rule in POLICY.rules:
        assert actual[rule.id] == expected[rule.id], rule.id
    assert report.expected_overdue == {rule: len(records) for rule, records in expected.items()}
    assert report.expected_oldest_overdue_seconds == {r: max(v.values()) for r, v in expected.items()}


def test_every_rule_has_overdue_and_compliant_records_in_the_database(seeded, seeded_conn):
    overdue = audit_sql(seeded_conn, NOW)
    ever = audit_sql(seeded_conn, NOW + FAR)
    for rule in POLICY.rules:
        assert overdue[rule.id], f"{rule.id}: nothing overdue"
        assert set(ever[rule.id]) - set(overdue[rule.id]), f"{rule.id}: nothing compliant"
        assert {0, 1} <= set(overdue[rule.id].values()), f"{rule.id}: boundary cases missing (RET-10)"


def test_foreign_keys_hold_and_sequences_continue_after_the_ids(seeded_conn):
    with seeded_conn.cursor() as cur:
        for child, column, parent, key in FOREIGN_KEYS:
            cur.execute(
                f"SELECT count(*) FROM {child} c WHERE c.{column} IS NOT NULL "
                f"AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE p.{key} = c.{column})"
            )
            assert cur.fetchone()[0] == 0, f"{child}.{column} points at missing {parent} rows"
        cur.execute(
            "INSERT INTO shop.accounts (email, password_hash, created_at) VALUES ('x@example.com', 'x', now()) "
            "RETURNING account_id"
        )
        new_id = cur.fetchone()[0]
        cur.execute("SELECT max(account_id) FROM shop.accounts WHERE account_id <> %s", (new_id,))
        assert new_id > cur.fetchone()[0]
        cur.execute(
            "INSERT INTO shop.visits (session_key, ip_address, started_at, last_activity_at) "
            "VALUES (gen_random_uuid(), '100.64.0.1', %s, %s) RETURNING visit_id",
            (NOW, NOW),
        )
        visit_id = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM shop.visits WHERE visit_id = %s", (visit_id,))
        assert cur.fetchone()[0] == 1
    seeded_conn.rollback()


def test_visits_are_in_hourly_partitions_and_at_most_72_hours_old(seeded_conn):
    with seeded_conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM shop.visits_default")
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT min(last_activity_at), max(last_activity_at), count(DISTINCT tableoid) FROM shop.visits")
        oldest, newest, partitions = cur.fetchone()
    assert NOW - timedelta(hours=72) <= oldest and newest <= NOW and partitions > 24


def test_legal_holds_are_seeded_and_nothing_is_evidenced(seeded, seeded_conn):
    with seeded_conn.cursor() as cur:
        cur.execute("SELECT scope, account_id, email_sha256, reason, set_by FROM governance.legal_holds")
        holds = cur.fetchall()
        cur.execute("SELECT count(*) FROM governance.evidence")
        assert cur.fetchone()[0] == 0
    assert {scope for scope, *_ in holds} == {"record", "person"}
    assert any(account for _, account, *_ in holds) and any(sha for _, _, sha, *_ in holds)
    assert all(reason.strip() and set_by == "seed" for *_, reason, set_by in holds)
    snapshot_holds = seeded["report"].snapshot.legal_holds
    assert len(snapshot_holds) == len(holds)


def test_personal_values_are_what_the_shop_holds(seeded, seeded_conn):
    values = personal_values(seeded_conn)
    with seeded_conn.cursor() as cur:
        cur.execute("SELECT email, first_name, last_name FROM shop.accounts ORDER BY account_id LIMIT 1")
        email, first, last = cur.fetchone()
        cur.execute("SELECT phone, delivery_street FROM shop.orders WHERE phone IS NOT NULL LIMIT 1")
        phone, street = cur.fetchone()
        cur.execute("SELECT host(ip_address) FROM shop.visits LIMIT 1")
        (ip,) = cur.fetchone()
    assert {email, first, last, phone, street, ip} <= values
    assert min(len(v) for v in values) >= 4
    assert "NOK" not in values and "shop-uploads" not in values


def test_same_seed_gives_identical_databases_and_objects(make_database, s3):
    first, second = connect(make_database()), connect(make_database())
    try:
        seed(first, s3, POLICY, NOW, customers=200, seed=7, max_objects=60)
        objects_first = {k: o["ETag"] for k, o in _listing(s3).items()}
        seed(second, s3, POLICY, NOW, customers=200, seed=7, max_objects=60)
        objects_second = {k: o["ETag"] for k, o in _listing(s3).items()}
        assert checksums(first) == checksums(second)
        assert objects_first == objects_second and len(objects_first) == 60
        seed(second, s3, POLICY, NOW, customers=200, seed=8, max_objects=60)
        different = checksums(second)
        assert different["shop.accounts"] != checksums(first)["shop.accounts"]
    finally:
        first.close()
        second.close()


def _listing(s3) -> dict[str, dict]:
    return {
        item["Key"]: item
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        for item in page.get("Contents", [])
    }


def test_max_objects_caps_rows_and_objects_and_orphans_have_no_row(conn, s3):
    report = seed(conn, s3, POLICY, NOW, customers=300, max_objects=25, orphan_objects=3)
    rows = upload_rows(conn)
    objects = set(iter_keys(s3, BUCKET, "uploads/"))
    assert len(rows) == report.rows["shop.uploads"] == 25
    assert set(rows) < objects and len(objects - set(rows)) == 3
    assert report.objects == 28 and report.orphan_objects == 3
    # a reseed replaces everything: old objects go, evidence is left alone
    with conn.cursor() as cur:
        cur.execute("SELECT governance.append_evidence('test', 'seed-test', '', '', '{}', now(), 'v', '{}', '{}')")
    conn.commit()
    report = seed(conn, s3, POLICY, NOW, customers=150, max_objects=10)
    assert set(upload_rows(conn)) == set(iter_keys(s3, BUCKET, "uploads/")) and report.objects == 10
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM governance.evidence WHERE run_id = 'seed-test'")
        assert cur.fetchone()[0] == 1
    conn.rollback()


def test_without_objects_no_uploads_and_no_s3(conn):
    report = seed(conn, None, POLICY, NOW, customers=150, objects=False, holds=False)
    assert report.objects == 0 and report.rows["shop.uploads"] == 0
    assert report.rows["governance.legal_holds"] == 0 and report.rows["shop.accounts"] > 0
    for rule in ("ordered-uploads", "saved-uploads", "guest-uploads", "unsaved-account-uploads"):
        assert report.expected_overdue[rule] == 0
    assert audit_sql(conn, NOW) == reference.overdue(report.snapshot, POLICY, NOW)


def test_audit_sql_and_reference_agree_on_the_day_after_a_leap_year_boundary(conn, s3):
    """RET-10: at 2026-02-28T12:00Z a clock of 2024-02-29T12:00Z is exactly two years old: expired."""
    now = datetime(2026, 2, 28, 12, 0, tzinfo=UTC)
    report = seed(conn, s3, POLICY, now, customers=150, max_objects=120, seed=3)
    actual = audit_sql(conn, now)
    assert actual == reference.overdue(report.snapshot, POLICY, now)
    with conn.cursor() as cur:
        cur.execute("SELECT account_id FROM shop.accounts WHERE deleted_at = %s", (LEAP_DAY_CLOCK,))
        leap_accounts = [a for (a,) in cur.fetchall()]
    conn.rollback()
    assert leap_accounts and all(actual["deleted-accounts"][a] == 0 for a in leap_accounts)
    assert not set(leap_accounts) & set(audit_sql(conn, now - timedelta(seconds=1))["deleted-accounts"])


def test_cli_seeds_end_to_end_and_prints_no_personal_data(db_url, s3_url):
    governance = Path(sys.executable).parent / "governance"
    env = {**os.environ, "GOVERNANCE_DB_URL": db_url}
    result = subprocess.run(
        [
            str(governance),
            "seed",
            "--customers",
            "150",
            "--seed",
            "5",
            "--max-objects",
            "30",
            "--orphan-objects",
            "2",
            "--s3-endpoint-url",
            s3_url,
            "--now",
            "2026-11-25T12:00:00Z",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "shop.accounts" in result.stdout and "seeded in" in result.stdout
    conn = connect(db_url)
    try:
        assert len(upload_rows(conn)) == 30
        values = personal_values(conn)
    finally:
        conn.close()
    s3 = make_client(resolve(None, s3_url))
    assert len(set(iter_keys(s3, BUCKET, "uploads/"))) == 32
    leaked = [v for v in values if v in result.stdout or v in result.stderr]
    assert not leaked, f"{len(leaked)} personal values printed"

    as_json = subprocess.run(
        [
            str(governance),
            "seed",
            "--customers",
            "120",
            "--no-objects",
            "--no-holds",
            "--json",
            "--now",
            "2026-11-25T12:00:00Z",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert as_json.returncode == 0, as_json.stderr
    summary = json.loads(as_json.stdout)
    assert summary["rows"]["shop.uploads"] == 0 and summary["objects"] == 0 and summary["rows"]["shop.accounts"] > 0

    refused = subprocess.run(
        [str(governance), "seed", "--customers", "5"], capture_output=True, text=True, env=env, timeout=60
    )
    assert refused.returncode == 2 and "minimum" in refused.stderr


# --- the guard (issue #9): the seed empties only what it wrote, unless forced ---


def _foreign_row(url: str) -> None:
    """A row the seed did not write, in a database the seed has never seen."""
    conn = connect(url)
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO shop.cookie_preferences (visitor_key, analytics, marketing, given_at) "
            "VALUES ('00000000-0000-4000-8000-00000000f00d', true, false, %s)",
            (NOW,),
        )
    conn.commit()
    conn.close()


def _foreign_object(s3) -> str:
    ensure_bucket(s3, BUCKET)
    s3.put_object(Bucket=BUCKET, Key="uploads/a1/not-seeded.jpg", Body=b"someone's photo")
    return "uploads/a1/not-seeded.jpg"


def _marker(conn) -> int | None:
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('governance_seed.seeded') IS NOT NULL")
        if not cur.fetchone()[0]:
            conn.rollback()
            return None
        cur.execute("SELECT count(*) FROM governance_seed.seeded")
        count = cur.fetchone()[0]
    conn.rollback()
    return count


def test_seed_refuses_a_database_it_did_not_write_and_changes_nothing(make_database, s3):
    url = make_database()
    _foreign_row(url)
    key = _foreign_object(s3)
    conn = connect(url)
    try:
        before, objects_before = checksums(conn), _listing(s3)
        with pytest.raises(SeedRefused) as refused:
            seed(conn, s3, POLICY, NOW, customers=120, seed=1)
        message = str(refused.value)
        assert conn.info.dbname in message and "--force" in message and "shop.cookie_preferences" in message
        assert checksums(conn) == before and _marker(conn) is None
        assert _listing(s3).keys() == objects_before.keys() and key in objects_before
    finally:
        conn.close()


def test_seed_refuses_an_uploads_prefix_it_did_not_write_unless_forced(make_database, s3):
    conn = connect(make_database())
    key = _foreign_object(s3)
    try:
        empty = checksums(conn)
        with pytest.raises(SeedRefused) as refused:
            seed(conn, s3, POLICY, NOW, customers=120, seed=1, max_objects=10)
        assert f"s3://{BUCKET}/uploads/" in str(refused.value) and "--force" in str(refused.value)
        assert key in _listing(s3) and _marker(conn) is None
        assert checksums(conn) == empty

        report = seed(conn, s3, POLICY, NOW, customers=120, seed=1, max_objects=10, force=True)
        assert key not in _listing(s3) and set(upload_rows(conn)) == set(_listing(s3))
        assert report.objects == 10 and _marker(conn) == 1
    finally:
        conn.close()
    # the bucket is now the seed's: another (empty) database may be seeded into it without --force
    other = connect(make_database())
    try:
        seed(other, s3, POLICY, NOW, customers=120, seed=2, max_objects=5)
        assert set(upload_rows(other)) == set(_listing(s3))
    finally:
        other.close()


def test_seed_is_allowed_on_an_empty_database_and_again_on_its_own(make_database, s3):
    conn = connect(make_database())
    try:
        seed(conn, s3, POLICY, NOW, customers=120, seed=1, max_objects=10)
        assert _marker(conn) == 1
        # what happens to a seeded shop afterwards (a hold, a sweep) does not make it foreign
        with conn.cursor() as cur:
            cur.execute("DELETE FROM shop.visits WHERE visit_id IN (SELECT min(visit_id) FROM shop.visits)")
            cur.execute(
                "INSERT INTO governance.legal_holds (scope, rule_id, reason, set_by, set_at) "
                "VALUES ('rule', 'visit-data', 'test', 'test', %s)",
                (NOW,),
            )
        conn.commit()
        report = seed(conn, s3, POLICY, NOW, customers=130, seed=2, max_objects=12)
        assert _marker(conn) == 1 and report.objects == 12
        assert set(upload_rows(conn)) == set(_listing(s3))
    finally:
        conn.close()


def test_force_replaces_data_the_seed_did_not_write(make_database, s3):
    url = make_database()
    _foreign_row(url)
    conn = connect(url)
    try:
        report = seed(conn, s3, POLICY, NOW, customers=120, seed=1, max_objects=10, force=True)
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(*), count(*) FILTER (WHERE visitor_key = '00000000-0000-4000-8000-00000000f00d') FROM shop.cookie_preferences"
            )
            total, foreign = cur.fetchone()
        conn.rollback()
        assert foreign == 0 and total == report.rows["shop.cookie_preferences"] and _marker(conn) == 1
    finally:
        conn.close()


def test_cli_refuses_a_foreign_database_naming_it_without_its_password(make_database, s3_url):
    """The message names the database and --force; a password in the URL never prints (trust auth
    accepts any password, so the test server takes the URL with one)."""
    from psycopg2.extensions import make_dsn, parse_dsn

    url = make_database()
    _foreign_row(url)
    params = parse_dsn(url)
    password = "h4-guard-secret-pw"
    with_password = f"postgresql://{params.get('user', 'postgres')}:{password}@{params.get('host', '127.0.0.1')}:{params.get('port', '5432')}/{params['dbname']}"
    try:
        connect(with_password).close()
    except Exception:  # a server that checks passwords: use the URL as given
        with_password = make_dsn(url)
        password = None
    governance = Path(sys.executable).parent / "governance"
    argv = [str(governance), "seed", "--customers", "120", "--max-objects", "5", "--now", "2026-11-25T12:00:00Z"]
    env = {**os.environ, "GOVERNANCE_DB_URL": with_password, "GOVERNANCE_S3_ENDPOINT_URL": s3_url}
    refused = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    assert refused.returncode == 2, refused.stderr
    assert params["dbname"] in refused.stderr and "--force" in refused.stderr
    assert "Traceback" not in refused.stderr
    if password:
        assert password not in refused.stdout + refused.stderr
    forced = subprocess.run([*argv, "--force"], capture_output=True, text=True, env=env, timeout=300)
    assert forced.returncode == 0, forced.stderr
    again = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stderr
