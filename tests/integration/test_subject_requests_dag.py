"""The subject_requests DAG (REQ-1, ACC-1, POR-1) through Airflow's own dag.test(): real PostgreSQL,
moto's S3 server over HTTP, a real SMTP server (aiosmtpd) behind governance_smtp.

A verified access request of a seeded person (an account, guest orders under another spelling of
the address, photos, a legal hold) is completed: the archive is in the exports bucket (SSE), the
link arrived by mail, and the ZIP behind it holds exactly the records of an independent query per
table and the photos byte for byte. An unverified request exports nothing; an on-demand run answers
its one request only; a rerun changes nothing. XComs carry ids and counts only.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
import requests as http

from governance import requests
from governance.policy import load_policy
from tests.integration import request_support as rs

pytestmark = [pytest.mark.integration, pytest.mark.slow]

POLICY = load_policy()
NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
SCHEDULED = {"request_id": None}  # dag.test() keeps an earlier run's conf in the params: say it each time


@pytest.fixture
def db_url(make_database):
    """A database of each test's own: the DAG picks every workable request in it."""
    return make_database()


PSEUDONYM_SECRET = "dag-test-recipient-pseudonym-key-0123456789"


@pytest.fixture
def dag(airflow_home, airflow_connections, smtp_inbox, monkeypatch):
    """The DAG, with the recipient pseudonym key only in its Airflow connection (TP-5)."""
    from governance.notices import PSEUDONYM_KEY_ENV

    monkeypatch.delenv(PSEUDONYM_KEY_ENV, raising=False)
    monkeypatch.setenv(
        "AIRFLOW_CONN_GOVERNANCE_RECIPIENT_PSEUDONYM",
        json.dumps({"conn_type": "generic", "password": PSEUDONYM_SECRET}),
    )
    return rs.loaded_dag("subject_requests")


@pytest.fixture
def person(conn, s3):
    return rs.seed_person(conn, s3, POLICY, NOW)


def states(run) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for ti in run.get_task_instances():
        found.setdefault(ti.task_id, []).append(str(ti.state))
    return found


def xcoms(run) -> dict[str, list]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.scalars(XComModel.get_many(run_id=run.run_id, key="return_value", dag_ids="subject_requests"))
        found: dict[str, list] = {}
        for row in rows:
            found.setdefault(row.task_id, []).append(XComModel.deserialize_value(row))
        return found


def mail_text(message) -> str:
    return "\n".join(
        part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")
        for part in message.walk()
        if part.get_content_maintype() == "text"
    )


def request_state(conn, request_id) -> str:
    with conn.cursor() as cur:
        found = requests.fetch(cur, request_id).state
    conn.rollback()
    return found


def exports(s3) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=rs.EXPORTS).get("Contents", []))


def evidence_count(conn) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM governance.evidence")
        count = cur.fetchone()[0]
    conn.rollback()
    return count


def test_a_verified_access_request_is_answered_with_exactly_the_persons_data(dag, conn, s3, smtp_inbox, person):
    expected = rs.expected_keys(conn)
    request_id = rs.open_verified(conn, POLICY, NOW)
    expected["governance.request_contacts"] = {request_id}

    run = dag.test(logical_date=NOW, run_conf=SCHEDULED)
    assert str(run.state) == "success", states(run)
    assert states(run)["answer"] == ["success"] and request_state(conn, request_id) == "completed"
    (key,) = exports(s3)
    assert key.startswith(f"exports/{request_id}/")
    assert s3.head_object(Bucket=rs.EXPORTS, Key=key)["ServerSideEncryption"] == "AES256"

    (mail,) = smtp_inbox
    assert mail["To"] == rs.ADDRESS
    body = http.get(rs.link_of(mail), timeout=10).content
    with conn.cursor() as cur:
        cur.execute("SELECT sha256, link_sent_at FROM governance.request_exports WHERE request_id = %s", (request_id,))
        sha, sent_at = cur.fetchone()
    conn.rollback()
    assert hashlib.sha256(body).hexdigest() == sha and sent_at == NOW
    archive = rs.Archive.of(body)
    keys = {store.table: store.key for category in POLICY.categories for store in category.stores}
    for table, want in expected.items():
        assert archive.keys(table, keys[table]) == want, table
    assert person.held_order in archive.keys("shop.orders", "order_id")
    assert sorted(archive.files().values()) == sorted(person.uploads.values())

    pushed = xcoms(run)
    assert pushed["pick"] == [[request_id]]
    (answered,) = pushed["answer"]
    assert answered["request_id"] == request_id and answered["objects"] == len(person.uploads)
    assert pushed["summary"] == [
        {"picked": 1, "completed": 1, "records": answered["records"], "objects": 3, "bytes": answered["bytes"]}
    ]
    text = json.dumps(pushed).lower()
    assert not any(value.lower() in text for value in person.personal_values) and "x-amz" not in text

    before = evidence_count(conn)
    again = dag.test(logical_date=NOW + timedelta(minutes=15), run_conf=SCHEDULED)
    assert str(again.state) == "success" and xcoms(again)["pick"] == [[]]
    assert exports(s3) == [key] and len(smtp_inbox) == 1 and evidence_count(conn) == before, "a rerun changes nothing"
    on_demand = dag.test(logical_date=NOW + timedelta(minutes=20), run_conf={"request_id": request_id})
    assert str(on_demand.state) == "success", states(on_demand)
    assert exports(s3) == [key] and len(smtp_inbox) == 1 and evidence_count(conn) == before


