"""The audit's rights checks (#11 item 7) against a real PostgreSQL, moto S3 and GX:
``erased_persons_left.sql`` (ERA-1, RET-7, RET-8) finds an erased person's record left in a person
column and an address left inside free text, and passes on a clean erasure; it leaves out what was
created after the erasure, held records and RET-8 anonymised orders. ``completed_requests_notified.sql``
(TP-5) finds a completed erasure or rectification whose recipient has no outbox notice. The JSON,
the evidence (counts per check) and on-call's message carry the checks, never personal data; a
rights directory is picked up file by file (an extra check with no code change); the
retention_audit DAG fails on a finding.
"""

from __future__ import annotations

import json
import shutil
from datetime import timedelta

import pytest

from governance import requests
from governance.audit import RIGHTS_DIR, run_audit
from governance.db import transaction
from governance.erasure import answer_erasure
from governance.errors import AuditError, AuditFailed
from governance.holds import add_hold
from governance.notices import PSEUDONYM_KEY_ENV, queue_notices
from governance.objectstore import ensure_bucket
from governance.person.subject import Subject
from governance.requests.rectification import rectify
from tests.integration.test_erasure import GUEST, HOLDER, NOW, POLICY, _one, _request, world  # noqa: F401 - a fixture

pytestmark = [pytest.mark.integration]

AUDITED = NOW + timedelta(hours=1)
LEFT = "erased-persons-left"
NOTIFIED = "completed-requests-notified"
OBJECTORS = "objectors-excluded"  # TP-1, OBJ-1: its findings are tested in test_audience_check.py
ACKED = "notices-acknowledged"  # TP-5: its findings are tested in test_notice_audit.py
PAYLOADS = "notice-payloads-expired"  # RET-9, TP-5: likewise
RECONCILED = "customer-last-order-reconciled"  # RET-3: tested in test_sweep_kept_clock.py
SECRET = "test-pseudonym-key-0123456789abcdef0123456789"


@pytest.fixture
def shop(world, s3, monkeypatch):  # noqa: F811 - the imported fixture
    """test_erasure's world (a guest, an account holder, another person), every bucket the audit lists."""
    ensure_bucket(s3, POLICY.object_store.exports_bucket)
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, SECRET)
    return world


def audit(conn, s3, db_url, run_id: str, **kwargs):
    return run_audit(conn, s3, POLICY, AUDITED, run_id, db_url=db_url, **kwargs)


def findings(report) -> dict[str, int]:
    return {r.check: r.findings for r in report.rights}


def erase(conn, s3, email: str | None = None, account_id: int | None = None) -> int:
    rid = _request(conn, email=email, account_id=account_id)
    answer_erasure(conn, s3, POLICY, rid, now=NOW)
    return rid


def notify_erasure(conn, rid: int, subject: Subject) -> None:
    """Queue the erasure's notices as TP-5 wants them, from what it recorded (idempotent)."""
    with transaction(conn) as cur:
        cur.execute(
            "SELECT table_name, count(*) FROM governance.erasure_work WHERE request_id = %s "
            "AND disposition <> 'keep' AND state = 'done' GROUP BY 1",
            (rid,),
        )
        changed = dict(cur.fetchall())
        request = requests.fetch(cur, rid)
        queue_notices(
            cur, POLICY, request, subject=subject, event="erasure", tables_changed=changed, order_ids=[], now=NOW
        )


