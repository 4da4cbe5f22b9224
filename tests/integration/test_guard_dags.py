"""The DAGs' run instants are guarded too (RET-10, #9): retention_audit run for a "now" ahead of the
wall clock fails at once with on-call's next step and records no audit, unless the run's conf gives
``allow_now_override`` with a reason, which is recorded as evidence. Real ``dag.test()``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAGS = Path(__file__).resolve().parents[2] / "dags"


def audit_dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag("retention_audit")


def kinds(conn) -> list[str]:
    with conn.cursor() as cur:
        cur.execute("SELECT kind FROM governance.evidence ORDER BY entry_id")
        rows = [kind for (kind,) in cur.fetchall()]
    conn.rollback()
    return rows


def test_a_future_run_instant_is_refused_unless_overridden(airflow_home, airflow_connections, smtp_inbox, conn, s3):
    from governance.policy import load_policy
    from governance_dev.loader import ensure_store_buckets
    from tests.integration.test_notifier import _body

    ensure_store_buckets(s3, load_policy())
    future = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    dag = audit_dag()
    run = dag.test(logical_date=future)
    assert run.state == "failed"
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert states["audit"] == "failed" and states["check_policy"] == "success"
    assert kinds(conn) == []  # no audit recorded for an instant that has not happened
    (body,) = [_body(m) for m in smtp_inbox if "audit in" in m["Subject"]]
    assert "is ahead of the wall clock" in body and '{"allow_now_override": REASON' in body

    run = dag.test(logical_date=future + timedelta(hours=1), run_conf={"allow_now_override": "DR drill GOV-7"})
    assert {ti.task_id: str(ti.state) for ti in run.get_task_instances()}["audit"] == "success"
    with conn.cursor() as cur:
        cur.execute("SELECT run_id, step, details FROM governance.evidence WHERE kind = 'now_override'")
        (run_id, step, details), *rest = cur.fetchall()
    conn.rollback()
    assert not rest and step == "retention_audit" and run_id == f"now-override/{run.run_id}"
    assert details["reason"] == "DR drill GOV-7" and "audit_rule" in kinds(conn)
