"""No notice lost or sent twice across a SIGKILL of the delivery process (TP-5): killed between
claim and send, and between send and record (the receiver kills the sender when the request
arrives), then a rerun once the claim is stale.

"Sent twice" with idempotency keys: a crash between send and record cannot be told apart from a
send that never arrived, so the rerun sends the message again, with the same idempotency key
(``webhook-id``). The recipient deduplicates on that key and acts once: at-least-once delivery,
exactly-once effect. What must never happen, and is asserted: a notice with no delivery at all
(lost), one delivered under two keys, the receiver seeing one key more than twice (one crash, one
rerun), or the row recorded acknowledged (and evidenced) more than once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from governance.db import transaction
from governance.notices import PSEUDONYM_KEY_ENV
from governance.notices.secrets import env_name
from tests.integration.notice_crash_worker import CONN_ID, policy_for
from tests.integration.notice_support import Receiver, acks, new_secret, notice_evidence, outbox, queue, seed_person

pytestmark = [pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def secret(conn, monkeypatch):
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, "crash-test-key-0123456789abcdef0123456789")
    value = new_secret()
    monkeypatch.setenv(env_name(CONN_ID), value)
    with transaction(conn) as cur:
        cur.execute("DELETE FROM governance.recipient_outbox")
    return value


def worker(db_url: str, url: str, mode: str, now: datetime) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'include'}{os.pathsep}{ROOT}"}
    args = [sys.executable, "-m", "tests.integration.notice_crash_worker", db_url, url, mode, now.isoformat()]
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def rerun(db_url: str, url: str, now: datetime) -> None:
    proc = worker(db_url, url, "deliver", now)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "survived" in out, err


def assert_acknowledged_once(conn, receiver: Receiver, max_seen: int) -> None:
    [row] = outbox(conn).values()
    assert row["state"] == "acknowledged" and row["acked_via"] == "response"
    keys = [r.key for r in receiver.received]
    assert set(keys) == {row["idempotency_key"]} and 1 <= len(keys) <= max_seen
    acked = [k for k, _ in notice_evidence(conn, row["notice_id"]) if k == "notices_acknowledged"]
    assert len(acked) == 1


def test_sigkill_between_claim_and_send(conn, db_url, secret):
    receiver = Receiver(acks, expect_secret=secret).start()
    try:
        policy = policy_for(receiver.url)
        queue(conn, policy, seed_person(conn, NOW), NOW)
        proc = worker(db_url, receiver.url, "claim-then-die", NOW)
        proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        [row] = outbox(conn).values()
        assert row["state"] == "sending" and receiver.received == []  # claimed, committed, not sent
        rerun(db_url, receiver.url, NOW + timedelta(minutes=1))  # not stale yet: left alone
        assert receiver.received == [] and outbox(conn)[row["notice_id"]]["state"] == "sending"
        rerun(db_url, receiver.url, NOW + timedelta(minutes=policy.notices.claim_timeout_minutes))
        assert_acknowledged_once(conn, receiver, max_seen=1)
        assert outbox(conn)[row["notice_id"]]["attempts"] == 2
    finally:
        receiver.stop()


def test_sigkill_between_send_and_record(conn, db_url, secret):
    victim: dict[str, int] = {}

    def kill_the_sender_first(attempt, headers, body):
        if attempt == 1:
            os.kill(victim["pid"], signal.SIGKILL)  # it sent; it will never record the answer
        return acks(attempt, headers, body)

    receiver = Receiver(kill_the_sender_first, expect_secret=secret).start()
    try:
        policy = policy_for(receiver.url)
        queue(conn, policy, seed_person(conn, NOW), NOW)
        proc = worker(db_url, receiver.url, "deliver", NOW)
        victim["pid"] = proc.pid
        proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        [row] = outbox(conn).values()
        assert row["state"] == "sending" and len(receiver.received) == 1  # received, not recorded
        rerun(db_url, receiver.url, NOW + timedelta(minutes=policy.notices.claim_timeout_minutes))
        assert_acknowledged_once(conn, receiver, max_seen=2)  # the same key twice: one effect
        rerun(db_url, receiver.url, NOW + timedelta(hours=1))  # nothing more is sent
        assert len(receiver.received) == 2
    finally:
        receiver.stop()