def test_a_clean_erasure_passes_and_leftovers_in_a_person_column_and_in_free_text_are_found(conn, s3, db_url, shop):
    """ERA-1: the whole-table scan for every erased person, apart from the per-request check."""
    rid = erase(conn, s3, email=GUEST)
    notify_erasure(conn, rid, Subject((), (GUEST,), True))
    clean = audit(conn, s3, db_url, "rights-clean")
    assert findings(clean) == {NOTIFIED: 0, LEFT: 0, OBJECTORS: 0, ACKED: 0, PAYLOADS: 0, RECONCILED: 0}

    with conn.cursor() as cur:  # a subscription under another spelling, before the erasure completed
        cur.execute(
            "INSERT INTO shop.newsletter_subscriptions (email, subscribed_at) VALUES (' Ola.Nordmann@example.NO', %s)",
            (NOW - timedelta(days=1),),
        )
    conn.commit()
    assert findings(audit(conn, s3, db_url, "rights-column"))[LEFT] == 1

    with conn.cursor() as cur:  # the address quoted in another person's message, and a message after
        cur.execute(
            "INSERT INTO shop.contact_messages (email, direction, body, sent_at) VALUES "
            "('someone@else.no', 'inbound', %s, %s), ('someone@else.no', 'inbound', %s, %s)",
            (
                "please write to OLA.NORDMANN@EXAMPLE.NO.",
                NOW - timedelta(days=1),
                "she is back: Ola.Nordmann@example.no",
                NOW + timedelta(minutes=10),  # after the erasure: new data, not a leftover
            ),
        )
    conn.commit()
    report = audit(conn, s3, db_url, "rights-text")
    assert findings(report) == {NOTIFIED: 0, LEFT: 2, OBJECTORS: 0, ACKED: 0, PAYLOADS: 0, RECONCILED: 0}
    assert report.failed and report.overdue_total == 0
    with pytest.raises(AuditFailed) as failed:
        report.raise_if_overdue()
    message = str(failed.value)
    assert f"rights check {LEFT} (ERA-1, RET-7, RET-8): 2 findings" in message
    assert "a new erasure request for the person" in message and "A rights check failed" in message

    data = report.to_json()
    assert data["rights_findings_total"] == 2
    assert {r["check"]: r["findings"] for r in data["rights"]} == {
        NOTIFIED: 0,
        LEFT: 2,
        OBJECTORS: 0,
        ACKED: 0,
        PAYLOADS: 0,
        RECONCILED: 0,
    }
    with conn.cursor() as cur:
        cur.execute(
            "SELECT rule_id, counts, requirements FROM governance.evidence WHERE run_id = 'rights-text' "
            "AND kind = 'audit_rights'"
        )
        recorded = {r[0]: (r[1], r[2]) for r in cur.fetchall()}
        cur.execute("SELECT counts FROM governance.evidence WHERE run_id = 'rights-text' AND kind = 'audit'")
        summary = cur.fetchone()[0]
    conn.rollback()
    assert recorded[LEFT] == ({"findings": 2}, ["ERA-1", "RET-7", "RET-8"])
    assert recorded[NOTIFIED][0] == {"findings": 0}
    assert summary["rights_findings_total"] == 2 and summary["rights_failed"] == 1
    text = (message + json.dumps(data) + json.dumps(recorded) + report.format_table()).lower()
    assert "ola" not in text and "@" not in text


def test_held_records_and_anonymised_orders_are_not_findings(conn, s3, db_url, shop):
    """RET-8: a person hold keeps everything of the account holder; their orders are anonymised, not left."""
    holder = shop["holder"]
    erase(conn, s3, email=HOLDER, account_id=holder["account"])
    with conn.cursor() as cur:
        assert _one(cur, "SELECT count(*) FROM shop.orders WHERE anonymised_at IS NOT NULL") >= 2
        cur.execute(  # the holder's account row, planted back as if the erasure had missed it
            "INSERT INTO shop.accounts (account_id, email, password_hash, created_at) VALUES (%s, %s, 'x', %s)",
            (holder["account"], HOLDER, NOW - timedelta(days=400)),
        )
    conn.commit()
    assert findings(audit(conn, s3, db_url, "rights-unheld"))[LEFT] == 1
    add_hold(
        conn, POLICY, scope="person", account_id=holder["account"], reason="tax audit", set_by="legal:test", now=NOW
    )
    assert findings(audit(conn, s3, db_url, "rights-held"))[LEFT] == 0


def test_a_completed_request_without_a_recipients_notice_is_found(conn, s3, db_url, shop):
    """TP-5: an erasure (from what it recorded) and a rectification (from its evidence) per recipient."""
    rid = erase(conn, s3, email=GUEST)
    notify_erasure(conn, rid, Subject((), (GUEST,), True))
    opened = requests.open_request(
        conn,
        POLICY,
        kind="rectification",
        email=HOLDER,
        account_id=shop["holder"]["account"],
        channel="email",
        opened_by="support:test",
        now=NOW,
    )
    requests.verify(conn, POLICY, opened.request_id, verified_by="support:test", method="id_document", now=NOW)
    rectify(conn, POLICY, opened.request_id, corrections={"shop.accounts": {"first_name": "Karin"}}, now=NOW)
    assert findings(audit(conn, s3, db_url, "notified-clean"))[NOTIFIED] == 0

    with conn.cursor() as cur:  # one recipient of each request never told
        cur.execute(
            "DELETE FROM governance.recipient_outbox WHERE (request_id = %s AND recipient_id = 'delivery-carrier') "
            "OR (request_id = %s AND recipient_id = 'software-vendor')",
            (rid, opened.request_id),
        )
        assert cur.rowcount == 2
    conn.commit()
    report = audit(conn, s3, db_url, "notified-missing")
    assert findings(report) == {NOTIFIED: 2, LEFT: 0, OBJECTORS: 0, ACKED: 0, PAYLOADS: 0, RECONCILED: 0}
    assert "rights check completed-requests-notified (TP-5, ERA-1, REC-1, RES-1, RET-7): 2 findings" in (
        report.failure_message()
    )


