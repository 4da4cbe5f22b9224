"""Secrets never print (SEC-1, #9): a password injected in every DSN form never reaches the CLI's
stdout or stderr, the logs, a raised message or the failure e-mail of a DAG run. Real PostgreSQL
(reachable for the audit's own connection), moto's S3 server, an SMTP server and ``dag.test()``."""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime

import pytest
from airflow.sdk import dag, task

import governance_airflow
from governance.cli import main
from governance.errors import SettingsError

SECRET = "S3cret-Pass"
NOW = "2026-03-01T12:00:00Z"
# Every form a connection target takes, each pointing nowhere (port 1) or malformed.
FORMS = {
    "url": f"postgresql://gov:{SECRET}@127.0.0.1:1/shop",
    "url-query": f"postgresql://gov@127.0.0.1:1/shop?password={SECRET}&sslmode=disable",
    "key-value": f"host=127.0.0.1 port=1 user=gov password={SECRET} dbname=shop",
    "key-value-quoted": f"host=127.0.0.1 port=1 user=gov password='{SECRET} x' dbname=shop",
    "malformed-url": f"postgresql://gov:{SECRET}@[127.0.0.1/shop",  # libpq echoes this one whole
    "malformed-dsn": f"user=gov password={SECRET} not a dsn",
}


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize(
    "command", [["plan"], ["audit"], ["policy", "check"], ["hold", "list"], ["evidence", "verify"]]
)
def test_the_cli_never_prints_a_password(capsys, caplog, s3_url, monkeypatch, form, command):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("GOVERNANCE_S3_ENDPOINT_URL", s3_url)
    for via_env in (False, True):
        if via_env:
            monkeypatch.setenv("GOVERNANCE_DB_URL", FORMS[form])
        argv = [*command, "--now", NOW] + ([] if via_env else ["--db-url", FORMS[form]])
        code = main(argv)
        out, err = capsys.readouterr()
        assert code in (2, 4), (out, err)
        assert err.startswith("error: database: ") and "Database or S3 unreachable" in err
        assert SECRET not in out + err + caplog.text and "***" in err


@pytest.mark.parametrize("form", sorted(FORMS))
def test_raised_messages_never_carry_a_password(form):
    from governance.db import connect

    with pytest.raises(SettingsError) as excinfo:
        connect(FORMS[form], source="--db-url")
    assert SECRET not in str(excinfo.value) and "--db-url" in str(excinfo.value)


def test_the_audits_gx_connection_error_never_carries_a_password(conn, s3, caplog):
    from governance.audit import run_audit
    from governance.errors import InfrastructureError
    from governance.policy import load_policy
    from governance_dev.loader import ensure_store_buckets

    caplog.set_level(logging.DEBUG)
    policy = load_policy()
    ensure_store_buckets(s3, policy)
    for form in ("url", "key-value"):
        with pytest.raises(InfrastructureError, match="GX data source cannot connect") as excinfo:
            run_audit(conn, s3, policy, datetime(2026, 3, 1, tzinfo=UTC), "secret-probe", db_url=FORMS[form])
        assert SECRET not in str(excinfo.value) and "Connection refused" in str(excinfo.value)
    assert SECRET not in caplog.text


@dag(
    dag_id="governance_secret_probe",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    default_args=governance_airflow.default_args(retries=0),
    tags=["test"],
    doc_md="Throw-away DAG of tests/integration/test_secrets.py: every task fails on a connection with a password.",
)
def governance_secret_probe():
    @task
    def open_airflow_connection() -> None:
        governance_airflow.db_connection().close()

    @task
    def open_malformed_url() -> None:
        from governance.db import connect

        connect(FORMS["malformed-url"]).close()

    @task
    def audit_through_a_bad_url() -> None:
        from contextlib import closing

        from governance.audit import run_audit
        from governance.policy import load_policy

        with closing(_good()) as conn:  # the audit's own connection works; the URL GX gets does not
            run_audit(
                conn,
                governance_airflow.s3_client(),
                load_policy(),
                datetime(2026, 3, 1, tzinfo=UTC),
                "p",
                db_url=FORMS["key-value-quoted"],
            )

    open_airflow_connection()
    open_malformed_url()
    audit_through_a_bad_url()


def _good():
    from governance.db import connect

    return connect(os.environ["GOVERNANCE_TEST_GOOD_DB_URL"])


PROBE = governance_secret_probe()


def test_a_dag_runs_failure_emails_never_carry_a_password(
    airflow_home, airflow_connections, smtp_inbox, monkeypatch, s3, capfd, caplog
):
    from governance.policy import load_policy
    from governance_dev.loader import ensure_store_buckets
    from tests.integration.test_notifier import _body, _register

    caplog.set_level(logging.DEBUG)
    ensure_store_buckets(s3, load_policy())
    monkeypatch.setenv("GOVERNANCE_TEST_GOOD_DB_URL", airflow_connections["db_url"])
    good = json.loads(os.environ["AIRFLOW_CONN_GOVERNANCE_DB"])
    monkeypatch.setenv("AIRFLOW_CONN_GOVERNANCE_DB", json.dumps({**good, "port": 1, "password": SECRET}))
    _register(PROBE)
    run = PROBE.test(logical_date=datetime(2026, 3, 1, 12, tzinfo=UTC))
    assert run.state == "failed"
    bodies = {m["Subject"]: _body(m) for m in smtp_inbox}
    assert len(bodies) == 3, sorted(bodies)
    everything = "\n".join(f"{subject}\n{body}" for subject, body in bodies.items())
    assert "cannot open the Airflow connection 'governance_db'" in everything
    assert "is not a PostgreSQL URL or DSN" in everything and "GX data source cannot connect" in everything
    out, err = capfd.readouterr()
    assert SECRET not in everything + out + err + caplog.text
