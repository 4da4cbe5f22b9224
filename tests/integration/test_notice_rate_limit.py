"""The per-recipient rate limit never starves the other recipients (TP-5, #12): a recipient limited
to a few notices a minute with a large backlog queued first, and an unlimited one with a few
notices queued after it. Every delivery run sends the unlimited recipient's notices at once, the
limited one gets exactly its limit per minute window across successive runs, and at the end every
notice was received exactly once (one idempotency key each, no key twice) and acknowledged. Real
PostgreSQL, real local webhooks (Standard Webhooks signatures verified by the reference library)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from governance.db import transaction
from governance.notices import PSEUDONYM_KEY_ENV
from governance.notices.delivery import deliver_due
from governance.notices.delivery_send import Channels
from governance.notices.secrets import EnvSecrets
from governance.policy import load_policy
from tests.integration.notice_support import Receiver, acks, new_secret, outbox, policy_with, webhook

pytestmark = [pytest.mark.integration]

POLICY = load_policy()
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
LIMITED, OTHER = "delivery-carrier", "review-platform"
PSEUDONYM = "ab" * 32
KEY_ID = "0123456789abcdef"


@pytest.fixture(autouse=True)
def clean(conn, monkeypatch):
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, "rate-limit-test-key-0123456789abcdef0123456789")
    with transaction(conn) as cur:
        cur.execute("DELETE FROM governance.recipient_outbox")


@pytest.fixture
def receivers():
    started: list[Receiver] = []

    def start(secret: str) -> Receiver:
        started.append(Receiver(acks, expect_secret=secret).start())
        return started[-1]

    yield start
    for receiver in started:
        receiver.stop()


def backlog(conn, recipient: str, count: int, prefix: str) -> None:
    """``count`` queued notices (a sweep's, as retention_ended rows are) for ``recipient``, due at NOW."""
    with transaction(conn) as cur:
        cur.execute(
            "INSERT INTO governance.recipient_outbox (run_id, recipient_id, event, categories, tables, record_counts, "
            "subject_pseudonyms, pseudonym_key_id, order_ids, idempotency_key, created_at, next_attempt_at) "
            "SELECT 'rate-test', %(r)s, 'retention_ended', '{CAT-3}', '{shop.orders}', '{\"shop.orders\": 1}', "
            "ARRAY[%(p)s], %(k)s, ARRAY[i]::bigint[], %(prefix)s || i, %(now)s, %(now)s "
            "FROM generate_series(1, %(n)s) i",
            {"r": recipient, "p": PSEUDONYM, "k": KEY_ID, "prefix": prefix, "now": NOW, "n": count},
        )


def setup(conn, monkeypatch, receivers, *, per_minute: int, limited: int, others: int, **settings):
    limited_secret, other_secret = new_secret(), new_secret()
    limited_rx, other_rx = receivers(limited_secret), receivers(other_secret)
    policy = policy_with(
        POLICY,
        {
            LIMITED: webhook(
                monkeypatch, limited_rx.url, "limited_hook", limited_secret, rate_limit_per_minute=per_minute
            ),
            OTHER: webhook(monkeypatch, other_rx.url, "other_hook", other_secret),
        },
        **settings,
    )
    backlog(conn, LIMITED, limited, "limited-")  # queued first: the lower notice ids
    backlog(conn, OTHER, others, "other-")
    return policy, limited_rx, other_rx


def run(conn, policy, now, **kwargs) -> dict[str, int]:
    """One delivery run at ``now``; the notices acknowledged in it, by recipient."""
    before = {i for i, row in outbox(conn).items() if row["state"] == "acknowledged"}
    channels = Channels(secrets=EnvSecrets(), timeout=5)
    try:
        deliver_due(conn, policy, channels, now=now, run_id=f"deliver-{now.isoformat()}", **kwargs)
    finally:
        channels.close()
    rows = outbox(conn)
    return dict(
        Counter(rows[i]["recipient_id"] for i in rows if rows[i]["state"] == "acknowledged" and i not in before)
    )


def assert_each_received_once(conn, *receivers_: Receiver) -> None:
    rows = outbox(conn)
    keys = [r.key for rx in receivers_ for r in rx.received]
    assert all(r.verified for rx in receivers_ for r in rx.received)
    assert len(keys) == len(set(keys)), "a notice was sent twice"
    assert sorted(keys) == sorted(row["idempotency_key"] for row in rows.values()), "a notice was lost"
    assert {row["state"] for row in rows.values()} == {"acknowledged"}
    assert {row["attempts"] for row in rows.values()} == {1}


def test_a_limited_backlog_never_starves_the_others(conn, monkeypatch, receivers):
    """2 a minute against 40 queued first; the other recipient's 3 all go in the first run. Runs
    every 5 minutes, plus one 30 s after a run (the same minute window: nothing for the limited)."""
    policy, limited_rx, other_rx = setup(conn, monkeypatch, receivers, per_minute=2, limited=40, others=3, batch_size=4)
    assert run(conn, policy, NOW) == {OTHER: 3, LIMITED: 2}
    assert run(conn, policy, NOW + timedelta(seconds=30)) == {}  # within the minute of the last 2
    assert run(conn, policy, NOW + timedelta(seconds=60)) == {LIMITED: 2}  # a new minute window
    backlog(conn, OTHER, 2, "other-late-")  # more for the other recipient while the backlog waits
    at = NOW + timedelta(seconds=60)
    assert run(conn, policy, at + timedelta(minutes=5)) == {OTHER: 2, LIMITED: 2}
    sent = 6
    while sent < 40:
        at += timedelta(minutes=5)
        assert run(conn, policy, at + timedelta(minutes=5)) == {LIMITED: 2}
        sent += 2
    assert run(conn, policy, at + timedelta(minutes=10)) == {}
    assert_each_received_once(conn, limited_rx, other_rx)


def test_a_limit_above_what_one_run_sends_shares_every_batch(conn, monkeypatch, receivers):
    """A limit larger than a run can send (50 a minute; batches of 5, 4 batches a run): the limited
    recipient's backlog, queued first, must not fill every batch of the run; the minute's limit
    still holds across the runs in it."""
    policy, limited_rx, other_rx = setup(
        conn, monkeypatch, receivers, per_minute=50, limited=60, others=3, batch_size=5
    )
    assert run(conn, policy, NOW, max_batches=4) == {OTHER: 3, LIMITED: 17}
    assert run(conn, policy, NOW + timedelta(seconds=10), max_batches=4) == {LIMITED: 20}
    assert run(conn, policy, NOW + timedelta(seconds=20), max_batches=4) == {LIMITED: 13}  # 50 in the minute
    assert run(conn, policy, NOW + timedelta(seconds=30), max_batches=4) == {}
    assert run(conn, policy, NOW + timedelta(seconds=61), max_batches=4) == {LIMITED: 10}
    assert_each_received_once(conn, limited_rx, other_rx)
