"""retention_sweep's Deadline Alert: on by default (45 min after queueing), off when set to 0.

`airflow dags test` in Airflow 3.3.2 cannot close a successful run of a DAG with a Deadline
Alert, so local debugging runs (the demo) turn it off with GOVERNANCE_SWEEP_DEADLINE_MINUTES=0.
"""

from __future__ import annotations

import importlib.util
from datetime import timedelta
from pathlib import Path

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "retention_sweep.py"


def load_dag(monkeypatch, minutes: str | None):
    if minutes is None:
        monkeypatch.delenv("GOVERNANCE_SWEEP_DEADLINE_MINUTES", raising=False)
    else:
        monkeypatch.setenv("GOVERNANCE_SWEEP_DEADLINE_MINUTES", minutes)
    spec = importlib.util.spec_from_file_location(f"retention_sweep_{minutes}", DAG_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.retention_sweep()


def test_deadline_alert_is_on_by_default(monkeypatch):
    from airflow.sdk import DeadlineReference

    (alert,) = load_dag(monkeypatch, None).deadline
    assert alert.reference == DeadlineReference.DAGRUN_QUEUED_AT
    assert alert.interval == timedelta(minutes=45)


def test_deadline_alert_can_be_turned_off_for_local_test_runs(monkeypatch):
    assert not load_dag(monkeypatch, "0").deadline