def test_an_unverified_request_exports_nothing(dag, conn, s3, smtp_inbox, person):
    request = requests.open_request(
        conn, POLICY, kind="access", email=rs.ADDRESS, channel="email", opened_by="support", now=NOW
    )
    scheduled = dag.test(logical_date=NOW + timedelta(minutes=1), run_conf=SCHEDULED)
    assert str(scheduled.state) == "success" and xcoms(scheduled)["pick"] == [[]]
    asked = dag.test(logical_date=NOW + timedelta(minutes=2), run_conf={"request_id": request.request_id})
    assert str(asked.state) == "failed" and states(asked)["pick"] == ["failed"]
    assert "answer" not in xcoms(asked)
    assert exports(s3) == [] and request_state(conn, request.request_id) == "received"
    alerts = [m for m in smtp_inbox if "[governance] subject_requests failed: pick" in str(m["Subject"])]
    assert len(smtp_inbox) == 1 and len(alerts) == 1, "on-call is told; the person is sent nothing"


def test_an_on_demand_run_answers_its_one_request_then_the_schedule_the_others(dag, conn, s3, smtp_inbox, person):
    first = rs.open_verified(conn, POLICY, NOW)
    second = rs.open_verified(conn, POLICY, NOW, kind="portability", email="nobody.here@example.no")

    one = dag.test(logical_date=NOW + timedelta(minutes=1), run_conf={"request_id": second})
    assert str(one.state) == "success", states(one)
    assert request_state(conn, second) == "completed" and request_state(conn, first) == "verified"
    assert len(exports(s3)) == 1 and [m["To"] for m in smtp_inbox] == ["nobody.here@example.no"]
    (answered,) = xcoms(one)["answer"]
    assert answered["request_id"] == second and answered["objects"] == 0  # no data held: the export still goes

    rest = dag.test(logical_date=NOW + timedelta(minutes=15), run_conf=SCHEDULED)
    assert str(rest.state) == "success" and xcoms(rest)["pick"] == [[first]]
    assert request_state(conn, first) == "completed" and len(exports(s3)) == 2 and len(smtp_inbox) == 2


def test_a_failed_export_fails_the_run_naming_the_request_and_the_rerun_completes_it(dag, conn, s3, smtp_inbox, person):
    request_id = rs.open_verified(conn, POLICY, NOW)
    s3.delete_bucket(Bucket=rs.EXPORTS)  # the exports bucket is gone: no retry brings it back

    failed = dag.test(logical_date=NOW, run_conf=SCHEDULED)
    assert str(failed.state) == "failed" and states(failed)["answer"] == ["failed"] == states(failed)["summary"]
    assert request_state(conn, request_id) == "in_progress"
    subjects = sorted(str(m["Subject"]).replace("\r\n", "") for m in smtp_inbox)
    assert [s.split(" in ")[0] for s in subjects] == [
        f"[governance] subject_requests failed: answer[request {request_id}]",
        "[governance] subject_requests failed: summary",
    ]
    alert = mail_text(next(m for m in smtp_inbox if "answer" in str(m["Subject"])))
    assert f"request {request_id}" in alert and "NoSuchBucket" in alert and "An export failed" in alert
    assert rs.ADDRESS.lower() not in alert.lower()

    rs.buckets(s3)
    again = dag.test(logical_date=NOW + timedelta(minutes=15), run_conf=SCHEDULED)
    assert str(again.state) == "success" and request_state(conn, request_id) == "completed"
    assert len(exports(s3)) == 1 and [m["To"] for m in smtp_inbox][-1] == rs.ADDRESS


