"""The retention audit end to end on a real PostgreSQL and a real S3 endpoint (moto server).

A hand-built shop with records exactly at, and a second either side of, every rule's boundary;
holds in and out of force; objects of overdue, fresh and missing upload rows. Checks GX's counts
and oldest ages against the reference, the object-store check, the evidence (one transaction,
idempotent per run, no personal data) and the failure message.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from dateutil.relativedelta import relativedelta

from governance import audit as audit_module
from governance.audit import (
    OBJECT_STORE_REQUIREMENTS,
    OBJECT_STORE_RULE,
    AuditFailed,
    AuditInconsistent,
    run_audit,
)
from governance.audit import listing as audit_listing
from governance.audit import predicates as audit_predicates
from governance.audit import run as audit_run
from governance.audit.report import LOCATION_RULE
from governance.audit.rights import load_checks
from governance.objectstore import ensure_bucket
from governance.policy import load_policy
from governance.settings import SettingsError
from governance_dev import reference
from governance_dev.reference import Snapshot, email_pseudonym
from tests.integration.test_audit_properties import audit_sql_overdue, empty_shop, insert_snapshot

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
S = timedelta(seconds=1)
DAY = timedelta(days=1)
P2Y = relativedelta(years=2)
POLICY = load_policy()
BUCKET = "shop-uploads"


def boundary_shop() -> Snapshot:
    """Every rule: one record exactly at the boundary, one a second before, one a second after."""
    two_years_ago = NOW - P2Y
    shop = Snapshot()
    shop.visits = [
        {"visit_id": i, "last_activity_at": NOW - timedelta(hours=24) + d} for i, d in ((1, 0 * S), (2, S), (3, -S))
    ]
    shop.accounts = [
        {"account_id": 1, "email": "deleted.at@example.com", "deleted_at": two_years_ago},
        {"account_id": 2, "email": "deleted.before@example.com", "deleted_at": two_years_ago + S},
        {"account_id": 3, "email": "Deleted.After@example.com", "deleted_at": two_years_ago - S},
        {"account_id": 4, "email": "active@example.com", "deleted_at": None},
        {"account_id": 5, "email": "held.person@example.com", "deleted_at": two_years_ago - DAY},
    ]
    shop.calendar_events = [{"event_id": 10 + a, "account_id": a} for a in (1, 2, 3, 4, 5)]
    shop.saved_products = [
        {"saved_product_id": 20 + a, "account_id": a, "saved_at": NOW - 4 * 365 * DAY} for a in (1, 2, 3)
    ]
    shop.orders = [
        {
            "order_id": 30,
            "account_id": 4,
            "email": "active@example.com",
            "placed_at": two_years_ago,
            "anonymised_at": None,
        },
        {
            "order_id": 31,
            "account_id": None,
            "email": "Guest@Example.com ",
            "placed_at": two_years_ago - S,
            "anonymised_at": None,
        },
        {
            "order_id": 32,
            "account_id": None,
            "email": " guest@example.com",
            "placed_at": two_years_ago - 100 * DAY,
            "anonymised_at": None,
        },
        {
            "order_id": 33,
            "account_id": None,
            "email": "kept@example.com",
            "placed_at": two_years_ago + S,
            "anonymised_at": None,
        },
        {
            "order_id": 34,
            "account_id": None,
            "email": "buyer@example.com",
            "placed_at": NOW - timedelta(days=60),
            "anonymised_at": None,
        },
    ]
    shop.order_lines = [
        {"order_line_id": 40, "order_id": 30},
        {"order_line_id": 41, "order_id": 33},
        {"order_line_id": 42, "order_id": 34},
    ]
    shop.uploads = [
        {"upload_id": 50, "account_id": None, "uploaded_at": NOW - timedelta(days=90)},  # guest, at
        {"upload_id": 51, "account_id": None, "uploaded_at": NOW - timedelta(days=90) + S},  # guest, before
        {"upload_id": 52, "account_id": 4, "uploaded_at": NOW - timedelta(days=90) - S},  # account unsaved
        {"upload_id": 53, "account_id": 4, "uploaded_at": NOW - 3 * 365 * DAY},  # ordered 60 d: wins
        {"upload_id": 54, "account_id": 5, "uploaded_at": NOW - 3 * 365 * DAY},  # held person
    ]
    shop.order_line_uploads = [{"order_line_id": 42, "upload_id": 53}]
    shop.newsletter_subscriptions = [
        {
            "subscription_id": 60,
            "account_id": None,
            "email": "reader@example.com",
            "subscribed_at": two_years_ago - S,
            "confirmed_at": None,
        },
        {
            "subscription_id": 61,
            "account_id": None,
            "email": "opener@example.com",
            "subscribed_at": NOW - 5 * 365 * DAY,
            "confirmed_at": None,
        },
    ]
    shop.newsletter_events = [
        {"subscription_id": 60, "kind": "send", "occurred_at": NOW - DAY},  # bulk send: does not renew
        {"subscription_id": 61, "kind": "open", "occurred_at": two_years_ago + S},
    ]
    shop.contact_messages = [
        {"message_id": 70, "email": "Reader@Example.com", "sent_at": two_years_ago - 3 * DAY},
        {"message_id": 71, "email": "writer@example.com", "sent_at": two_years_ago},
    ]
    shop.cookie_preferences = [
        {"preference_id": 80, "account_id": None, "given_at": NOW - relativedelta(months=12)},
        {"preference_id": 81, "account_id": None, "given_at": NOW - relativedelta(months=12) + S},
        {"preference_id": 82, "account_id": None, "given_at": NOW - relativedelta(months=12) - S},
    ]
    # RET-9: a request's answer address, 30 days after it closed; its export archive, 7 days after it was written
    shop.subject_requests = [
        {"request_id": 90, "state": "completed", "closed_at": NOW - 30 * DAY},  # at
        {"request_id": 91, "state": "refused", "closed_at": NOW - 30 * DAY + S},  # before
        {"request_id": 92, "state": "withdrawn", "closed_at": NOW - 30 * DAY - S},  # after
        {"request_id": 93, "state": "in_progress", "closed_at": None},  # open: no clock
        {"request_id": 94, "state": "completed", "closed_at": NOW - 60 * DAY},  # the held person's address
        {"request_id": 95, "state": "completed", "closed_at": NOW - DAY},
    ]
    shop.request_contacts = [
        {"request_id": 90, "reply_to": "svar.at@example.com"},
        {"request_id": 91, "reply_to": "svar.before@example.com"},
        {"request_id": 92, "reply_to": "Svar.After@example.com"},
        {"request_id": 93, "reply_to": "svar.open@example.com"},
        {"request_id": 94, "reply_to": " Held.Person@example.com"},
    ]
    shop.request_exports = [
        {"export_id": 100, "request_id": 90, "created_at": NOW - 7 * DAY},  # at
        {"export_id": 101, "request_id": 95, "created_at": NOW - 7 * DAY + S},  # before
        {"export_id": 102, "request_id": 92, "created_at": NOW - 7 * DAY - S},  # after
    ]
    shop.legal_holds = [
        {
            "scope": "record",
            "rule_id": None,
            "table_name": "shop.visits",
            "record_key": "3",
            "account_id": None,
            "email_sha256": None,
            "set_at": NOW - DAY,
            "ends_at": None,
            "lifted_at": None,
        },
        {
            "scope": "person",
            "rule_id": None,
            "table_name": None,
            "record_key": None,
            "account_id": 5,
            "email_sha256": None,
            "set_at": NOW - DAY,
            "ends_at": None,
            "lifted_at": None,
        },
        {
            "scope": "person",
            "rule_id": None,
            "table_name": None,
            "record_key": None,
            "account_id": None,
            "email_sha256": email_pseudonym("GUEST@example.com"),
            "set_at": NOW - DAY,
            "ends_at": None,
            "lifted_at": NOW - S,
        },  # lifted before now: not in force
        {
            "scope": "rule",
            "rule_id": "cookie-preferences",
            "table_name": None,
            "record_key": None,
            "account_id": None,
            "email_sha256": None,
            "set_at": NOW + S,
            "ends_at": None,
            "lifted_at": None,
        },  # later
    ]
    return shop


# The answer, written out by hand (record id -> seconds overdue).
EXPECTED = {
    "visit-data": {1: 0},  # 2: a second before; 3: held
    "deleted-account-calendar-events": {11: 0, 13: 1},  # 12: before; 14: active; 15: held
    "deleted-account-saved-products": {21: 0, 23: 1},
    "deleted-accounts": {1: 0, 3: 1},
    "order-records": {30: 0, 31: 1, 32: 1},  # one customer: 31 and 32 (case, spaces)
    "contact-messages": {70: 1, 71: 0},  # 70: last touch is the sign-up, 2y + 1 s ago
    "newsletter-subscriptions": {60: 1},
    "ordered-uploads": {53: 0},
    "saved-uploads": {},
    "guest-uploads": {50: 0},
    "unsaved-account-uploads": {52: 1},
    "cookie-preferences": {80: 0, 82: 1},
    "request-exports": {100: 0, 102: 1},
    "request-contacts": {90: 0, 92: 1},  # 91: a second before; 93: open; 94: held (account 5's address)
}
HELD = {
    "visit-data": 1,
    "deleted-account-calendar-events": 1,
    "deleted-accounts": 1,
    "unsaved-account-uploads": 1,
    "request-contacts": 1,
}
EXPORTS = POLICY.object_store.exports_bucket
EXPORTS_CHECK = "request-exports-object-store"
REPORTS_RULE = "compliance-reports-object-store"  # RET-9 (#13): the daily compliance reports' bucket


@pytest.fixture
def shop(conn, s3):
    """The boundary shop in the database, and one object per upload plus two orphans in the bucket."""
    snapshot = boundary_shop()
    empty_shop(conn)
    insert_snapshot(conn, snapshot)
    ensure_bucket(s3, BUCKET)
    for upload in snapshot.uploads:
        s3.put_object(Bucket=BUCKET, Key=f"uploads/{upload['upload_id']}.jpg", Body=b"jpeg")
    s3.put_object(Bucket=BUCKET, Key="uploads/orphan-1.jpg", Body=b"jpeg")
    s3.put_object(Bucket=BUCKET, Key="uploads/deep/orphan 2 (copy).jpg", Body=b"jpeg")
    s3.put_object(Bucket=BUCKET, Key="exports/not-an-upload.csv", Body=b"x")  # outside the prefix
    ensure_bucket(s3, EXPORTS)
    for export in snapshot.request_exports:
        s3.put_object(
            Bucket=EXPORTS, Key=f"exports/{export['export_id']}.zip", Body=b"PK", ServerSideEncryption="AES256"
        )
    s3.put_object(Bucket=EXPORTS, Key="exports/89/orphan.zip", Body=b"PK")  # its row is gone
    return snapshot


def test_the_hand_written_answer_is_the_reference(shop):
    assert {r: v for r, v in reference.overdue(shop, POLICY, NOW).items()} == EXPECTED


def test_audit_sql_agrees_at_every_boundary(conn, shop):
    assert audit_sql_overdue(conn, NOW) == EXPECTED
    assert audit_sql_overdue(conn, NOW - S)["visit-data"] == {}
    assert audit_sql_overdue(conn, NOW + S)["visit-data"] == {1: 1, 2: 0}


def test_gx_counts_oldest_held_and_the_object_store(conn, db_url, s3, shop):
    report = run_audit(conn, s3, POLICY, NOW, "audit-it-1", db_url=db_url)
    for rule in POLICY.rules:
        result = report.rule(rule.id)
        assert result.overdue == len(EXPECTED[rule.id]), rule.id
        assert result.oldest_overdue_seconds == (max(EXPECTED[rule.id].values()) if EXPECTED[rule.id] else None)
        assert result.held == HELD.get(rule.id, 0), rule.id
        assert result.gx_success is (not EXPECTED[rule.id])
        assert result.requirements == rule.requirements
    objects = report.rule(OBJECT_STORE_RULE)
    assert objects.requirements == OBJECT_STORE_REQUIREMENTS
    # 50, 52, 53 have overdue rows; 54's row is held; 51 is fresh; two objects have no row at all
    assert objects.overdue == 3 + 2
    assert objects.held == 1
    assert objects.details["orphans"] == 2 and objects.details["objects_listed"] == 7
    # RET-9: 100 and 102 have overdue rows, 101 is fresh, one archive has no row
    exports = report.rule(EXPORTS_CHECK)
    assert exports.requirements == ["CAT-7", "RET-9", "ACC-1", "POR-1"]
    assert (exports.overdue, exports.held, exports.details["orphans"]) == (2 + 1, 0, 1)
    assert exports.details["objects_listed"] == 4 and exports.details["buckets"] == [EXPORTS]
    assert report.overdue_total == sum(len(v) for v in EXPECTED.values()) + 5 + 3
    assert [r.rule for r in report.rules][-2:] == [OBJECT_STORE_RULE, EXPORTS_CHECK]

    with pytest.raises(AuditFailed) as excinfo:
        report.raise_if_overdue()
    message = str(excinfo.value)
    assert "order-records (RET-3, RET-8, RET-10, CAT-3): 3 records overdue, oldest by 1s" in message
    assert f"{OBJECT_STORE_RULE} (CAT-5, RET-5a, RET-5b, RET-5c, RET-5d, RET-9): 5 objects overdue" in message
    assert f"{EXPORTS_CHECK} (CAT-7, RET-9, ACC-1, POR-1): 3 objects overdue" in message
    assert "saved-uploads" not in message and "retention sweep" in message


def test_evidence_is_one_entry_per_rule_idempotent_and_free_of_personal_data(conn, db_url, s3, shop):
    run_audit(conn, s3, POLICY, NOW, "audit-it-evidence", db_url=db_url)
    run_audit(conn, s3, POLICY, NOW, "audit-it-evidence", db_url=db_url)  # rerun: nothing recorded twice
    with conn.cursor() as cur:
        cur.execute(
            "SELECT rule_id, overdue, oldest_overdue_seconds, held, check_kind, as_of, policy_version "
            "FROM governance.audit_history WHERE run_id = 'audit-it-evidence' ORDER BY rule_id"
        )
        history = {row[0]: row[1:] for row in cur.fetchall()}
        cur.execute(
            "SELECT kind, rule_id, counts, details, requirements::text FROM governance.evidence "
            "WHERE run_id = 'audit-it-evidence'"
        )
        entries = cur.fetchall()
        cur.execute("SELECT * FROM governance.verify_evidence()")
        assert cur.fetchall() == []
    conn.rollback()
    # the rules, two object stores, SEC-3's location, the reports bucket (RET-9, #13), the summary, and one per
    # rights check (ERA-1, TP-5, ...)
    assert len(entries) == len(POLICY.rules) + 5 + len(load_checks())
    assert {e[1] for e in entries if e[0] == "audit_rights"} == {c.id for c in load_checks()}
    assert set(history) == {r.id for r in POLICY.rules} | {
        OBJECT_STORE_RULE,
        EXPORTS_CHECK,
        LOCATION_RULE,
        REPORTS_RULE,
    }
    assert history[LOCATION_RULE][0] == 0 and history[LOCATION_RULE][3] == "location"
    assert history["order-records"] == (3, 1, 0, "gx_unexpected_rows", NOW, POLICY.version)
    assert history["saved-uploads"] == (0, None, 0, "gx_unexpected_rows", NOW, POLICY.version)
    assert history[OBJECT_STORE_RULE][0] == 5 and history[OBJECT_STORE_RULE][3] == "object_store"
    summary = [e for e in entries if e[0] == "audit"]
    assert len(summary) == 1 and summary[0][1] == ""
    assert summary[0][2] == {
        "overdue_total": sum(len(v) for v in EXPECTED.values()) + 5 + 3,
        "rules_over": len([r for r in EXPECTED if EXPECTED[r]]) + 2,
        "rights_findings_total": 0,
        "rights_failed": 0,
    }
    gx_details = [e[3] for e in entries if e[0] == "audit_rule" and e[1] == "visit-data"][0]
    assert gx_details == {"check": "gx_unexpected_rows", "gx_success": False}

    text = json.dumps([list(map(str, e)) for e in entries]).lower()
    personal = {a["email"].strip().lower() for a in shop.accounts} | {"guest@example.com", "reader@example.com"}
    personal |= {"orphan-1.jpg", "orphan 2 (copy)", "uploads/50.jpg", "exports/100.zip", "orphan.zip"}
    personal |= {c["reply_to"].strip().lower() for c in shop.request_contacts}
    assert not [p for p in personal if p in text]


def test_record_false_writes_nothing(conn, db_url, s3, shop):
    run_audit(conn, s3, POLICY, NOW, "audit-it-dry", db_url=db_url, record=False)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM governance.evidence WHERE run_id = 'audit-it-dry'")
        assert cur.fetchone()[0] == 0
    conn.rollback()


def test_a_clean_shop_passes(conn, db_url, s3):
    empty_shop(conn)
    ensure_bucket(s3, BUCKET)
    ensure_bucket(s3, EXPORTS)
    fresh = Snapshot(
        visits=[{"visit_id": 1, "last_activity_at": NOW - timedelta(hours=1)}],
        uploads=[{"upload_id": 1, "account_id": None, "uploaded_at": NOW - DAY}],
    )
    insert_snapshot(conn, fresh)
    s3.put_object(Bucket=BUCKET, Key="uploads/1.jpg", Body=b"jpeg")
    report = run_audit(conn, s3, POLICY, NOW, "audit-it-clean", db_url=db_url)
    assert report.overdue_total == 0
    assert all(r.overdue == 0 and r.oldest_overdue_seconds is None for r in report.rules)
    report.raise_if_overdue()
    assert "nothing is past its window" in report.format_table()


def test_gx_over_a_unix_socket(conn, db_url, s3, shop):
    """The GX data source also takes a socket host (a DSN, as Airflow's connection gives it)."""
    import os

    from psycopg2.extensions import make_dsn, parse_dsn

    params = parse_dsn(db_url)
    socket_dir = params.get("host") if str(params.get("host", "")).startswith("/") else "/var/run/postgresql"
    if not os.path.exists(os.path.join(socket_dir, f".s.PGSQL.{params.get('port', 5432)}")):
        pytest.skip(f"no PostgreSQL socket in {socket_dir}")
    socket_dsn = make_dsn(**{**params, "host": socket_dir})
    report = run_audit(conn, s3, POLICY, NOW, "audit-it-socket", db_url=socket_dsn, record=False)
    assert report.rule("order-records").overdue == 3


def test_a_missing_bucket_names_the_setting(conn, db_url, s3):
    empty_shop(conn)
    with pytest.raises(SettingsError, match="bucket 'shop-uploads' does not exist"):
        run_audit(conn, s3, POLICY, NOW, "audit-it-nobucket", db_url=db_url)


def test_gx_and_the_cross_check_must_agree(conn, db_url, s3, shop, monkeypatch):
    """If GX and the aggregate over the same findings disagree, nothing is recorded."""
    real = audit_run.run_gx

    def off_by_one(*args, **kwargs):
        outcomes = real(*args, **kwargs)
        first = outcomes["visit-data"]
        outcomes["visit-data"] = type(first)(success=first.success, count=first.count + 1, oldest=first.oldest)
        return outcomes

    monkeypatch.setattr(audit_run, "run_gx", off_by_one)
    with pytest.raises(AuditInconsistent, match="rule visit-data: GX counted 2 overdue"):
        run_audit(conn, s3, POLICY, NOW, "audit-it-inconsistent", db_url=db_url)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM governance.evidence WHERE run_id = 'audit-it-inconsistent'")
        assert cur.fetchone()[0] == 0
    conn.rollback()


def test_without_an_s3_client_the_audit_refuses_to_run(conn, db_url):
    with pytest.raises(SettingsError, match="GOVERNANCE_S3_ENDPOINT_URL"):
        run_audit(conn, None, POLICY, NOW, "audit-it-nos3", db_url=db_url)


# --- each predicate once, into a scratch schema that never outlives the audit --------------------


def scratch_schemas(conn) -> list[str]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s) ORDER BY 1", (audit_module.SCRATCH_PREFIX,)
        )
        names = [row[0] for row in cur.fetchall()]
    conn.rollback()
    return names


