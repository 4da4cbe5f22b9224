"""The audit's rights checks for the recipients' notices (#12 item 5) against a real PostgreSQL,
moto S3 and GX: ``notices_acknowledged.sql`` (TP-5) finds a notice sent longer ago than
``notices.ack_within_days`` with neither an acknowledgement nor the compliance alert, and not once
alerted or acknowledged; ``notice_payloads_expired.sql`` (RET-9, TP-5) finds an acknowledged notice
still holding its pseudonyms and order ids past the ``RET-9-notices`` window, and not once emptied
(``governance.notices.payloads.expire_payloads``). The record ids are notice ids only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from governance.audit import run_audit
from governance.audit.predicates import audit_parameters
from governance.audit.rendering import render_markers
from governance.audit.rights import load_checks
from governance.db import transaction
from governance.errors import AuditError
from governance.notices import PSEUDONYM_KEY_ENV
from governance.notices.payloads import expire_payloads
from governance.policy import load_policy
from governance_dev.loader import ensure_store_buckets
from tests.integration.notice_support import outbox, queue, seed_person

pytestmark = [pytest.mark.integration]

POLICY = load_policy()
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
ACKED = "notices-acknowledged"
PAYLOADS = "notice-payloads-expired"


@pytest.fixture
def notices(conn, s3, monkeypatch) -> list[int]:
    """Two notices of one request (an erasure and a restriction), queued at NOW; their ids."""
    ensure_store_buckets(s3, POLICY)  # every bucket the audit lists
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, "notice-audit-key-0123456789abcdef0123456789")
    queue(conn, POLICY, seed_person(conn, NOW), NOW, events=("erasure", "restriction"))
    ids = sorted(outbox(conn))
    assert len(ids) >= 2
    return ids


def set_rows(conn, ids: list[int], assignments: str, **values) -> None:
    with transaction(conn) as cur:
        cur.execute(
            f"UPDATE governance.recipient_outbox SET {assignments} WHERE notice_id = ANY(%(ids)s)",  # noqa: S608 - test
            {"ids": ids, **values},
        )


def rights(conn, s3, db_url, at: datetime, run_id: str, policy=POLICY) -> dict[str, tuple[int, list[str]]]:
    """check id -> (findings, the record ids found), for the two notice checks."""
    report = run_audit(conn, s3, policy, at, run_id, db_url=db_url)
    found = {r.check: r.findings for r in report.rights if r.check in (ACKED, PAYLOADS)}
    with transaction(conn, read_only=True) as cur:
        cur.execute(
            "SELECT rule_id, counts FROM governance.evidence WHERE run_id = %s AND kind = 'audit_rights' "
            "AND rule_id IN (%s, %s)",
            (run_id, ACKED, PAYLOADS),
        )
        recorded = {rule: counts["findings"] for rule, counts in cur.fetchall()}
    assert recorded == found  # the evidence counts what the report says
    return found


def record_ids(conn, check_id: str, at: datetime) -> set[str]:
    """The check's rows as the audit evaluates them (its markers rendered, its parameters)."""
    check = next(c for c in load_checks() if c.id == check_id)
    with transaction(conn, read_only=True) as cur:
        cur.execute(render_markers(cur, POLICY, check.file, check.text), audit_parameters(POLICY, at))
        rows = cur.fetchall()
    assert {r[0] for r in rows} <= {check_id}
    return {r[1] for r in rows}


def test_a_sent_notice_past_the_ack_window_without_the_alert_is_a_finding(conn, s3, db_url, notices):
    """TP-5: sent NOW, ack_within_days 14: a finding after 14 days, not before; not once alerted or acked."""
    first, second = notices[:2]
    set_rows(conn, notices, "state = 'sent', sent_at = %(at)s, attempts = 1", at=NOW)
    days = POLICY.notices.ack_within_days
    assert rights(conn, s3, db_url, NOW + timedelta(days=days, hours=-1), "ack-early") == {ACKED: 0, PAYLOADS: 0}
    late = NOW + timedelta(days=days, hours=1)
    assert rights(conn, s3, db_url, late, "ack-late") == {ACKED: len(notices), PAYLOADS: 0}
    assert record_ids(conn, ACKED, late) == {f"notice:{i}" for i in notices}  # ids only
    set_rows(conn, [first], "ack_overdue_alerted_at = %(at)s", at=late)  # compliance was told
    set_rows(conn, [second], "state = 'acknowledged', acked_at = %(at)s, acked_via = 'manual'", at=late)
    others = len(notices) - 2
    assert rights(conn, s3, db_url, late, "ack-handled") == {ACKED: others, PAYLOADS: 0}
    assert record_ids(conn, ACKED, late) == {f"notice:{i}" for i in notices[2:]}


def test_an_acknowledged_notice_whose_payload_outlived_the_window_is_a_finding(conn, s3, db_url, notices):
    """RET-9: acked NOW, RET-9-notices P30D: a finding after 30 days until expire_payloads empties it."""
    set_rows(
        conn,
        notices,
        "state = 'acknowledged', sent_at = %(at)s, acked_at = %(at)s, acked_via = 'manual', attempts = 1",
        at=NOW,
    )
    assert rights(conn, s3, db_url, NOW + timedelta(days=29), "payload-early") == {ACKED: 0, PAYLOADS: 0}
    late = NOW + timedelta(days=31)
    assert rights(conn, s3, db_url, late, "payload-late") == {ACKED: 0, PAYLOADS: len(notices)}
    assert record_ids(conn, PAYLOADS, late) == {f"notice:{i}" for i in notices}
    assert sorted(expire_payloads(conn, POLICY, now=late)) == notices
    assert rights(conn, s3, db_url, late, "payload-removed") == {ACKED: 0, PAYLOADS: 0}


def test_a_policy_without_the_payload_window_is_refused_naming_it(conn, s3, db_url, notices):
    """RET-9: the audit cannot check a window the policy does not give; it says what to add."""
    policy = POLICY.model_copy(
        update={"decisions": {k: v for k, v in POLICY.decisions.items() if k != "RET-9-notices"}}
    )
    with pytest.raises(AuditError, match="RET-9-notices"):
        run_audit(conn, s3, policy, NOW, "no-window", db_url=db_url)