def test_a_verified_erasure_request_erases_the_person_and_keeps_the_held_order(dag, conn, s3, smtp_inbox, person):
    """ERA-1 through the DAG: the handler registered for erasure runs; the held order stays (RET-8)."""
    request_id = rs.open_verified(conn, POLICY, NOW, kind="erasure")
    run = dag.test(logical_date=NOW, run_conf=SCHEDULED)
    assert str(run.state) == "success", states(run)
    assert request_state(conn, request_id) == "completed"
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM shop.accounts WHERE account_id = %s", (person.account_id,))
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT count(*) FROM shop.orders WHERE order_id = %s", (person.held_order,))
        assert cur.fetchone()[0] == 1
    conn.rollback()
    (answered,) = xcoms(run)["answer"]
    assert answered["request_id"] == request_id
    assert exports(s3) == [] and smtp_inbox == []


def test_a_verified_objection_is_answered_and_its_purposes_switched_off(dag, conn, s3, smtp_inbox, person, monkeypatch):
    """OBJ-1, MKT-1 through the DAG: the handler registered for objections unsubscribes the
    newsletter, withdraws the advertising audiences consent (TP-1, CON-1), writes the processing
    register, queues the advertising partner's notice (TP-5) and completes; XComs carry ids and
    counts."""
    from governance.notices import PSEUDONYM_KEY_ENV

    monkeypatch.setenv(PSEUDONYM_KEY_ENV, "dag-test-key-0123456789abcdef0123")
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO shop.marketing_consents (account_id, purpose, given_at) "
            "VALUES (%s, 'advertising_audiences', %s) RETURNING consent_id",
            (person.account_id, NOW - timedelta(days=30)),
        )
        consent = cur.fetchone()[0]
    conn.commit()
    request_id = rs.open_verified(conn, POLICY, NOW, kind="objection")
    run = dag.test(logical_date=NOW, run_conf=SCHEDULED)
    assert str(run.state) == "success", states(run)
    assert request_state(conn, request_id) == "completed"
    with conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FILTER (WHERE unsubscribed_at IS NULL), count(*) FROM shop.newsletter_subscriptions "
            "WHERE lower(btrim(email)) = lower(%s)",
            (rs.ADDRESS,),
        )
        assert cur.fetchone() == (0, 1)
        cur.execute(
            "SELECT purpose FROM governance.processing_register WHERE request_id = %s ORDER BY 1", (request_id,)
        )
        assert [r[0] for r in cur.fetchall()] == ["advertising_audiences", "marketing_cookies", "newsletter"]
        cur.execute("SELECT withdrawn_at FROM shop.marketing_consents WHERE consent_id = %s", (consent,))
        assert cur.fetchone()[0] is not None
    conn.rollback()
    # the subscription and the consent; the marketing cookie was already off
    (answered,) = xcoms(run)["answer"]
    assert answered["request_id"] == request_id and answered["rows_switched_off"] == 2
    assert [(r[0], r[2]) for r in outbox(conn, request_id)] == [("advertising-partner", "objection")]
    assert exports(s3) == [] and smtp_inbox == []


def outbox(conn, request_id) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT recipient_id, subject_pseudonyms, event, row_to_json(o)::text FROM governance.recipient_outbox o "
            "WHERE request_id = %s ORDER BY recipient_id",
            (request_id,),
        )
        rows = cur.fetchall()
    conn.rollback()
    return rows


