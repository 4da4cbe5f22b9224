"""Which instant retention_audit audits (RET-10), per kind of run.

A scheduled run looks back by the policy's tolerated lateness (the sweep runs hourly, RET-1);
manual runs use their data interval end; asset-triggered runs use the sweep's own "now".
"""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "retention_audit.py"
END = datetime(2026, 11, 25, 5, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def audit_instant():
    spec = importlib.util.spec_from_file_location("retention_audit_dag", DAG_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.audit_instant


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
