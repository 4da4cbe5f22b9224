"""Every DAG in dags/ parses, and follows the house rules (CONTRIBUTING.md, habits 1-3).

Generic on purpose: a DAG added later is held to the same rules without touching this file.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from governance.policy import DEFAULT_POLICY_PATH
from governance.settings import POLICY_ENV

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
DAG_FILES = sorted(p for p in DAGS_DIR.glob("*.py") if not p.name.startswith("_"))


def dag_bag():
    try:
        from airflow.models import DagBag
    except ImportError:  # pragma: no cover - where Airflow moved it
        from airflow.dag_processing.dagbag import DagBag
    return DagBag(dag_folder=str(DAGS_DIR))


@pytest.fixture(scope="module")
def bag():
    return dag_bag()


def test_there_are_dags():
    assert any(p.name == "retention_audit.py" for p in DAG_FILES)


def test_no_import_errors(bag):
    assert bag.import_errors == {}, "\n\n".join(f"{f}:\n{e}" for f, e in bag.import_errors.items())
    assert len(bag.dags) >= len(DAG_FILES)


def dags():
    return sorted(dag_bag().dags.values(), key=lambda d: d.dag_id)


@pytest.mark.parametrize("dag", dags(), ids=lambda d: d.dag_id)
def test_dag_house_rules(dag):
    assert dag.tags, "tags"
    assert dag.doc_md and len(dag.doc_md.strip()) > 80, "doc_md that tells on-call what the DAG does"
    assert "schedule_interval" not in (dag.fileloc and Path(dag.fileloc).read_text()), "Airflow 3: schedule="
    source = Path(dag.fileloc).read_text()
    assert "execution_date" not in source and "from airflow.decorators" not in source, "Airflow 3 idioms only"
    assert dag.tasks, "at least one task"
    for t in dag.tasks:
        where = f"{dag.dag_id}.{t.task_id}"
        assert t.owner and t.owner != "airflow", f"{where}: an owner of our own"
        assert t.retries >= 1, f"{where}: retries for transient errors"
        assert t.retry_exponential_backoff, f"{where}: retries back off"
        callbacks = t.on_failure_callback
        if callbacks is not None and not isinstance(callbacks, list | tuple):
            callbacks = [callbacks]
        assert callbacks, f"{where}: a failure notifier"


def test_heavy_imports_stay_inside_tasks():
    """Module level imports only the SDK, our glue, the policy loader and the sweep's choices:
    parsing stays fast."""
    allowed = re.compile(
        r"^(from __future__ import|import pendulum|from airflow\.sdk import|import governance_airflow"
        r"|from governance\.policy import|from governance_airflow import|from governance\.sweep\.options import"
        r"|(from|import) (datetime|os|typing|pathlib)\b)"
    )
    for path in DAG_FILES:
        for line in path.read_text().splitlines():
            if line.startswith(("import ", "from ")):
                assert allowed.match(line), f"{path.name}: top-level '{line}' belongs inside a @task body"


def test_a_bad_policy_is_an_import_error_naming_file_rule_and_field(tmp_path, monkeypatch):
    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
    data = copy.deepcopy(data)
    next(r for r in data["rules"] if r["id"] == "order-records")["window"] = "two years"
    broken = tmp_path / "broken_policy.yaml"
    broken.write_text(yaml.safe_dump(data, sort_keys=False))
    monkeypatch.setenv(POLICY_ENV, str(broken))

    bag = dag_bag()
    readers = [p for p in DAG_FILES if "load_policy(" in p.read_text()]
    assert any(p.name == "retention_audit.py" for p in readers)
    for path in readers:
        errors = [e for f, e in bag.import_errors.items() if Path(f).name == path.name]
        assert errors, f"{path.name} parsed with a broken policy"
        assert str(broken) in errors[0]
        assert "rule 'order-records'" in errors[0]
        assert "field 'window'" in errors[0]
        assert "'two years'" in errors[0]
    assert not any(d.fileloc and Path(d.fileloc) in readers for d in bag.dags.values())


def test_the_sweep_params_offer_exactly_the_engines_choices(bag):
    """The sweep DAG's partition_counts param lists what the engine accepts (RET-1 partition drops)."""
    from governance.sweep.options import PARTITION_COUNTS

    params = bag.dags["retention_sweep"].params
    assert params["partition_counts"] == "exact"
    assert tuple(params.get_param("partition_counts").schema["enum"]) == PARTITION_COUNTS
    assert {"dry_run", "batch_size", "partition_counts"} <= set(params.keys())


def test_the_sweep_params_take_their_defaults_from_the_engines_options(bag):
    from governance.sweep.options import DEFAULT_BATCH_SIZE, Options

    params = bag.dags["retention_sweep"].params
    assert params["batch_size"] == DEFAULT_BATCH_SIZE
    assert params["partition_counts"] == Options().partition_counts
    source = (DAGS_DIR / "retention_sweep.py").read_text()
    assert "10_000" not in source and "10000" not in source and '"estimated"' not in source


def test_both_dags_check_the_policy_with_the_one_shared_task(bag):
    """One check_policy (governance_airflow.check_policy): the same checks before a sweep and an audit."""
    for dag_id in ("retention_sweep", "retention_audit"):
        check = bag.dags[dag_id].get_task("check_policy")
        assert check.python_callable.__module__ == "governance_airflow.tasks", dag_id
        assert check.retries >= 1  # house defaults still apply; a mismatch fails at once instead