def test_an_account_deletion_keeping_the_account_is_answered_with_its_notices(dag, conn, s3, smtp_inbox, person):
    """RET-7, TP-5 through the DAG: CAT-2 kept (the account marked deleted, its calendar kept), the
    rest erased (orders anonymised, the held one kept); one notice per recipient of an erased
    category, named with the key of the Airflow connection; the XCom holds counts only."""
    from governance.notices import pseudonym_key

    choices = {"CAT-2": "keep", "CAT-3": "delete", "CAT-4": "delete", "CAT-5": "delete", "CAT-6": "delete"}
    opened = requests.open_request(
        conn, POLICY, kind="account_deletion", email=rs.ADDRESS, channel="web_form", opened_by="web",
        choices=choices, now=NOW - timedelta(days=1),
    )  # fmt: skip
    requests.verify(conn, POLICY, opened.request_id, verified_by="web", method="signed_in_account", now=NOW)
    run = dag.test(logical_date=NOW, run_conf=SCHEDULED)
    assert str(run.state) == "success", states(run)
    assert request_state(conn, opened.request_id) == "completed"
    with conn.cursor() as cur:
        cur.execute("SELECT deleted_at FROM shop.accounts WHERE account_id = %s", (person.account_id,))
        assert cur.fetchone()[0] == NOW
        cur.execute("SELECT count(*) FROM shop.calendar_events WHERE account_id = %s", (person.account_id,))
        assert cur.fetchone()[0] == 1
        cur.execute("SELECT count(*) FROM shop.cookie_preferences WHERE account_id = %s", (person.account_id,))
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT anonymised_at IS NULL FROM shop.orders WHERE order_id = %s", (person.held_order,))
        assert cur.fetchone()[0] is True  # held (RET-8)
    conn.rollback()
    rows = outbox(conn, opened.request_id)
    erased = {"CAT-3", "CAT-4", "CAT-5", "CAT-6"}
    assert {r[0] for r in rows} == {r.id for r in POLICY.recipients if erased & set(r.categories)}
    key = pseudonym_key(PSEUDONYM_SECRET)
    for recipient, pseudonyms, event, text in rows:
        assert event == "erasure" and set(key.pseudonyms(recipient, emails=[rs.ADDRESS], account_ids=[])) <= set(
            pseudonyms
        )
        assert not any(value.lower() in text.lower() for value in person.personal_values)
    (answered,) = xcoms(run)["answer"]
    assert answered["request_id"] == opened.request_id and answered["notices"] == len(rows)
    assert "@" not in json.dumps(answered) and smtp_inbox == []


def test_a_rectification_recorded_without_apply_is_applied_by_the_dag(
    dag, conn, s3, smtp_inbox, person, db_url, capsys
):
    """REC-1 through the DAG: the corrections recorded with `governance request rectify ID --set`
    (no --apply) wait apart; the DAG applies them, with the recipients' notices; before they are
    recorded the request is not picked."""
    from governance.cli import main

    opened = requests.open_request(
        conn,
        POLICY,
        kind="rectification",
        email=rs.ADDRESS,
        channel="web_form",
        opened_by="web",
        now=NOW - timedelta(days=1),
    )
    requests.verify(conn, POLICY, opened.request_id, verified_by="web", method="signed_in_account", now=NOW)
    waiting = dag.test(logical_date=NOW, run_conf=SCHEDULED)
    assert str(waiting.state) == "success" and request_state(conn, opened.request_id) == "verified"
    at = ["--now", "2026-11-02T09:00:00Z", "--db-url", db_url]
    words = ["request", "rectify", str(opened.request_id), "--set", "shop.accounts.last_name=Nordmann-Berg"]
    assert main([*words, *at]) == 0
    assert "Nordmann-Berg" not in capsys.readouterr().out
    run = dag.test(logical_date=NOW + timedelta(minutes=15), run_conf=SCHEDULED)
    assert str(run.state) == "success", states(run)
    assert request_state(conn, opened.request_id) == "completed"
    with conn.cursor() as cur:
        cur.execute("SELECT last_name FROM shop.accounts WHERE account_id = %s", (person.account_id,))
        assert cur.fetchone()[0] == "Nordmann-Berg"
        cur.execute("SELECT count(*) FROM governance.request_corrections")
        assert cur.fetchone()[0] == 0
    conn.rollback()
    rows = outbox(conn, opened.request_id)
    assert rows and all(r[2] == "rectification" and "Nordmann-Berg" not in r[3] for r in rows)
    (answered,) = xcoms(run)["answer"]
    assert answered["request_id"] == opened.request_id and answered["rows_rectified"] == 1
