"""The compliance_report DAG (#13) through Airflow's own dag.test(): real PostgreSQL, the moto S3
server over HTTP behind governance_s3. It files the previous UTC day's report (HTML and JSON,
server-side encrypted) under reports/YYYY/MM/DD/ with a 'report_written' entry whose sha256 are the
objects'; a rerun of the day writes and records nothing again; the reports bucket is a copy with a
window (RET-9): past it, the objects go and 'reports_purged' names them.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest

from governance import evidence
from governance.audit.reports import PURGE_CADENCE, REPORTS_RULE, check_reports
from governance.compliance import publish
from governance.compliance import report as period_report
from governance.db import transaction
from governance.objectstore import ensure_bucket
from governance.policy import load_policy
from tests.integration import request_support as rs
from tests.integration.test_compliance_report import backdate_since, last_entry_id

pytestmark = [pytest.mark.integration, pytest.mark.slow]

POLICY = load_policy()
BUCKET = POLICY.object_store.reports_bucket
WALL = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=5)
DAY = (WALL - timedelta(days=1)).date()


@pytest.fixture
def db_url(make_database):
    return make_database()


@pytest.fixture
def dag(airflow_home, airflow_connections, s3):
    ensure_bucket(s3, BUCKET)
    return rs.loaded_dag("compliance_report")


def returned(run, task_id: str):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.scalars(
            XComModel.get_many(run_id=run.run_id, key="return_value", dag_ids="compliance_report", task_ids=task_id)
        )
        return [XComModel.deserialize_value(r) for r in rows]


def written_entries(conn) -> list:
    with transaction(conn, read_only=True) as cur:
        cur.execute(
            "SELECT step, details FROM governance.evidence WHERE kind = %s AND run_id = %s ORDER BY entry_id",
            (publish.WRITTEN_KIND, f"compliance_report:{DAY.isoformat()}"),
        )
        return cur.fetchall()


def test_the_previous_days_report_is_filed_once_with_its_evidence(dag, conn, s3):
    marker = last_entry_id(conn)
    with transaction(conn) as cur:  # yesterday's sweep of visit-data removed 4
        evidence.append(
            cur,
            kind="sweep_rule",
            run_id="yesterday-sweep",
            rule_id="visit-data",
            step="summary",
            counts={"deleted": 4, "held": 0},
            policy_version=POLICY.version,
        )
    backdate_since(conn, marker)

    run = dag.test(logical_date=WALL)
    assert str(run.state) == "success"
    (result,) = returned(run, "write_report")
    keys = publish.day_keys(DAY)
    assert (
        result["keys"]
        == keys
        == {
            "html": f"reports/{DAY:%Y/%m/%d}/report.html",
            "json": f"reports/{DAY:%Y/%m/%d}/report.json",
        }
    )
    assert result["skipped"] is False and returned(run, "purge_expired_reports") == [0]
    bodies = {}
    for fmt, key in keys.items():
        obj = s3.get_object(Bucket=BUCKET, Key=key)
        assert obj["ServerSideEncryption"] == "AES256"
        bodies[fmt] = obj["Body"].read()
    data = json.loads(bodies["json"])
    period_report.validate(data)
    assert data["period"] == {"from": DAY.isoformat(), "to": DAY.isoformat(), "days": 1}
    assert [(d["rule_id"], d["removed"]) for d in data["daily_effects"]] == [("visit-data", 4)]
    assert data["evidence"]["verification"]["by"] == "compliance_report.write_report"
    assert b"visit-data" in bodies["html"] and bodies["html"].count(b"<svg") >= 3
    ((step, details),) = written_entries(conn)
    assert details["sha256"] == {fmt: hashlib.sha256(body).hexdigest() for fmt, body in bodies.items()}
    assert details["keys"] == keys and details["bucket"] == BUCKET and details["verified_ok"] is True

    again = dag.test(logical_date=WALL)  # the same day again: nothing written, nothing recorded
    assert str(again.state) == "success"
    assert returned(again, "write_report")[0]["skipped"] is True
    assert len(written_entries(conn)) == 1
    assert {fmt: s3.get_object(Bucket=BUCKET, Key=k)["Body"].read() for fmt, k in keys.items()} == bodies

    s3.delete_object(Bucket=BUCKET, Key=keys["html"])  # an object lost: the rerun writes the day again
    third = dag.test(logical_date=WALL)
    assert str(third.state) == "success" and returned(third, "write_report")[0]["skipped"] is False
    assert [s for s, _ in written_entries(conn)] == ["write", "write#2"]
    assert s3.head_object(Bucket=BUCKET, Key=keys["html"])["ServerSideEncryption"] == "AES256"


def test_reports_past_their_window_are_purged_with_evidence(conn, s3):
    ensure_bucket(s3, BUCKET)
    keys = publish.day_keys(DAY)
    for key in keys.values():
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"{}", ServerSideEncryption="AES256")
    s3.put_object(Bucket=BUCKET, Key="elsewhere/keep.txt", Body=b"not a report")
    window = POLICY.reports_window()
    assert str(window) == "P90D"
    just_before = window.expires_at(WALL) - timedelta(days=1)
    assert publish.purge_expired(conn, s3, POLICY, now=just_before, run_id="purge-early") == 0
    after = window.expires_at(datetime.now(UTC)) + timedelta(minutes=1)
    # the audit's own check (independent of the purge) gives the daily purge a day, then finds both
    assert check_reports(s3, POLICY, after).overdue == 0
    missed = check_reports(s3, POLICY, after + PURGE_CADENCE)
    assert (missed.rule, missed.overdue, missed.details["objects_listed"]) == (REPORTS_RULE, 2, 2)
    assert "compliance-reports-object-store (RET-9): 2 objects overdue" in missed.headline()
    assert publish.purge_expired(conn, s3, POLICY, now=after, run_id="purge-due") == 2
    assert check_reports(s3, POLICY, after + PURGE_CADENCE).overdue == 0
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    assert listed == ["elsewhere/keep.txt"]
    with transaction(conn, read_only=True) as cur:
        cur.execute("SELECT run_id, counts, details FROM governance.evidence WHERE kind = %s", (publish.PURGED_KIND,))
        ((run_id, counts, details),) = cur.fetchall()
    assert run_id == "purge-due" and counts["objects"] == 2 and counts["failed"] == 0
    assert details["keys"] == sorted(keys.values()) and details["window"] == "P90D"
