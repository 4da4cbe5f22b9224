"""The recipients' acknowledgement callback (TP-5): ``POST /governance/notices/{id}/ack``, verified
with the recipient's Standard Webhooks secret, not Airflow's login. Tested with FastAPI's
TestClient on the ack app itself (``create_ack_app``: the route depends on no Airflow auth; its
database is the real PostgreSQL): a late ack by callback after a webhook accepted without acking;
a bad or missing signature 401; another recipient's secret 401; an unknown notice 404; a body not
naming the notice 422; an already acknowledged notice 409; and a recipient without a webhook 401."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from governance import evidence
from governance.db import connect, transaction
from governance.notices import PSEUDONYM_KEY_ENV
from governance.notices.delivery import deliver_due
from governance.notices.delivery_send import Channels, signed_headers
from governance.notices.secrets import EnvSecrets, env_name
from governance.policy import load_policy
from governance.policy.notify import Notify
from governance_airflow.api.acks import create_ack_app
from tests.integration.notice_support import (
    Receiver,
    accepts,
    new_secret,
    outbox,
    policy_with,
    queue,
    seed_person,
    webhook,
)

pytestmark = [pytest.mark.integration]

POLICY = load_policy()
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def setup(conn, db_url, monkeypatch):
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, "ack-test-key-0123456789abcdef0123456789")
    with transaction(conn) as cur:
        cur.execute("DELETE FROM governance.recipient_outbox")
    secret = new_secret()
    receiver = Receiver(accepts, expect_secret=secret).start()
    notify = {
        "delivery-carrier": webhook(monkeypatch, receiver.url, "carrier_hook", secret),
        "review-platform": webhook(monkeypatch, receiver.url, "review_hook", new_secret()),
        "voucher-network": Notify.model_validate({"email": {"to": "privacy@vouchers.example"}}),
    }
    policy = policy_with(POLICY, notify)
    queue(conn, policy, seed_person(conn, NOW), NOW)
    channels = Channels(secrets=EnvSecrets())
    deliver_due(conn, policy, channels, now=NOW, run_id="test")  # the e-mail one fails: no SMTP server
    channels.close()
    rows = {r["recipient_id"]: r for r in outbox(conn).values()}
    client = TestClient(create_ack_app(connect=lambda: connect(db_url), policy=lambda: policy, secrets=EnvSecrets()))
    yield client, rows, secret
    receiver.stop()


def post(client, notice_id, body, secret=None, headers=None):
    data = json.dumps(body).encode()
    sent = headers if headers is not None else signed_headers(secret, f"ack-{notice_id}", data)
    return client.post(f"/{notice_id}/ack", content=data, headers=sent)


def test_late_ack_by_signed_callback(conn, setup):
    client, rows, secret = setup
    carrier = rows["delivery-carrier"]
    assert carrier["state"] == "sent"  # 202 without an ack body: waiting for the callback
    answer = post(client, carrier["notice_id"], {"acknowledged": carrier["idempotency_key"]}, secret)
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "acknowledged"
    row = outbox(conn)[carrier["notice_id"]]
    assert row["state"] == "acknowledged" and row["acked_via"] == "callback"
    [entry] = evidence.entries(conn, run_id=f"notice-{carrier['notice_id']}", kind="notice_acknowledged")
    assert entry.details["via"] == "callback"
    again = post(client, carrier["notice_id"], {"acknowledged": carrier["idempotency_key"]}, secret)
    assert again.status_code == 409 and "already acknowledged" in again.json()["detail"]


def test_refusals(conn, setup):
    client, rows, secret = setup
    carrier = rows["delivery-carrier"]
    nid, key = carrier["notice_id"], carrier["idempotency_key"]
    assert post(client, 999999, {"acknowledged": "x"}, secret).status_code == 404
    assert post(client, nid, {"acknowledged": key}, new_secret()).status_code == 401  # wrong secret
    review = rows["review-platform"]  # the carrier's secret does not ack another recipient's notice
    assert post(client, review["notice_id"], {"acknowledged": review["idempotency_key"]}, secret).status_code == 401
    assert post(client, nid, {"acknowledged": key}, headers={"content-type": "application/json"}).status_code == 401
    signed = signed_headers(secret, "ack-1", json.dumps({"acknowledged": key}).encode())
    tampered = client.post(f"/{nid}/ack", content=json.dumps({"acknowledged": key, "x": 1}).encode(), headers=signed)
    assert tampered.status_code == 401
    assert post(client, nid, {"acknowledged": "request-0.other.erasure"}, secret).status_code == 422
    voucher = rows["voucher-network"]  # e-mail recipient: no secret, acknowledged by hand
    assert post(client, voucher["notice_id"], {"acknowledged": voucher["idempotency_key"]}, secret).status_code == 401
    assert outbox(conn)[nid]["state"] == "sent"  # nothing refused changed anything


@pytest.mark.slow
def test_the_callback_route_is_served_by_the_real_api_server_outside_airflow_login(
    conn, db_url, airflow_home, monkeypatch, tmp_path
):
    """The plugin mounts the ack app under /governance in a real ``airflow api-server``: the ack
    route answers by its own signature check (no Airflow token needed), while the request API
    still refuses an anonymous caller."""
    import requests as http

    from tests.integration.api_server import start_api_server

    monkeypatch.setenv(PSEUDONYM_KEY_ENV, "ack-test-key-0123456789abcdef0123456789")
    with transaction(conn) as cur:
        cur.execute("DELETE FROM governance.recipient_outbox")
    secret = new_secret()
    monkeypatch.setenv(env_name("recipient_delivery_carrier_webhook"), secret)  # the shipped policy's id
    queue(conn, policy_with(POLICY, {"delivery-carrier": POLICY.recipients[0].notify}), seed_person(conn, NOW), NOW)
    [row] = outbox(conn).values()
    with transaction(conn) as cur:  # as a delivery that got a 2xx without an ack body leaves it
        cur.execute(
            "UPDATE governance.recipient_outbox SET state = 'sent', attempts = 1, sent_at = %s, claimed_at = %s",
            (NOW, NOW),
        )
    server = start_api_server(tmp_path, users={"clerk": "user"}, db_url=db_url)
    try:
        base = f"{server.url}/governance"
        assert http.get(f"{base}/requests", timeout=30).status_code == 401  # Airflow's login still guards it
        unsigned = http.post(f"{base}/notices/{row['notice_id']}/ack", json={"acknowledged": "x"}, timeout=30)
        assert unsigned.status_code == 401 and "Standard Webhooks" in unsigned.json()["detail"]
        body = json.dumps({"acknowledged": row["idempotency_key"]}).encode()
        unknown = http.post(f"{base}/notices/999999/ack", data=body, timeout=30)
        assert unknown.status_code == 404
        signed = signed_headers(secret, "ack-real-1", body)
        answer = http.post(f"{base}/notices/{row['notice_id']}/ack", data=body, headers=signed, timeout=30)
        assert answer.status_code == 200, (answer.text, server.log()[-3000:])
        assert outbox(conn)[row["notice_id"]]["acked_via"] == "callback"
        again = http.post(f"{base}/notices/{row['notice_id']}/ack", data=body, headers=signed, timeout=30)
        assert again.status_code == 409
    finally:
        server.stop()
