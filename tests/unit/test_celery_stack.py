"""scripts/celery_stack.py without Airflow running: the settings each component gets, the message
when Redis is missing, and that stopping leaves no process behind (#14 item 1)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import celery_stack  # noqa: E402  (a script beside the project, not a package)


def test_a_socket_dsn_becomes_a_sqlalchemy_url_with_the_socket_in_the_query():
    url = make_url(celery_stack.sqlalchemy_url("postgresql://postgres:@/airflow?host=/tmp/pg sock"))
    assert url.drivername == "postgresql+psycopg2" and url.database == "airflow"
    assert url.host is None and url.query["host"] == "/tmp/pg sock" and url.username == "postgres"


def test_a_tcp_dsn_keeps_its_password_port_and_options():
    url = make_url(celery_stack.sqlalchemy_url("user=gov password=s3cr@t/x host=db.internal port=6543 dbname=meta"))
    assert (url.username, url.password, url.host, url.port, url.database) == (
        "gov",
        "s3cr@t/x",
        "db.internal",
        6543,
        "meta",
    )


def test_no_redis_names_how_to_start_it():
    closed = f"redis://127.0.0.1:{celery_stack.free_port()}/0"
    with pytest.raises(celery_stack.StackError) as raised:
        celery_stack.check_redis(closed)
    assert closed in str(raised.value) and "redis-server --daemonize yes" in str(raised.value)
    assert not celery_stack.redis_answers(closed)


def test_every_component_shares_the_settings_and_each_worker_has_its_own_name_and_log_port(tmp_path):
    cfg = celery_stack.StackConfig(
        home=tmp_path,
        log_dir=tmp_path,
        metadata_dsn="host=127.0.0.1 port=5432 user=postgres dbname=meta",
        broker_url="redis://127.0.0.1:6379/3",
        api_port=18999,
        base_env={"AIRFLOW_CONN_GOVERNANCE_DB": "{}"},
    )
    parts = celery_stack.components(cfg, celery_stack.stack_env(cfg))
    assert set(parts) == {"api-server", "scheduler", "dag-processor", "triggerer", "worker1", "worker2"}
    workers = [parts["worker1"], parts["worker2"]]
    for number, (argv, env) in enumerate(workers, start=1):
        assert argv[-4:] == ["-H", celery_stack.worker_name(number), "--concurrency", "2"]
        assert env["GOVERNANCE_WORKER_NAME"] == celery_stack.worker_name(number)
    assert (
        workers[0][1]["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"]
        != workers[1][1]["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"]
    )
    env = parts["scheduler"][1]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+" + env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:18999/execution/"
    assert env["AIRFLOW__CORE__HOSTNAME_CALLABLE"] == "governance_airflow.hostname.worker_hostname"
    assert env["AIRFLOW_CONN_GOVERNANCE_DB"] == "{}"
    assert len({part[1]["AIRFLOW__API_AUTH__JWT_SECRET"] for part in parts.values()}) == 1


def test_stopping_ends_the_group_and_descendants_that_left_it(tmp_path):
    """Airflow's task processes make a process group of their own: stopping the component must still
    end them (else a Ctrl-C leaves sweeps running)."""
    import psutil

    marker = tmp_path / "grandchild.pid"
    grandchild = (
        f"import os, time; os.setpgid(0, 0); open({str(marker)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    )
    leader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {grandchild!r}]); time.sleep(120)",
        ],
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while not (marker.exists() and marker.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    escaped = int(marker.read_text())
    assert psutil.Process(escaped).pid != leader.pid and psutil.pid_exists(escaped)

    assert celery_stack.stop_processes({"component": leader.pid}, grace=5) == ["component"]
    leader.wait(timeout=5)
    assert not psutil.pid_exists(escaped) or psutil.Process(escaped).status() == psutil.STATUS_ZOMBIE
