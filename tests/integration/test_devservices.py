"""The local services' settings (scripts/devservices.py) work with the real clients.

`make demo` and `make airflow` hand Airflow its connections as AIRFLOW_CONN_* JSON written to
.local/env; these tests check that what it writes reaches the real PostgreSQL through Airflow's
PostgresHook (a unix-socket URL, as pgserver gives, or TCP, as CI's server), and that the env
file survives the shell that loads it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import devservices  # noqa: E402  (a script beside the project, not a package)


def test_socket_url_becomes_a_postgres_connection_on_the_socket_directory():
    conn = devservices.airflow_db_connection("postgresql://postgres:@/shop?host=/tmp/pg-sock")
    assert conn == {
        "conn_type": "postgres",
        "host": "/tmp/pg-sock",
        "port": 5432,
        "login": "postgres",
        "schema": "shop",
    }


def test_tcp_url_keeps_password_and_options():
    conn = devservices.airflow_db_connection("postgresql://gov:s3cr%40t@db.internal:6543/shop?sslmode=require")
    assert conn["host"] == "db.internal" and conn["port"] == 6543 and conn["schema"] == "shop"
    assert conn["login"] == "gov" and conn["password"] == "s3cr@t"
    assert conn["extra"] == {"sslmode": "require"}


@pytest.mark.integration
def test_postgres_hook_connects_with_the_generated_connection(monkeypatch, db_url):
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    monkeypatch.setenv("AIRFLOW_CONN_GOVERNANCE_DB", json.dumps(devservices.airflow_db_connection(db_url)))
    conn = PostgresHook(postgres_conn_id="governance_db").get_conn()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_database(), to_regclass('governance.evidence') IS NOT NULL")
            database, has_schema = cur.fetchone()
    finally:
        conn.close()
    assert database == devservices.airflow_db_connection(db_url)["schema"]
    assert has_schema


def test_env_file_round_trips_through_the_shell(tmp_path, monkeypatch):
    env = devservices.build_env(
        "postgresql://postgres:@/shop?host=/tmp/pg sock", "http://127.0.0.1:5999", smtp_port=2525
    )
    monkeypatch.setattr(devservices, "LOCAL", tmp_path)
    monkeypatch.setattr(devservices, "ENV_FILE", tmp_path / "env")
    devservices.write_env(env)
    script = f"set -a; . {tmp_path / 'env'}; set +a; {sys.executable} -c 'import json, os; print(json.dumps(dict(os.environ)))'"
    loaded = json.loads(subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout)
    for key, value in env.items():
        assert loaded[key] == value, key
    s3 = json.loads(loaded["AIRFLOW_CONN_GOVERNANCE_S3"])
    assert s3["conn_type"] == "aws" and s3["extra"]["endpoint_url"] == "http://127.0.0.1:5999"
    smtp = json.loads(loaded["AIRFLOW_CONN_GOVERNANCE_SMTP"])
    assert smtp["port"] == 2525 and smtp["extra"]["disable_tls"] is True
    assert loaded["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert loaded["AIRFLOW_HOME"] == str(ROOT / ".airflow")
