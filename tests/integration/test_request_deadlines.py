"""Request deadlines (REQ-1) on a real PostgreSQL: an open request is reported once when 7 days are
left (not at 8, nor at 7 days and a second), once when late, again for a new deadline after an
extension, never when closed; each report is marked and evidenced, a rerun reports nothing, and the
alert names request ids and kinds, never the person."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from governance import evidence, requests
from governance.db import transaction
from governance.policy import load_policy
from governance.requests.deadlines import DUE_SOON

pytestmark = [pytest.mark.integration]

POLICY = load_policy()
RECEIVED = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)
DUE = datetime(2026, 11, 5, 9, 0, tzinfo=UTC)


@pytest.fixture
def request_id(conn) -> int:
    """A fresh open access request by a guest address, received at RECEIVED (due DUE)."""
    email = f"guest.{uuid.uuid4().hex[:8]}@example.no"
    request = requests.open_request(
        conn,
        POLICY,
        kind="access",
        email=email,
        channel="email",
        opened_by="support",
        received_at=RECEIVED,
        now=RECEIVED,
    )
    assert request.due_at == DUE
    return request.request_id


def ids(found) -> list[int]:
    return [r.request_id for r in found]


def alerts_of(conn, request_id):
    found = [e for e in evidence.entries(conn, run_id=f"request-{request_id}") if e.kind == "request_deadline_alert"]
    conn.rollback()
    return found


def test_seven_days_left_alerts_once_eight_does_not_and_late_alerts_once(conn, request_id):
    for now in (DUE - timedelta(days=8), DUE - DUE_SOON - timedelta(seconds=1)):
        alerts = requests.check_deadlines(conn, POLICY, now=now)
        assert request_id not in ids(alerts.due_soon) + ids(alerts.late)
    now = DUE - DUE_SOON
    alerts = requests.check_deadlines(conn, POLICY, now=now)
    assert request_id in ids(alerts.due_soon) and request_id not in ids(alerts.late)
    marked = next(r for r in alerts.due_soon if r.request_id == request_id)
    assert marked.due_soon_alerted_at == now and marked.days_left(now) == 7
    again = requests.check_deadlines(conn, POLICY, now=now + timedelta(days=3))
    assert request_id not in ids(again.due_soon) + ids(again.late)  # already told
    assert request_id not in ids(requests.check_deadlines(conn, POLICY, now=DUE - timedelta(seconds=1)).late)
    late = requests.check_deadlines(conn, POLICY, now=DUE)  # exactly at the deadline: late
    assert request_id in ids(late.late)
    assert request_id not in ids(requests.check_deadlines(conn, POLICY, now=DUE + timedelta(days=2)).late)
    found = alerts_of(conn, request_id)
    assert [(e.step, e.details["alert"], e.counts) for e in found] == [
        ("due_soon:2026-11-05T09:00:00Z", "due_soon", {"alerts": 1}),
        ("late:2026-11-05T09:00:00Z", "late", {"alerts": 1}),
    ]
    assert found[0].requirements == ["REQ-1", "ACC-1"] and found[0].details["days_left"] == 7
    assert evidence.verify(conn).ok


def test_a_request_opened_late_is_reported_late_only(conn):
    email = f"late.{uuid.uuid4().hex[:8]}@example.no"
    request = requests.open_request(
        conn,
        POLICY,
        kind="erasure",
        email=email,
        channel="post",
        opened_by="support",
        received_at=RECEIVED - timedelta(days=60),
        now=RECEIVED,
    )
    alerts = requests.check_deadlines(conn, POLICY, now=RECEIVED)
    assert request.request_id in ids(alerts.late) and request.request_id not in ids(alerts.due_soon)


def test_an_extension_gets_its_own_seven_day_alert(conn, request_id):
    now = DUE - DUE_SOON
    assert request_id in ids(requests.check_deadlines(conn, POLICY, now=now).due_soon)
    extended = requests.extend(conn, POLICY, request_id, months=1, reason="complex request", now=now)
    assert extended.deadline == datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
    assert request_id not in ids(requests.check_deadlines(conn, POLICY, now=now + timedelta(days=1)).due_soon)
    again = requests.check_deadlines(conn, POLICY, now=extended.deadline - DUE_SOON)
    assert request_id in ids(again.due_soon)
    assert [e.step for e in alerts_of(conn, request_id)] == [
        "due_soon:2026-11-05T09:00:00Z",
        "due_soon:2026-12-05T09:00:00Z",
    ]


def test_closed_requests_are_never_alerted(conn, request_id):
    requests.withdraw(conn, POLICY, request_id, by="support", now=RECEIVED)
    alerts = requests.check_deadlines(conn, POLICY, now=DUE + timedelta(days=30))
    assert request_id not in ids(alerts.due_soon) + ids(alerts.late)
    with transaction(conn, read_only=True) as cur:
        closed = requests.fetch(cur, request_id)
    assert closed.late_alerted_at is None and closed.due_soon_alerted_at is None


def test_the_alert_names_ids_kinds_and_deadlines_never_the_person(conn):
    email = f"kari.{uuid.uuid4().hex[:8]}@example.no"
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO shop.accounts (email, password_hash, created_at) VALUES (%s, 'x', %s) RETURNING account_id",
            (email, RECEIVED - timedelta(days=400)),
        )
        (account_id,) = cur.fetchone()
    conn.commit()
    soon = requests.open_request(
        conn,
        POLICY,
        kind="portability",
        account_id=account_id,
        channel="web_form",
        opened_by="support",
        received_at=RECEIVED + timedelta(days=20),
        now=RECEIVED + timedelta(days=20),
    )
    late = requests.open_request(
        conn,
        POLICY,
        kind="access",
        email=email,
        reply_to=email,
        channel="email",
        opened_by="support",
        received_at=RECEIVED - timedelta(days=40),
        now=RECEIVED - timedelta(days=40),
    )
    now = soon.due_at - timedelta(days=3)
    alerts = requests.check_deadlines(conn, POLICY, now=now)
    assert soon.request_id in ids(alerts.due_soon) and late.request_id in ids(alerts.late)
    subject, body = requests.alert_message(alerts, now=now)
    assert f"{len(alerts.late)} late" in subject and f"{len(alerts.due_soon)} due within 7 days" in subject
    assert f"request {soon.request_id} (portability, received): due 2026-11-25T09:00:00Z, 3 day(s) left" in body
    assert f"request {late.request_id} (access, received): due " in body and "day(s) late" in body
    assert "docs/runbook.md" in body
    text = (subject + body).lower()
    assert email not in text and email.split("@")[0] not in text and "@" not in text
    assert f"account {account_id}" not in text and str(late.email_sha256)[:12] not in text
    assert requests.check_deadlines(conn, POLICY, now=now) == requests.DeadlineAlerts([], [])