def test_the_scratch_schema_is_gone_after_the_audit_and_its_phases_are_timed(conn, db_url, s3, shop):
    report = run_audit(conn, s3, POLICY, NOW, "audit-it-scratch", db_url=db_url)
    assert scratch_schemas(conn) == []
    assert {"setup", "predicates", "gx", "listing", "object_store", "total"} <= set(report.seconds)
    assert report.seconds["total"] >= report.seconds["predicates"] + report.seconds["gx"]
    with conn.cursor() as cur:
        cur.execute(
            "SELECT details -> 'seconds' ->> 'predicates' FROM governance.evidence "
            "WHERE run_id = 'audit-it-scratch' AND kind = 'audit'"
        )
        assert float(cur.fetchone()[0]) == report.seconds["predicates"]
    conn.rollback()


def test_a_crashed_audits_scratch_is_dropped_a_running_ones_is_kept(conn, db_url, s3, shop):
    """A killed worker leaves its scratch schema, but not its session lock: the next audit drops it.
    A schema whose owner still holds the lock (an audit running elsewhere) is left alone."""
    from governance.db import advisory_key, connect

    crashed = audit_module.SCRATCH_PREFIX + "deadbeef00000000"
    running = audit_module.SCRATCH_PREFIX + "cafe000000000000"
    other = connect(db_url)
    try:
        with other.cursor() as cur:
            cur.execute(
                "SELECT pg_advisory_lock(%s, %s)",
                (audit_module.SCRATCH_LOCK_NAMESPACE, advisory_key(running[-16:])),
            )
            for name in (crashed, running):
                cur.execute(f'CREATE SCHEMA "{name}"')
                cur.execute(f'CREATE UNLOGGED TABLE "{name}".findings_0 (record_id bigint)')
        other.commit()
        run_audit(conn, s3, POLICY, NOW, "audit-it-stale", db_url=db_url, record=False)
        assert scratch_schemas(conn) == [running]
    finally:
        with other.cursor() as cur:
            cur.execute(f'DROP SCHEMA IF EXISTS "{running}" CASCADE')
        other.commit()
        other.close()
    assert scratch_schemas(conn) == []


