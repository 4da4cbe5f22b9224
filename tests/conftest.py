"""Shared fixtures: a real PostgreSQL, a real S3 endpoint over HTTP, and an Airflow home.

- PostgreSQL: GOVERNANCE_TEST_DB_URL (a server's maintenance database, e.g. CI's
  postgresql://postgres@127.0.0.1:5432/postgres); without it an embedded server (pgserver) is
  started for the session. Each test module gets a database of its own with the schema applied.
- S3: moto's server mode on a loopback port, reset between tests.
- Airflow: a throw-away AIRFLOW_HOME with SQLite metadata, migrated once per session on demand.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

ROOT = Path(__file__).resolve().parent.parent

# CI (.ci/run runs with CI=true): the property tests draw the same examples on every run, so whether
# a submission lands is never decided by a random draw; locally they explore anew on each run and
# replay what failed before (.hypothesis/). A failure found locally is fixed, not hidden (ADR 0006,
# "Amended 2026-12-03", is one such).
hypothesis_settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")

# Airflow reads its configuration at import time, so the environment is set before any import.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="governance-test-airflow-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}"
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "eu-north-1")
for _proxy in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
    os.environ.pop(_proxy, None)
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
# TP-5: the shop's policy tells recipients of the orders the sweep anonymises, so a sweep naming
# them needs the recipient pseudonym key (tests that check a missing key delete it).
os.environ.setdefault("GOVERNANCE_RECIPIENT_PSEUDONYM_KEY", "test-session-recipient-pseudonym-key-0123456789")


@pytest.fixture(scope="session")
def pg_admin_url():
    """URL of a maintenance database on a real PostgreSQL server."""
    url = os.environ.get("GOVERNANCE_TEST_DB_URL")
    if url:
        yield url
        return
    import pgserver

    # Not under pytest's basetemp: a second pytest session (as root) chmods /tmp/pytest-of-root to
    # 0700, which locks out the server's own user and stops it halfway through this session.
    data_dir = tempfile.mkdtemp(prefix="governance-test-pg-")
    server = pgserver.get_server(data_dir, cleanup_mode="delete")
    yield server.get_uri()
    server.cleanup()  # stop and delete now, while pytest's logging still has its streams


def _with_database(admin_url: str, name: str) -> str:
    from psycopg2.extensions import make_dsn, parse_dsn

    params = parse_dsn(admin_url)
    params["dbname"] = name
    return make_dsn(**params)


@pytest.fixture(scope="session")
def make_database(pg_admin_url):
    """Factory: a fresh database with the schema applied; all are dropped at the end."""
    import psycopg2
    from psycopg2 import sql

    from governance.db import apply_schema
    from governance.policy import load_policy

    created: list[str] = []

    def make(apply: bool = True) -> str:
        name = f"gov_test_{uuid.uuid4().hex[:12]}"
        admin = psycopg2.connect(pg_admin_url)
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        admin.close()
        created.append(name)
        url = _with_database(pg_admin_url, name)
        if apply:
            conn = psycopg2.connect(url)
            apply_schema(conn, load_policy())
            conn.close()
        return url

    yield make
    admin = psycopg2.connect(pg_admin_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        for name in created:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    admin.close()


@pytest.fixture(scope="module")
def db_url(make_database):
    """A database of this test module's own, schema applied."""
    return make_database()


@pytest.fixture
def conn(db_url):
    from governance.db import connect

    connection = connect(db_url)
    yield connection
    connection.rollback()
    connection.close()


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's S3-compatible server on a loopback port (real HTTP, real boto3 requests)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_url(s3_endpoint):
    """The S3 endpoint, emptied before the test."""
    import requests

    requests.post(f"{s3_endpoint}/moto-api/reset", timeout=10).raise_for_status()
    return s3_endpoint


@pytest.fixture
def s3(s3_url):
    from governance.objectstore import make_client
    from governance.settings import resolve

    return make_client(resolve(None, s3_url))


@pytest.fixture(scope="session")
def airflow_home():
    """A migrated Airflow metadata database (SQLite) in a throw-away AIRFLOW_HOME."""
    airflow = shutil.which("airflow", path=str(Path(sys.executable).parent)) or "airflow"
    result = subprocess.run(
        [airflow, "db", "migrate"], env=os.environ.copy(), capture_output=True, text=True, timeout=600
    )
    if result.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    yield _AIRFLOW_HOME


@pytest.fixture
def airflow_connections(monkeypatch, db_url, s3_url):
    """Point the Airflow connections governance_db and governance_s3 at the test services."""
    import json

    from tests.integration.api_server import postgres_conn_json

    monkeypatch.setenv("AIRFLOW_CONN_GOVERNANCE_DB", postgres_conn_json(db_url))
    monkeypatch.setenv(
        "AIRFLOW_CONN_GOVERNANCE_S3",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {"endpoint_url": s3_url, "region_name": "eu-north-1"},
            }
        ),
    )
    return {"db_url": db_url, "s3_url": s3_url}


@pytest.fixture
def smtp_inbox(monkeypatch):
    """A real SMTP server (aiosmtpd) on a free loopback port behind the connection governance_smtp.

    SMTP provider 3.2.0: host and port from the connection; no login means no AUTH; extra
    ``disable_ssl`` (no SMTP_SSL) and ``disable_tls`` (no STARTTLS) for a plain local server.
    Yields the list of messages received."""
    import email
    import json
    import socket

    from aiosmtpd.controller import Controller

    inbox: list = []

    class Collect:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
            inbox.append(email.message_from_bytes(envelope.content))
            return "250 OK"

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Collect(), hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv(
        "AIRFLOW_CONN_GOVERNANCE_SMTP",
        json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": port,
                "extra": {"disable_ssl": True, "disable_tls": True, "timeout": 10, "retry_limit": 0},
            }
        ),
    )
    yield inbox
    controller.stop()
