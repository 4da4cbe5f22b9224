"""The retention_sweep DAG through Airflow's own ``dag.test()`` on a small seeded shop.

A dry run changes nothing and triggers nothing; the real run leaves nothing overdue for the
independent audit (``governance.audit``, its own SQL) and updates the retention_swept asset with
its "now"; a rerun of the same run changes nothing and records nothing twice.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from governance.db import connect
from governance.policy import load_policy
from governance_dev.loader import seed
from tests.integration import sweep_support as s

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAGS = Path(__file__).resolve().parents[2] / "dags"
SHOP = [
    "shop.visits",
    "shop.accounts",
    "shop.calendar_events",
    "shop.saved_products",
    "shop.orders",
    "shop.uploads",
    "shop.newsletter_subscriptions",
    "shop.contact_messages",
    "shop.cookie_preferences",
    "governance.request_contacts",  # RET-9: the copies a data-subject request makes
    "governance.request_exports",
]


def snapshot(conn) -> dict[str, int]:
    out = {}
    with conn.cursor() as cur:
        for table in SHOP:
            cur.execute(f"SELECT count(*) FROM {table}")
            out[table] = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM shop.orders WHERE anonymised_at IS NOT NULL")
        out["anonymised"] = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM governance.evidence")
        out["evidence"] = cur.fetchone()[0]
    conn.rollback()
    return out


def states(run) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for ti in run.get_task_instances():
        out.setdefault(ti.task_id, []).append(str(ti.state))
    return out


@pytest.fixture
def sweep_dag(airflow_home, airflow_connections):
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # pragma: no cover
        from airflow.models import DagBag
    bag = DagBag(dag_folder=str(DAGS))
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag("retention_sweep")
    # The Deadline Alert is configured (45 minutes after the run was queued, an importable notifier)...
    from airflow.sdk import AsyncCallback, DeadlineReference

    (alert,) = dag.deadline
    assert alert.reference == DeadlineReference.DAGRUN_QUEUED_AT and alert.interval == timedelta(minutes=45)
    assert isinstance(alert.callback, AsyncCallback)
    assert alert.callback.path == "airflow.providers.smtp.notifications.smtp.SmtpNotifier"
    # ...but Airflow 3.3.2's dag.test() cannot finish a run of a DAG that has one: it deserialises the
    # DAG in memory, so DagRun.update_state() looks the alert up by its serialised dict instead of its
    # database id (DeadlineAlertModel.get_by_id({...}) -> "'dict' object has no attribute 'hex'").
    # The scheduler path writes the alerts first and is not affected; dag.test() runs without it.
    dag.deadline = None
    return dag


def test_dry_run_then_sweep_then_rerun(sweep_dag, airflow_connections, s3):
    from governance.audit import run_audit

    policy = load_policy()
    conn = connect(airflow_connections["db_url"])
    report = seed(conn, s3, policy, NOW, customers=100, seed=3)
    due_before = sum(report.expected_overdue.values())
    assert due_before > 100

    before = snapshot(conn)
    dry = sweep_dag.test(logical_date=NOW, run_after=NOW, run_conf={"dry_run": True})
    assert str(dry.state) == "success", states(dry)
    assert states(dry)["mark_swept"] == ["skipped"]  # no asset event: nothing was swept
    assert snapshot(conn) == before
    assert len(s.object_keys(s3)) == report.objects

    # dag.test() runs every task in this process and a run's conf stays merged into the task's params
    # afterwards, so the real runs say dry_run=False explicitly.
    real = {"dry_run": False}
    run = sweep_dag.test(logical_date=NOW, run_after=NOW, run_conf=real)
    run_states = states(run)
    assert str(run.state) == "success", run_states
    assert run_states["sweep_stage_1"] == ["success"] * (len(policy.rules) - 1)
    assert run_states["sweep_stage_2"] == ["success"] and run_states["mark_swept"] == ["success"]
    audit = run_audit(conn, s3, policy, NOW, "dag-test-audit", db_url=airflow_connections["db_url"], record=False)
    assert audit.overdue_total == 0, audit.format_table()
    after = snapshot(conn)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT count(DISTINCT rule_id) FROM governance.evidence WHERE kind = 'sweep_rule' AND run_id = %s",
            (f"retention_sweep/{run.run_id}",),
        )
        assert cur.fetchone()[0] == len(policy.rules)
        totals = s.evidence_totals(cur, f"retention_sweep/{run.run_id}")
    conn.rollback()
    removed = sum(before[t] - after[t] for t in SHOP) + after["anonymised"] - before["anonymised"]
    assert sum(c.get("deleted", 0) + c.get("anonymised", 0) for c in totals.values()) == removed == due_before

    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    with create_session() as session:
        # This run's events only: other modules (test_no_personal_data) sweep in the same session's Airflow home.
        events = (
            session.query(AssetEvent)
            .filter(AssetEvent.source_dag_id == "retention_sweep", AssetEvent.source_run_id == run.run_id)
            .all()
        )
        assert [e.extra["now"] for e in events] == ["2026-03-01T12:00:00Z"]

    rerun = sweep_dag.test(logical_date=NOW, run_after=NOW, run_conf=real)
    assert rerun.run_id == run.run_id and str(rerun.state) == "success", states(rerun)
    assert snapshot(conn) == after  # nothing changed, nothing recorded twice
    conn.close()


def test_objects_that_cannot_be_deleted_fail_the_rule_at_once_naming_the_count(
    sweep_dag, airflow_connections, s3, capfd
):
    """An object under an S3 legal hold: the rule's task fails without retrying (a retry cannot lift a
    hold), the row stays 'purging', the other rules still run, and no asset event is sent."""
    conn = connect(airflow_connections["db_url"])
    s.empty_shop(conn)
    s.create_locked_bucket(s3)
    with conn.cursor() as cur:
        s.upload(cur, NOW - timedelta(days=200), None, s3, key="uploads/locked.jpg")
        s.upload(cur, NOW - timedelta(days=200), None, s3, key="uploads/free.jpg")
        cookie = s.cookie(cur, NOW - timedelta(days=800))
    conn.commit()
    s3.put_object_legal_hold(Bucket=s.BUCKET, Key="uploads/locked.jpg", LegalHold={"Status": "ON"})
    later = NOW + timedelta(hours=1)
    run = sweep_dag.test(logical_date=later, run_after=later, run_conf={"dry_run": False})
    assert str(run.state) == "failed"
    tis = {(ti.task_id, ti.map_index): ti for ti in run.get_task_instances()}
    guest = list(policy_rules()).index("guest-uploads")
    failed = tis[("sweep_stage_1", guest)]
    assert str(failed.state) == "failed" and failed.try_number == 1  # no retry
    assert str(tis[("sweep_stage_2", 0)].state) == "success"  # the account rule still ran
    assert str(tis[("mark_swept", -1)].state) == "upstream_failed"
    out, err = capfd.readouterr()
    assert "rule 'guest-uploads': 1 object(s) could not be deleted (AccessDenied x1)" in out + err
    assert "AirflowFailException" in out + err
    with conn.cursor() as cur:
        cur.execute("SELECT object_key, state FROM shop.uploads")
        assert cur.fetchall() == [("uploads/locked.jpg", "purging")]
        assert not s.exists(cur, "shop.cookie_preferences", "preference_id", cookie)
    conn.rollback()
    assert s.object_keys(s3) == {"uploads/locked.jpg"}
    conn.close()


def policy_rules() -> list[str]:
    from governance.sweep import sweep_stages

    return sweep_stages(load_policy())[0]