def _one_rule_sql(monkeypatch, rule_id: str, text: str) -> None:
    real = audit_predicates.audit_sql_text
    monkeypatch.setattr(audit_predicates, "audit_sql_text", lambda rule: text if rule.id == rule_id else real(rule))


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "SELECT 'visit-data'::text AS rule_id, visit_id AS record_id, 0::bigint AS overdue_seconds FROM shop.visits",
            r"audit SQL audit/visit_data.sql could not be evaluated: .*held.* must return the columns "
            r"rule_id, record_id, overdue_seconds, held",
        ),
        (
            "SELECT 'visit-date'::text AS rule_id, visit_id AS record_id, 0::bigint AS overdue_seconds, false AS held "
            "FROM shop.visits",
            r"audit SQL audit/visit_data.sql returns rows for rule\(s\) \['visit-date'\]",
        ),
    ],
)
def test_a_predicate_breaking_the_contract_is_named_and_nothing_is_left(
    conn, db_url, s3, shop, monkeypatch, text, message
):
    _one_rule_sql(monkeypatch, "visit-data", text)
    with pytest.raises(audit_module.AuditError, match=message):
        run_audit(conn, s3, POLICY, NOW, "audit-it-contract", db_url=db_url)
    assert scratch_schemas(conn) == []
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM governance.evidence WHERE run_id = 'audit-it-contract'")
        assert cur.fetchone()[0] == 0
    conn.rollback()


