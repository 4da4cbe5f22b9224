"""Which instant each DAG decides for (RET-10), per kind of run, from an Airflow context.

retention_audit: a scheduled run looks back by the policy's tolerated lateness (the sweep runs
hourly, RET-1); manual runs use their data interval end; asset-triggered runs use the sweep's own
"now". retention_sweep: always its data interval end (the hour it stands for).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

import governance_airflow
from governance.policy import load_policy

END = datetime(2026, 11, 25, 5, 30, tzinfo=UTC)
LATENESS = load_policy().enforcement.lateness


@pytest.fixture(scope="module")
def audit_instant():
    return lambda context: governance_airflow.run_now(context, tolerated_lateness=LATENESS)


def test_scheduled_run_tolerates_one_hour_of_lateness(audit_instant):
    from airflow.utils.types import DagRunType

    context = {"data_interval_end": END, "dag_run": SimpleNamespace(run_type=DagRunType.SCHEDULED, run_after=END)}
    assert audit_instant(context) == END - timedelta(hours=1)


def test_manual_run_audits_its_exact_instant(audit_instant):
    from airflow.utils.types import DagRunType

    context = {"data_interval_end": END, "dag_run": SimpleNamespace(run_type=DagRunType.MANUAL, run_after=END)}
    assert audit_instant(context) == END


def test_asset_triggered_run_audits_the_sweeps_now(audit_instant):
    from airflow.utils.types import DagRunType

    sweep_now = datetime(2026, 11, 25, 4, 0, tzinfo=UTC)
    event = SimpleNamespace(extra={"now": sweep_now.isoformat()}, timestamp=END)
    context = {
        "triggering_asset_events": {"retention_swept": [event]},
        "data_interval_end": END,
        "dag_run": SimpleNamespace(run_type=DagRunType.ASSET_TRIGGERED, run_after=END),
    }
    assert audit_instant(context) == sweep_now


def test_a_scheduled_sweep_decides_for_its_data_interval_end():
    from airflow.utils.types import DagRunType

    context = {
        "data_interval_end": END,
        "logical_date": END - timedelta(hours=1),
        "dag_run": SimpleNamespace(run_type=DagRunType.SCHEDULED, run_after=END + timedelta(minutes=1)),
    }
    assert governance_airflow.run_now(context) == END


def test_a_run_without_an_interval_decides_for_run_after():
    from airflow.utils.types import DagRunType

    context = {"data_interval_end": None, "dag_run": SimpleNamespace(run_type=DagRunType.MANUAL, run_after=END)}
    assert governance_airflow.run_now(context) == END


def test_both_dags_resolve_now_through_the_one_helper():
    """No DAG keeps a fallback chain of its own (sweep_instant/audit_instant are gone)."""
    from pathlib import Path

    dags = Path(__file__).resolve().parents[2] / "dags"
    for name in ("retention_sweep.py", "retention_audit.py"):
        source = (dags / name).read_text()
        assert "governance_airflow.run_now(context" in source, name
        assert 'data_interval_end"' not in source and "run_after" not in source, name
