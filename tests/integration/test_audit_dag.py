"""The retention_audit DAG run by Airflow itself (dag.test(): real tasks, XComs, metadata DB).

A shop seeded by governance_dev.loader.seed (with orphan objects and legal holds) is audited as of the
seed's "now": the run must fail on the overdue data with on-call's message, and the evidence it
recorded must match the generator's ground truth per rule (from governance_dev.reference). Then the
overdue records and objects are removed by hand — plain SQL and S3 calls, chosen by the reference
oracle, not by the audit — and the next run must succeed.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from psycopg2.extras import RealDictCursor

from governance.audit import OBJECT_STORE_RULE
from governance.audit.report import LOCATION_RULE
from governance.policy import load_policy
from governance_dev import reference
from governance_dev.reference import UPLOAD_RULES, Snapshot

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAGS = Path(__file__).resolve().parents[2] / "dags"
POLICY = load_policy()
ORPHANS = 3
EXPORTS_CHECK = "request-exports-object-store"  # RET-9: the request exports' bucket
OBJECT_CHECKS = (OBJECT_STORE_RULE, EXPORTS_CHECK, "compliance-reports-object-store")  # RET-9 (#13): reports


def audit_dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag("retention_audit")


def task_states(run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def audit_xcom(run) -> dict:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(
            XComModel.get_many(run_id=run.run_id, key="return_value", dag_ids="retention_audit", task_ids="audit")
        ).first()
        return XComModel.deserialize_value(row)


def history(conn, run) -> dict[str, tuple]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT rule_id, overdue, oldest_overdue_seconds, held, as_of FROM governance.audit_history "
            "WHERE run_id = %s",
            (f"retention_audit/{run.run_id}",),
        )
        rows = {r[0]: r[1:] for r in cur.fetchall()}
    conn.rollback()
    return rows


@pytest.fixture
def seeded(airflow_home, airflow_connections, conn, s3):
    from governance_dev.loader import seed

    report = seed(conn, s3, POLICY, NOW, customers=150, seed=11, orphan_objects=ORPHANS)
    assert report.expected_overdue and all(report.expected_overdue.values())
    return report


def expected_states(enforce: str) -> dict[str, str]:
    # anchor_evidence is a teardown (SEC-1): it runs whatever enforce did
    return {"check_policy": "success", "audit": "success", "enforce": enforce, "anchor_evidence": "success"}


def assert_anchored(conn, s3, run) -> None:
    """SEC-1: after the run, whatever its outcome, the chain head is anchored in the Object Lock bucket."""
    from governance.anchors import current_head, read_anchors

    head = current_head(conn)
    conn.rollback()
    anchors = [a for _, a in read_anchors(s3, POLICY.object_store.evidence_anchor_bucket, head.database)]
    assert anchors and anchors[-1].run_id == f"retention_audit/{run.run_id}"
    assert (anchors[-1].head_entry_id, anchors[-1].head_hash, anchors[-1].entries) == (
        head.head_entry_id,
        head.head_hash,
        head.entries,
    )


def test_the_dag_fails_on_overdue_data_and_records_the_generators_counts(seeded, conn, s3, capfd):
    from governance_dev.loader import personal_values

    run = audit_dag().test(logical_date=NOW)
    out, err = capfd.readouterr()
    logs = out + err

    assert str(run.state) == "failed"  # the anchor_evidence teardown's success does not hide the failure
    assert task_states(run) == expected_states(enforce="failed")
    assert_anchored(conn, s3, run)

    recorded = history(conn, run)
    expected = dict(seeded.expected_overdue)
    for rule in POLICY.rules:
        overdue, oldest, held, as_of = recorded[rule.id]
        assert overdue == expected[rule.id], rule.id
        assert oldest == seeded.expected_oldest_overdue_seconds.get(rule.id), rule.id
        assert as_of == NOW  # RET-10: the run's data interval end, not the wall clock
    # every upload row has its object: the overdue objects are the overdue uploads, plus the orphans
    assert recorded[OBJECT_STORE_RULE][0] == sum(expected[r] for r in UPLOAD_RULES) + ORPHANS
    assert recorded[EXPORTS_CHECK][0] == expected["request-exports"]  # every archive row has its object

    # on-call's message: each rule over, its count and oldest age, and what to do
    for rule in POLICY.rules:
        assert f"{rule.id} ({', '.join(rule.requirements)}): {expected[rule.id]} record" in logs
    assert "AirflowFailException" in logs and "run the retention sweep" in logs and "docs/runbook.md" in logs

    # counts and ids only: no personal data in the XCom or anywhere in the logs
    summary = audit_xcom(run)
    assert summary["overdue_total"] == sum(expected.values()) + sum(recorded[c][0] for c in OBJECT_CHECKS)
    personal = {v for v in personal_values(conn) if len(v) >= 6}
    conn.rollback()
    assert personal
    assert not [v for v in personal if v in json.dumps(summary)]
    assert not [v for v in personal if v in logs]


def shop_snapshot(conn) -> Snapshot:
    """The shop as the reference reads it, straight from the tables."""
    snapshot = Snapshot()
    with conn.cursor(cursor_factory=RealDictCursor) as cur:
        for name in snapshot.__dataclass_fields__:
            cur.execute(f"SELECT * FROM {Snapshot.table_of(name)}")
            setattr(snapshot, name, [dict(r) for r in cur.fetchall()])
    conn.rollback()
    return snapshot


def remove_overdue_by_hand(conn, s3) -> int:
    """Delete (orders: anonymise, RET-8) what the reference says is overdue until nothing is; then the
    objects of deleted uploads and the orphans. Returns how many records were removed."""
    tables = {
        "visit-data": ("shop.visits", "visit_id"),
        "deleted-accounts": ("shop.accounts", "account_id"),
        "deleted-account-calendar-events": ("shop.calendar_events", "event_id"),
        "deleted-account-saved-products": ("shop.saved_products", "saved_product_id"),
        "contact-messages": ("shop.contact_messages", "message_id"),
        "newsletter-subscriptions": ("shop.newsletter_subscriptions", "subscription_id"),
        "cookie-preferences": ("shop.cookie_preferences", "preference_id"),
        **{rule: ("shop.uploads", "upload_id") for rule in UPLOAD_RULES},
        "request-contacts": ("governance.request_contacts", "request_id"),
        "request-exports": ("governance.request_exports", "export_id"),
    }
    removed = 0
    for _ in range(10):  # deleting an account or anonymising orders can move other clocks
        overdue = reference.overdue(shop_snapshot(conn), POLICY, NOW)
        if not any(overdue.values()):
            break
        with conn.cursor() as cur:
            for rule_id, records in overdue.items():
                ids = list(records)
                if not ids:
                    continue
                removed += len(ids)
                if rule_id == "order-records":
                    cur.execute(
                        "UPDATE shop.orders SET anonymised_at = %s, email = NULL, first_name = NULL, "
                        "last_name = NULL, phone = NULL, delivery_street = NULL, billing_street = NULL, "
                        "account_id = NULL WHERE order_id = ANY(%s)",
                        (NOW, ids),
                    )
                else:
                    table, key = tables[rule_id]
                    cur.execute(f"DELETE FROM {table} WHERE {key} = ANY(%s)", (ids,))
        conn.commit()
    else:
        pytest.fail("overdue records remain after 10 rounds")

    gone = {
        table: remove_objects_without_row(conn, s3, table)
        for table in ("shop.uploads", "governance.request_exports")  # the uploads and the request exports
    }
    assert gone["shop.uploads"] >= ORPHANS and gone["governance.request_exports"] > 0
    return removed


def remove_objects_without_row(conn, s3, table: str) -> int:
    """Delete the objects under a store's prefix that no row of ``table`` points at; how many."""
    link = POLICY.store(table).objects
    with conn.cursor() as cur:
        cur.execute(f"SELECT bucket, object_key FROM {table}")
        kept = set(cur.fetchall())
    conn.rollback()
    gone = []
    for bucket in link.buckets:
        listed = [
            o["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=link.prefix)
            for o in page.get("Contents", [])
        ]
        keys = [k for k in listed if (bucket, k) not in kept]
        for start in range(0, len(keys), 1000):
            s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[start : start + 1000]]})
        gone += keys
    return len(gone)


def test_the_dag_succeeds_once_the_overdue_data_is_gone(seeded, conn, s3):
    removed = remove_overdue_by_hand(conn, s3)
    assert removed >= sum(seeded.expected_overdue.values())

    run = audit_dag().test(logical_date=NOW)

    assert str(run.state) == "success", task_states(run)
    assert task_states(run) == expected_states(enforce="success")
    assert_anchored(conn, s3, run)
    recorded = history(conn, run)
    assert set(recorded) == {r.id for r in POLICY.rules} | {*OBJECT_CHECKS, LOCATION_RULE}  # SEC-3 in the DAG
    assert all(overdue == 0 for overdue, *_ in recorded.values())
    assert sum(held for _, _, held, _ in recorded.values()) > 0  # the seed's holds: kept, and compliant
    assert audit_xcom(run)["overdue_total"] == 0
