"""Run DAGs through ``dag.test()`` in a process of its own, for tests/integration/test_lineage.py.

The OpenLineage provider decides once per process, when its plugin loads, whether it is enabled
(a transport is configured), so lineage is tested in a fresh interpreter whose environment carries
``AIRFLOW__OPENLINEAGE__TRANSPORT``, as a worker's would. Usage: ``python -m
tests.integration.lineage_worker NOW DAG_ID...``; prints one JSON line: each DAG's run state and its
task instances' states.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

DAGS = Path(__file__).resolve().parents[2] / "dags"


def main(now: str, dag_ids: list[str]) -> dict[str, dict]:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert not bag.import_errors, bag.import_errors
    when = datetime.fromisoformat(now)
    states: dict[str, dict] = {}
    for dag_id in dag_ids:
        dag = bag.get_dag(dag_id)
        for task in dag.tasks:
            task.retries = 0  # a failure should fail now, not after the production backoff
        dag.deadline = None  # Airflow 3.3.2's dag.test() cannot close a run with a Deadline Alert
        run = dag.test(logical_date=when, run_after=when)
        tasks: dict[str, list[str]] = {}
        for ti in run.get_task_instances():
            tasks.setdefault(ti.task_id, []).append(str(ti.state))
        states[dag_id] = {"state": str(run.state), "run_id": run.run_id, "tasks": tasks}
    return states


if __name__ == "__main__":
    print("LINEAGE-WORKER " + json.dumps(main(sys.argv[1], sys.argv[2:])))