def test_every_file_of_the_rights_directory_is_a_check_and_a_broken_one_is_refused_by_name(
    conn, s3, db_url, shop, tmp_path
):
    """The mechanism: a new file is a new check, no code change; its contract is enforced."""
    for path in RIGHTS_DIR.glob("*.sql"):
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "always_one.sql").write_text(
        "-- requirements: OBJ-1\n-- on failure: nothing to do, a test\n"
        "SELECT 'always-one' AS check_id, r.k AS record_id FROM (VALUES ('1'), ('1'), ('2')) AS r(k) "
        "WHERE %(now)s::timestamptz IS NOT NULL"
    )
    report = audit(conn, s3, db_url, "rights-dir", rights_dir=tmp_path)
    assert findings(report) == {
        "always-one": 2,
        NOTIFIED: 0,
        LEFT: 0,
        OBJECTORS: 0,
        ACKED: 0,
        PAYLOADS: 0,
        RECONCILED: 0,
    }  # distinct rows
    assert "What to do: nothing to do, a test" in report.failure_message()

    (tmp_path / "always_one.sql").write_text("SELECT 'another-id' AS check_id, '1' AS record_id")
    with pytest.raises(AuditError, match=r"always_one\.sql returns rows for check id\(s\) \['another-id'\]"):
        audit(conn, s3, db_url, "rights-wrong-id", rights_dir=tmp_path)
    (tmp_path / "always_one.sql").write_text("SELECT 'always-one' AS check_id FROM {{ no_such_marker }}")
    with pytest.raises(AuditError, match=r"always_one\.sql: unknown marker\(s\) \['no_such_marker'\]"):
        audit(conn, s3, db_url, "rights-marker", rights_dir=tmp_path)
    (tmp_path / "always_one.sql").write_text("SELECT 1 AS whatever")
    with pytest.raises(AuditError, match=r"always_one\.sql could not be evaluated"):
        audit(conn, s3, db_url, "rights-columns", rights_dir=tmp_path)
    with conn.cursor() as cur:
        assert _one(cur, "SELECT count(*) FROM governance.evidence WHERE run_id LIKE 'rights-wrong%%'") == 0
    conn.rollback()


@pytest.mark.slow
def test_the_retention_audit_dag_fails_on_a_rights_finding(airflow_home, airflow_connections, conn, s3, shop, capfd):
    """The DAG fails like for an overdue rule, naming the check and what to do; counts only."""
    from tests.integration.test_audit_dag import audit_dag, audit_xcom, task_states

    erase(conn, s3, email=GUEST)  # the erasure queues its own notices (TP-5): the leftover is the one finding
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO shop.contact_messages (email, direction, body, sent_at) VALUES ('a@b.no', 'inbound', %s, %s)",
            ("write to ola.nordmann@example.no", NOW - timedelta(days=1)),
        )
    conn.commit()
    run = audit_dag().test(logical_date=AUDITED)
    out, err = capfd.readouterr()
    logs = out + err
    assert str(run.state) == "failed"
    assert task_states(run)["enforce"] == "failed" and task_states(run)["audit"] == "success"
    summary = audit_xcom(run)
    assert summary["overdue_total"] == 0  # nothing past its window: the rights checks fail the run
    assert {r["check"]: r["findings"] for r in summary["rights"]} == {
        NOTIFIED: 0,
        LEFT: 1,
        OBJECTORS: 0,
        ACKED: 0,
        PAYLOADS: 0,
        RECONCILED: 0,
    }
    assert summary["rights_findings_total"] == 1
    assert f"rights check {LEFT} (ERA-1, RET-7, RET-8): 1 finding" in logs and "What to do" in logs
    assert "ola.nordmann" not in logs.lower() and "ola.nordmann" not in json.dumps(summary)
