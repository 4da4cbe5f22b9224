"""The request_deadlines DAG (REQ-1) through Airflow's own dag.test(): real PostgreSQL and a real SMTP
server (aiosmtpd) behind governance_smtp.

One e-mail to on-call and compliance when a request has 7 days left and one when it is late,
never twice; it names the request id, kind and deadline, never the person. A mail server that is
down marks nothing: the next run sends the alert.
"""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta

import pytest

import governance_airflow
from governance import evidence, requests
from governance.policy import load_policy
from tests.integration import request_support as rs

pytestmark = [pytest.mark.integration, pytest.mark.slow]

POLICY = load_policy()
RECEIVED = datetime(2026, 10, 5, 7, 0, tzinfo=UTC)
DUE = datetime(2026, 11, 5, 7, 0, tzinfo=UTC)  # one calendar month later
ADDRESS = "Sigrid.Haugen@example.no"


@pytest.fixture
def db_url(make_database):
    return make_database()


@pytest.fixture
def dag(airflow_home, airflow_connections, smtp_inbox):
    return rs.loaded_dag("request_deadlines")


@pytest.fixture
def request_id(conn) -> int:
    request = requests.open_request(
        conn, POLICY, kind="portability", email=ADDRESS, channel="email", opened_by="support", now=RECEIVED
    )
    assert request.due_at == DUE
    return request.request_id


def text(message) -> str:
    return str(message["Subject"]).replace("\r\n", "") + "\n" + message.get_payload(decode=True).decode()


def reported(run) -> list:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.scalars(XComModel.get_many(run_id=run.run_id, key="return_value", dag_ids="request_deadlines"))
        return [XComModel.deserialize_value(r) for r in rows]


def test_on_call_and_compliance_are_told_at_seven_days_and_when_late_once_each(dag, conn, request_id, smtp_inbox):
    for day in (
        DUE - timedelta(days=8),
        DUE - timedelta(days=7),
        DUE - timedelta(days=6),
        DUE,
        DUE + timedelta(days=1),
    ):
        run = dag.test(logical_date=day)
        assert str(run.state) == "success"
    assert len(smtp_inbox) == 2, [m["Subject"] for m in smtp_inbox]
    soon, late = (text(m) for m in smtp_inbox)
    for message in smtp_inbox:
        recipients = {a.strip() for a in message["To"].split(",")}
        assert recipients == {governance_airflow.ALERT_EMAIL, governance_airflow.COMPLIANCE_EMAIL}
    assert "0 late, 1 due within 7 days" in soon and f"request {request_id} (portability, received)" in soon
    assert "due 2026-11-05T07:00:00Z, 7 day(s) left" in soon
    assert "1 late, 0 due within 7 days" in late and "0 day(s) late" in late
    assert "A data-subject request is late" in late
    assert ADDRESS.lower() not in (soon + late).lower()
    kinds = [
        e.details["alert"] for e in evidence.entries(conn, run_id=f"request-{request_id}") if e.details.get("alert")
    ]
    conn.rollback()
    assert kinds == ["due_soon", "late"]


def test_a_mail_server_that_is_down_marks_nothing_and_the_next_run_sends_the_alert(
    dag, conn, request_id, smtp_inbox, monkeypatch
):
    working = json.loads(__import__("os").environ["AIRFLOW_CONN_GOVERNANCE_SMTP"])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        down = {**working, "port": probe.getsockname()[1]}
    monkeypatch.setenv("AIRFLOW_CONN_GOVERNANCE_SMTP", json.dumps(down))
    failed = dag.test(logical_date=DUE + timedelta(days=2))
    assert str(failed.state) == "failed" and smtp_inbox == []
    with conn.cursor() as cur:
        assert requests.fetch(cur, request_id).late_alerted_at is None
    conn.rollback()

    monkeypatch.setenv("AIRFLOW_CONN_GOVERNANCE_SMTP", json.dumps(working))
    sent = dag.test(logical_date=DUE + timedelta(days=2, hours=1))
    assert str(sent.state) == "success" and len(smtp_inbox) == 1
    assert f"request {request_id} (portability, received)" in text(smtp_inbox[0])
    assert reported(sent) == [{"late": [request_id], "due_soon": []}]
