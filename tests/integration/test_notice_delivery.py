"""Delivery of the recipients' notices (TP-5, TP-2, GDPR art. 19) against real local receivers on
loopback: an http.server webhook that acks, one that fails twice then acks, one that times out, one
that rejects a bad signature (checked with the Standard Webhooks reference library, which accepts
what we sign), a real SMTP server (aiosmtpd), the object-store drop on moto's S3 endpoint, a dead
letter that alerts on-call, the per-recipient rate limit, a stale claim sent again, the overdue
acknowledgement alert to compliance, and a rectification whose corrected value travels only inside
a JWE to the recipient's public key. Time is driven by passing ``now``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from joserfc import jwe
from joserfc.jwk import ECKey, RSAKey

from governance.breach import SmtpServer
from governance.cli import main
from governance.db import transaction
from governance.notices import PSEUDONYM_KEY_ENV
from governance.notices.acks import NoticeConflict, NoticeNotFound, acknowledge, overdue_alerts, retry
from governance.notices.delivery import Alerts, deliver_due
from governance.notices.delivery_claim import claim
from governance.notices.delivery_send import Channels
from governance.notices.messages import ALGORITHMS
from governance.notices.secrets import EnvSecrets, env_name
from governance.policy import load_policy
from governance.policy.notify import Notify
from tests.integration.notice_support import (
    Receiver,
    accepts,
    acks,
    fails_then_acks,
    new_secret,
    notice_evidence,
    outbox,
    policy_with,
    queue,
    seed_person,
    webhook,
)

pytestmark = [pytest.mark.integration]

POLICY = load_policy()
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
CONN = "recipient_delivery_carrier_webhook"


@pytest.fixture(autouse=True)
def clean(conn, monkeypatch):
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, "delivery-test-key-0123456789abcdef0123456789")
    with transaction(conn) as cur:
        cur.execute("DELETE FROM governance.recipient_outbox")


@pytest.fixture
def receivers():
    started: list[Receiver] = []

    def start(behaviour, **kwargs) -> Receiver:
        started.append(Receiver(behaviour, **kwargs).start())
        return started[-1]

    yield start
    for receiver in started:
        receiver.stop()


def deliver(conn, policy, now, alerts=None, **kwargs):
    channels = Channels(secrets=EnvSecrets(), timeout=policy.notices.send_timeout_seconds, **kwargs)
    try:
        return deliver_due(conn, policy, channels, now=now, run_id="test", alerts=alerts)
    finally:
        channels.close()


def carrier_policy(monkeypatch, receiver, secret, **settings):
    return policy_with(POLICY, {"delivery-carrier": webhook(monkeypatch, receiver.url, CONN, secret)}, **settings)


def test_webhook_that_acks_in_its_response(conn, monkeypatch, receivers):
    secret = new_secret()
    receiver = receivers(acks, expect_secret=secret)
    policy = carrier_policy(monkeypatch, receiver, secret)
    person = seed_person(conn, NOW)
    request_id = queue(conn, policy, person, NOW)
    done = deliver(conn, policy, NOW)
    assert done.counts == {"acknowledged": 1}
    [row] = outbox(conn).values()
    assert (row["state"], row["attempts"], row["acked_via"], row["last_error"]) == ("acknowledged", 1, "response", None)
    [got] = receiver.received
    assert got.verified is True  # the reference library's Webhook.verify accepts our signature
    assert got.key == row["idempotency_key"] == f"request-{request_id}.delivery-carrier.erasure"
    message = got.json()
    assert message["type"] == "notice.erasure"
    data = message["data"]
    assert data["notice_id"] == row["notice_id"] and data["subject"]["order_ids"] == [person["order_id"]]
    assert len(data["subject"]["pseudonyms"]) == 2 and data["record_counts"] == {"shop.orders": 1}
    assert person["email"].lower() not in got.body.decode().lower() and "Kari" not in got.body.decode()
    assert [k for k, _ in notice_evidence(conn, row["notice_id"])] == ["notices_sending", "notices_acknowledged"]
    assert deliver(conn, policy, NOW + timedelta(days=1)).counts == {}  # nothing due: sent once


def test_receiver_that_fails_twice_then_acks(conn, monkeypatch, receivers):
    secret = new_secret()
    receiver = receivers(fails_then_acks(2), expect_secret=secret)
    policy = carrier_policy(monkeypatch, receiver, secret)
    queue(conn, policy, seed_person(conn, NOW), NOW)
    states = []
    for hours in (0, 2, 4):
        deliver(conn, policy, NOW + timedelta(hours=hours))
        [row] = outbox(conn).values()
        states.append(row["state"])
        if row["state"] == "failed":
            assert row["last_error"] == "HTTP 500"
            wait = row["next_attempt_at"] - (NOW + timedelta(hours=hours))
            assert timedelta(0) < wait <= timedelta(seconds=policy.notices.retry_max_seconds)
            assert deliver(conn, policy, NOW + timedelta(hours=hours)).counts == {}  # not due again yet
    assert states == ["failed", "failed", "acknowledged"]
    assert row["attempts"] == 3 and len(receiver.received) == 3
    assert {r.key for r in receiver.received} == {row["idempotency_key"]}  # one message id, three attempts
    entries = [(k, d) for k, d in notice_evidence(conn, row["notice_id"]) if k != "notices_sending"]
    assert [k for k, _ in entries] == ["notices_failed", "notices_failed", "notices_acknowledged"]
    assert entries[0][1]["errors"] == {str(row["notice_id"]): "HTTP 500"}


def test_receiver_that_times_out(conn, monkeypatch, receivers):
    secret = new_secret()
    receiver = receivers(lambda n, h, b: (200, b"{}", 3.0), expect_secret=secret)
    policy = carrier_policy(monkeypatch, receiver, secret, send_timeout_seconds=0.5)
    queue(conn, policy, seed_person(conn, NOW), NOW)
    assert deliver(conn, policy, NOW).counts == {"failed": 1}
    [row] = outbox(conn).values()
    assert row["state"] == "failed" and row["last_error"] == "ReadTimeout" and row["next_attempt_at"] > NOW


def test_receiver_rejects_a_bad_signature(conn, monkeypatch, receivers):
    receiver = receivers(acks, expect_secret=new_secret())  # expects another secret than ours
    policy = carrier_policy(monkeypatch, receiver, new_secret())
    queue(conn, policy, seed_person(conn, NOW), NOW)
    assert deliver(conn, policy, NOW).counts == {"failed": 1}
    [row] = outbox(conn).values()
    assert row["last_error"] == "HTTP 401" and receiver.received[0].verified is False


def test_dead_letter_alerts_on_call(conn, monkeypatch, receivers, smtp_inbox):
    secret = new_secret()
    receiver = receivers(lambda n, h, b: (503, b"{}", 0.0), expect_secret=secret)
    policy = carrier_policy(monkeypatch, receiver, secret, max_attempts=2)
    queue(conn, policy, seed_person(conn, NOW), NOW)
    port = int(json.loads(__import__("os").environ["AIRFLOW_CONN_GOVERNANCE_SMTP"])["port"])
    alerts = Alerts(SmtpServer("127.0.0.1", port), to="oncall@example.invalid", runbook_url="https://runbook")
    deliver(conn, policy, NOW, alerts=alerts)
    done = deliver(conn, policy, NOW + timedelta(hours=2), alerts=alerts)
    [row] = outbox(conn).values()
    assert row["state"] == "dead" and row["attempts"] == 2 and done.dead == [row["notice_id"]]
    [alert] = smtp_inbox
    assert alert["To"] == "oncall@example.invalid"
    assert f"notice {row['notice_id']}" in alert["Subject"] and "delivery-carrier" in alert["Subject"]
    assert "A recipient notice is dead" in alert.get_payload(decode=True).decode()
    assert deliver(conn, policy, NOW + timedelta(days=1), alerts=alerts).counts == {}  # dead is not retried
    assert retry(conn, policy, row["notice_id"], now=NOW + timedelta(days=1))["was"] == "dead"
    assert outbox(conn)[row["notice_id"]]["state"] == "failed"


def test_too_old_a_notice_goes_dead_on_failure(conn, monkeypatch, receivers):
    secret = new_secret()
    receiver = receivers(lambda n, h, b: (500, b"{}", 0.0), expect_secret=secret)
    policy = carrier_policy(monkeypatch, receiver, secret, max_age_days=1)
    queue(conn, policy, seed_person(conn, NOW), NOW)
    assert deliver(conn, policy, NOW + timedelta(days=2)).counts == {"dead": 1}


def test_email_recipient_over_smtp_then_manual_ack(conn, smtp_inbox, db_url):
    import os

    port = int(json.loads(os.environ["AIRFLOW_CONN_GOVERNANCE_SMTP"])["port"])
    policy = policy_with(
        POLICY, {"voucher-network": Notify.model_validate({"email": {"to": "privacy@vouchers.example"}})}
    )
    person = seed_person(conn, NOW)
    queue(conn, policy, person, NOW)
    assert deliver(conn, policy, NOW, smtp=SmtpServer("127.0.0.1", port)).counts == {"sent": 1}
    [row] = outbox(conn).values()
    [mail] = smtp_inbox
    assert mail["To"] == "privacy@vouchers.example" and row["idempotency_key"] in mail["Subject"]
    assert json.loads(mail.get_payload(decode=True))["data"]["notice_id"] == row["notice_id"]
    assert person["email"].lower() not in mail.as_string().lower()
    with pytest.raises(NoticeNotFound):
        acknowledge(conn, policy, 999999, via="manual", by="dpo", now=NOW)
    acknowledge(conn, policy, row["notice_id"], via="manual", by="dpo", now=NOW + timedelta(days=1))
    assert outbox(conn)[row["notice_id"]]["acked_via"] == "manual"
    with pytest.raises(NoticeConflict, match="already acknowledged"):
        acknowledge(conn, policy, row["notice_id"], via="manual", by="dpo", now=NOW)


def test_object_store_drop(conn, s3):
    s3.create_bucket(Bucket="partner-finance-drop", CreateBucketConfiguration={"LocationConstraint": "eu-north-1"})
    drop = Notify.model_validate({"drop": {"bucket": "partner-finance-drop", "prefix": "gdpr-notices/"}})
    policy = policy_with(POLICY, {"financial-partner": drop})
    person = seed_person(conn, NOW)
    queue(conn, policy, person, NOW)
    assert deliver(conn, policy, NOW, s3=s3).counts == {"sent": 1}
    [row] = outbox(conn).values()
    got = s3.get_object(Bucket="partner-finance-drop", Key=f"gdpr-notices/{row['idempotency_key']}.json")
    body = got["Body"].read()
    assert json.loads(body)["data"]["idempotency_key"] == row["idempotency_key"]
    assert person["email"].lower().encode() not in body.lower()


def test_rate_limit_per_recipient(conn, monkeypatch, receivers):
    secret = new_secret()
    receiver = receivers(acks, expect_secret=secret)
    notify = webhook(monkeypatch, receiver.url, CONN, secret, rate_limit_per_minute=2)
    policy = policy_with(POLICY, {"delivery-carrier": notify})
    queue(conn, policy, seed_person(conn, NOW), NOW, events=("erasure", "restriction", "objection", "rectification"))
    assert deliver(conn, policy, NOW).counts == {"acknowledged": 2}
    assert deliver(conn, policy, NOW + timedelta(seconds=30)).counts == {}  # still the same minute
    assert deliver(conn, policy, NOW + timedelta(seconds=61)).counts == {"acknowledged": 2}
    assert len(receiver.received) == 4


def test_stale_claim_is_sent_again_with_the_same_key(conn, monkeypatch, receivers):
    secret = new_secret()
    receiver = receivers(acks, expect_secret=secret)
    policy = carrier_policy(monkeypatch, receiver, secret)
    queue(conn, policy, seed_person(conn, NOW), NOW)
    [claimed] = claim(conn, policy, now=NOW, run_id="crashed")  # the sender dies here
    assert outbox(conn)[claimed.notice_id]["state"] == "sending"
    assert deliver(conn, policy, NOW + timedelta(minutes=5)).counts == {}  # not stale yet
    stale = NOW + timedelta(minutes=policy.notices.claim_timeout_minutes)
    assert deliver(conn, policy, stale).counts == {"acknowledged": 1}
    assert outbox(conn)[claimed.notice_id]["attempts"] == 2 and len(receiver.received) == 1


def test_ack_overdue_alerts_compliance_once(conn, monkeypatch, receivers, smtp_inbox):
    import os

    secret = new_secret()
    receiver = receivers(accepts, expect_secret=secret)
    policy = carrier_policy(monkeypatch, receiver, secret, ack_within_days=3)
    queue(conn, policy, seed_person(conn, NOW), NOW)
    assert deliver(conn, policy, NOW).counts == {"sent": 1}
    port = int(json.loads(os.environ["AIRFLOW_CONN_GOVERNANCE_SMTP"])["port"])
    smtp = SmtpServer("127.0.0.1", port)
    assert overdue_alerts(conn, policy, smtp, to="compliance@example.invalid", now=NOW + timedelta(days=2)) == []
    [row] = outbox(conn).values()
    late = NOW + timedelta(days=3, minutes=1)
    assert overdue_alerts(conn, policy, smtp, to="compliance@example.invalid", now=late) == [row["notice_id"]]
    assert overdue_alerts(conn, policy, smtp, to="compliance@example.invalid", now=late) == []  # once
    [mail] = smtp_inbox
    assert (
        mail["To"] == "compliance@example.invalid"
        and f"notice {row['notice_id']}" in mail.get_payload(decode=True).decode()
    )


def test_rectification_values_only_inside_a_jwe(conn, monkeypatch, receivers):
    from governance import requests
    from governance.requests.rectification import rectify

    secret = new_secret()
    receiver = receivers(acks, expect_secret=secret)
    private = RSAKey.generate_key(2048)
    monkeypatch.setenv(env_name("recipient_delivery_carrier_jwk"), json.dumps(private.as_dict(private=False)))
    notify = webhook(monkeypatch, receiver.url, CONN, secret, encryption_key_conn="recipient_delivery_carrier_jwk")
    policy = policy_with(POLICY, {"delivery-carrier": notify})
    person = seed_person(conn, NOW)
    request = requests.open_request(
        conn, policy, kind="rectification", email=person["email"], channel="email", opened_by="support", now=NOW
    )
    requests.verify(conn, policy, request.request_id, verified_by="support", method="signed_in_account", now=NOW)
    rectify(conn, policy, request.request_id, corrections={"shop.orders": {"delivery_street": "Nyveien 7B"}}, now=NOW)
    assert deliver(conn, policy, NOW).counts == {"acknowledged": 1}
    [got] = receiver.received
    assert b"Nyveien" not in got.body
    data = got.json()["data"]
    assert data["columns"] == {"shop.orders": ["delivery_street"]}
    opened = jwe.decrypt_compact(data["corrected_values_jwe"], private, algorithms=ALGORITHMS)
    assert opened.protected["alg"] == "RSA-OAEP-256" and opened.protected["enc"] == "A256GCM"
    assert json.loads(opened.plaintext) == {"shop.orders": {"delivery_street": "Nyveien 7B"}}


def test_a_private_key_in_the_key_connection_is_refused(conn, monkeypatch, receivers):
    from governance.errors import SettingsError
    from governance.notices.messages import public_key

    private = ECKey.generate_key("P-256")
    with pytest.raises(SettingsError, match="private key"):
        public_key(json.dumps(private.as_dict(private=True)), "recipient_x_jwk")
    with pytest.raises(SettingsError, match="public JWK"):
        public_key("not json", "recipient_x_jwk")


def test_notices_cli_show_retry_ack(conn, db_url, monkeypatch, receivers, capsys):
    secret = new_secret()
    receiver = receivers(lambda n, h, b: (500, b"{}", 0.0), expect_secret=secret)
    policy = carrier_policy(monkeypatch, receiver, secret)
    queue(conn, policy, seed_person(conn, NOW), NOW)
    deliver(conn, policy, NOW)
    [row] = outbox(conn).values()
    nid = str(row["notice_id"])
    at = ["--db-url", db_url, "--now", "2026-11-02T13:00:00Z"]
    assert main(["notices", "show", nid, "--json", *at]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["state"] == "failed" and shown["last_error"] == "HTTP 500" and shown["pseudonyms"] == 2
    assert main(["notices", "retry", nid, *at]) == 0
    assert outbox(conn)[row["notice_id"]]["next_attempt_at"] == datetime(2026, 11, 2, 13, tzinfo=UTC)
    capsys.readouterr()
    assert main(["notices", "ack", nid, "--by", "dpo", *at]) == 0
    assert outbox(conn)[row["notice_id"]]["acked_via"] == "manual"
    assert main(["notices", "ack", nid, "--by", "dpo", *at]) == 2
    assert "already acknowledged" in capsys.readouterr().err
    assert main(["notices", "ack", "999999", "--by", "dpo", *at]) == 2
    assert main(["notices", "show", "999999", *at]) == 2


def test_a_dead_letter_whose_alert_cannot_be_sent_fails_the_run(conn, monkeypatch, receivers):
    import socket

    from governance.errors import NoticeDeliveryError

    secret = new_secret()
    receiver = receivers(lambda n, h, b: (503, b"{}", 0.0), expect_secret=secret)
    policy = carrier_policy(monkeypatch, receiver, secret, max_attempts=1)
    queue(conn, policy, seed_person(conn, NOW), NOW)
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    alerts = Alerts(SmtpServer("127.0.0.1", port, timeout=2), to="oncall@example.invalid", runbook_url="x")
    with pytest.raises(NoticeDeliveryError, match="are dead and on-call could not be e-mailed"):
        deliver(conn, policy, NOW, alerts=alerts)
    [row] = outbox(conn).values()
    assert row["state"] == "dead"  # recorded before the alert was tried


def test_a_rate_limited_backlog_does_not_hold_up_other_recipients(conn, monkeypatch, receivers):
    secret = new_secret()
    receiver = receivers(acks, expect_secret=secret)
    policy = policy_with(
        POLICY,
        {
            "delivery-carrier": webhook(monkeypatch, receiver.url, CONN, secret, rate_limit_per_minute=1),
            "review-platform": webhook(monkeypatch, receiver.url, "review_hook", secret),
        },
        batch_size=2,
    )
    queue(conn, policy, seed_person(conn, NOW), NOW, events=("erasure", "restriction", "objection", "rectification"))
    assert deliver(conn, policy, NOW).counts == {"acknowledged": 5}
    states = [(r["recipient_id"], r["state"]) for r in outbox(conn).values()]
    assert states.count(("review-platform", "acknowledged")) == 4
    assert states.count(("delivery-carrier", "acknowledged")) == 1  # one a minute


def test_an_acknowledged_notice_loses_its_payload_after_the_window(conn, monkeypatch, receivers):
    """RET-9: pseudonyms and order ids go RET-9-notices (P30D) after the ack; the row stays."""
    import psycopg2

    from governance.notices.payloads import expire_payloads

    secret = new_secret()
    receiver = receivers(acks, expect_secret=secret)
    policy = carrier_policy(monkeypatch, receiver, secret)
    queue(conn, policy, seed_person(conn, NOW), NOW, events=("erasure", "restriction"))
    with transaction(conn) as cur:  # the second is never delivered: it keeps its payload
        cur.execute("UPDATE governance.recipient_outbox SET next_attempt_at = %s WHERE event = 'restriction'",
                    (NOW + timedelta(days=400),))  # fmt: skip
    deliver(conn, policy, NOW)
    acked = [r for r in outbox(conn).values() if r["state"] == "acknowledged"]
    [row] = acked
    assert expire_payloads(conn, policy, now=NOW + timedelta(days=29, hours=23)) == []
    later = NOW + timedelta(days=30)
    assert expire_payloads(conn, policy, now=later) == [row["notice_id"]]
    assert expire_payloads(conn, policy, now=later + timedelta(days=1)) == []  # once
    with transaction(conn, read_only=True) as cur:
        cur.execute(
            "SELECT notice_id, state, cardinality(subject_pseudonyms), cardinality(order_ids), payload_removed_at "
            "FROM governance.recipient_outbox ORDER BY notice_id"
        )
        rows = cur.fetchall()
    assert rows[0] == (row["notice_id"], "acknowledged", 0, 0, later)
    assert rows[1][2:4] == (2, 1) and rows[1][4] is None
    assert [k for k, _ in notice_evidence(conn, row["notice_id"])][-1] == "notice_payloads_removed"
    with pytest.raises(psycopg2.errors.CheckViolation), transaction(conn) as cur:  # only when acknowledged
        cur.execute(
            "UPDATE governance.recipient_outbox SET subject_pseudonyms = '{}', order_ids = '{}', "
            "payload_removed_at = %s WHERE notice_id = %s",
            (later, rows[1][0]),
        )