def test_a_listing_that_fails_midway_fails_the_audit_and_records_nothing(conn, db_url, s3, shop, monkeypatch):
    import botocore.exceptions

    def broken(s3_client, bucket, prefix):
        yield bucket, "uploads/50.jpg", NOW
        raise botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:1")

    monkeypatch.setattr(audit_listing, "iter_objects", broken)
    with pytest.raises(audit_module.AuditError, match="listing the object store failed: EndpointConnectionError"):
        run_audit(conn, s3, POLICY, NOW, "audit-it-listing", db_url=db_url)
    assert scratch_schemas(conn) == []
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM governance.evidence WHERE run_id = 'audit-it-listing'")
        assert cur.fetchone()[0] == 0
    conn.rollback()


def test_the_listing_overlaps_the_predicates(conn, db_url, s3, shop, monkeypatch):
    """The object listing runs on its own connection while the predicates run: a listing that takes
    as long as the predicates adds little to the audit (the bench measures it at scale)."""
    real_iter, real_evaluate = audit_listing.iter_objects, audit_predicates.evaluate
    events: list[tuple[str, float]] = []

    def slow_listing(*args):
        import time

        events.append(("listing starts", time.perf_counter()))
        time.sleep(1.0)
        yield from real_iter(*args)
        events.append(("listing ends", time.perf_counter()))

    def evaluate(*args):
        import time

        events.append(("predicate", time.perf_counter()))
        return real_evaluate(*args)

    monkeypatch.setattr(audit_listing, "iter_objects", slow_listing)
    monkeypatch.setattr(audit_predicates, "evaluate", evaluate)
    report = run_audit(conn, s3, POLICY, NOW, "audit-it-overlap", db_url=db_url, record=False)
    assert report.rule(OBJECT_STORE_RULE).overdue == 5  # the same answer as without the delay
    started = next(t for name, t in events if name == "listing starts")
    ended = next(t for name, t in events if name == "listing ends")
    predicates = [t for name, t in events if name == "predicate"]
    assert len(predicates) == len({rule.audit for rule in POLICY.rules})  # each file evaluated once
    assert any(started <= t <= ended for t in predicates)  # they ran while the listing was under way
