"""The recipient_notices DAG (TP-5) through Airflow's own dag.test(): real PostgreSQL, a webhook
receiver on loopback (secret in an Airflow connection), a real SMTP server (aiosmtpd) behind
governance_smtp and the moto S3 endpoint behind governance_s3, with a policy file whose recipients
point at them. One run delivers each channel's notice (acknowledged / sent / sent); a run past the
acknowledgement window alerts compliance once about the two unacknowledged ones. No address or name
in any payload, log, XCom or evidence entry (TP-2)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

import governance_airflow
from governance.notices import PSEUDONYM_KEY_ENV
from governance.policy import DEFAULT_POLICY_PATH, load_policy
from tests.integration.notice_support import Receiver, acks, new_secret, outbox, queue, seed_person

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAGS = Path(__file__).resolve().parents[2] / "dags"
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
BUCKET = "partner-finance-drop"


@pytest.fixture
def db_url(make_database):
    return make_database()


@pytest.fixture
def setting(tmp_path, monkeypatch, airflow_home, airflow_connections, smtp_inbox, s3, conn):
    secret = new_secret()
    receiver = Receiver(acks, expect_secret=secret).start()
    data = copy.deepcopy(yaml.safe_load(DEFAULT_POLICY_PATH.read_text()))
    notify = {
        "delivery-carrier": {"webhook": {"url": receiver.url, "signing_secret_conn": "carrier_hook"}},
        "voucher-network": {"email": {"to": "privacy@vouchers.example"}},
        "financial-partner": {"drop": {"bucket": BUCKET, "prefix": "gdpr/"}},
    }
    # the recipients the purposes and audiences name stay as they are (the policy refuses a name not
    # in the registry); they receive no category of the orders changed (CAT-3), so get no notice
    named = {r for p in data["purposes"] for r in p.get("recipients", [])} | {a["recipient"] for a in data["audiences"]}
    assert not named & set(notify)
    data["recipients"] = [
        {**r, "notify": notify[r["id"]]} if r["id"] in notify else r
        for r in data["recipients"]
        if r["id"] in notify or r["id"] in named
    ]
    data["notices"]["ack_within_days"] = 3
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    monkeypatch.setenv("GOVERNANCE_POLICY", str(path))
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, "dag-test-key-0123456789abcdef0123456789")
    monkeypatch.setenv("AIRFLOW_CONN_CARRIER_HOOK", json.dumps({"conn_type": "generic", "password": secret}))
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-north-1"})
    person = seed_person(conn, NOW - timedelta(hours=1))
    queue(conn, load_policy(path), person, NOW - timedelta(hours=1))
    yield {"receiver": receiver, "person": person, "inbox": smtp_inbox, "s3": s3}
    receiver.stop()


def notices_dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag("recipient_notices")


def xcoms(run) -> str:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.scalars(XComModel.get_many(run_id=run.run_id, key="return_value", dag_ids="recipient_notices"))
        return json.dumps([XComModel.deserialize_value(r) for r in rows])


def evidence_text(conn) -> str:
    with conn.cursor() as cur:
        cur.execute("SELECT counts::text || details::text FROM governance.evidence")
        text = "\n".join(r[0] for r in cur.fetchall())
    conn.rollback()
    return text


def test_delivers_every_channel_then_alerts_compliance_without_personal_data(setting, conn, capfd):
    dag = notices_dag()
    first = dag.test(logical_date=NOW)
    assert str(first.state) == "success"
    rows = {r["recipient_id"]: r for r in outbox(conn).values()}
    assert {k: r["state"] for k, r in rows.items()} == {
        "delivery-carrier": "acknowledged",
        "voucher-network": "sent",
        "financial-partner": "sent",
    }
    [webhook_call] = setting["receiver"].received
    assert webhook_call.verified is True
    [mail] = setting["inbox"]
    assert mail["To"] == "privacy@vouchers.example"
    key = f"gdpr/{rows['financial-partner']['idempotency_key']}.json"
    dropped = setting["s3"].get_object(Bucket=BUCKET, Key=key)["Body"].read()

    later = dag.test(logical_date=NOW + timedelta(days=4))
    again = dag.test(logical_date=NOW + timedelta(days=4, minutes=5))
    assert str(later.state) == "success" and str(again.state) == "success"
    alerts = [m for m in setting["inbox"] if m["To"] == governance_airflow.COMPLIANCE_EMAIL]
    assert len(alerts) == 1, "compliance is alerted once"
    text = alerts[0].get_payload(decode=True).decode()
    for r in ("voucher-network", "financial-partner"):
        assert f"notice {rows[r]['notice_id']} to {r}" in text
    assert len(setting["receiver"].received) == 1 and len(setting["inbox"]) == 2  # nothing sent twice

    logs = "\n".join(line for line in "".join(capfd.readouterr()).splitlines() if "[mail.log]" not in line)
    assert "notices delivered" in logs
    payloads = webhook_call.body + mail.as_bytes() + dropped
    everything = (
        logs + "".join(xcoms(r) for r in (first, later, again)) + evidence_text(conn) + payloads.decode()
    ).lower()
    person = setting["person"]
    assert person["email"].lower() not in everything
    for personal in ("nordmann", "storgata", "kari"):
        assert personal not in everything, personal
