"""Failures alert on-call by e-mail (CONTRIBUTING.md habits 2 and 6): a real SMTP server (aiosmtpd on
a loopback port), the real SMTP connection ``governance_smtp`` and the house notifier of
``governance_airflow.default_args``, driven by Airflow's own ``dag.test()``.

The throw-away DAG below fails three ways: a library error whose input was an e-mail address
(HoldError), the audit finding personal data past its window (AuditFailed, RET-1/RET-3), and one
index of a mapped task. Every alert must name the DAG, the task (and map index), the run, the
error and the runbook, and none may carry the personal data the failing code handled.
"""

from __future__ import annotations

import email
import html
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from airflow.sdk import dag, task

import governance_airflow

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
# The person whose data the failing tasks handle; none of it may reach an alert.
PERSON = {
    "email": "Astrid.Vindenes@example.no",
    "unknown_email": "astrid.unknown@example.no",
    "first_name": "Astrid",
    "last_name": "Vindenes",
    "phone": "+47 912 34 567",
    "street": "Fjordveien 17",
    "city": "Stavanger",
    "ip": "10.20.30.40",
    "message": "Please call me about my photo book",
}


@dag(
    dag_id="governance_notifier_probe",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    default_args=governance_airflow.default_args(retries=0),
    tags=["test"],
    doc_md="Throw-away DAG of tests/integration/test_notifier.py: every task fails, each must alert.",
)
def governance_notifier_probe():
    @task
    def hold_unknown_person() -> None:
        from governance.holds import add_hold
        from governance.policy import load_policy

        conn = governance_airflow.db_connection()
        try:
            add_hold(
                conn,
                load_policy(),
                scope="person",
                email=PERSON["unknown_email"],
                reason="court order",
                set_by="legal",
                now=NOW,
            )
        finally:
            conn.close()

    @task
    def audit_overdue() -> None:
        from governance.audit import run_audit
        from governance.policy import load_policy
        from governance.settings import resolve

        conn = governance_airflow.db_connection()
        try:
            report = run_audit(
                conn,
                governance_airflow.s3_client(),
                load_policy(),
                NOW,
                "notifier-probe",
                db_url=resolve().require_db_url(),
                record=False,
            )
        finally:
            conn.close()
        report.raise_if_overdue()

    @task(map_index_template="{{ batch_label }}")
    def fail_mapped(batch: int) -> None:
        from airflow.sdk import get_current_context

        # The template renders with the task context itself; a **kwargs dict is only a copy of it.
        get_current_context()["batch_label"] = f"batch-{batch}"
        if batch == 1:
            raise RuntimeError(f"batch {batch} of 2 failed: 3 keys not deleted")

    hold_unknown_person()
    audit_overdue()
    fail_mapped.expand(batch=[0, 1])


PROBE = governance_notifier_probe()


@pytest.fixture
def shop_with_overdue_personal_data(airflow_connections, monkeypatch, s3):
    # airflow_connections: governance_db and governance_s3 for the tasks; GOVERNANCE_DB_URL for GX.
    """A visit (IP address) and an order (name, e-mail, phone, street) long past their windows."""
    from governance.db import connect
    from governance.policy import load_policy
    from governance_dev.loader import ensure_store_buckets

    db_url = airflow_connections["db_url"]
    monkeypatch.setenv("GOVERNANCE_DB_URL", db_url)
    ensure_store_buckets(s3, load_policy())
    conn = connect(db_url)
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO shop.visits (session_key, ip_address, country, started_at, last_activity_at) "
            "VALUES (gen_random_uuid(), %s, 'NO', '2025-01-01T10:00Z', '2025-01-01T11:00Z')",
            (PERSON["ip"],),
        )
        cur.execute(
            "INSERT INTO shop.orders (email, first_name, last_name, phone, delivery_street, delivery_city, "
            "total_amount, placed_at) VALUES (%s, %s, %s, %s, %s, %s, 499, '2023-01-15T09:00Z')",
            (
                PERSON["email"],
                PERSON["first_name"],
                PERSON["last_name"],
                PERSON["phone"],
                PERSON["street"],
                PERSON["city"],
            ),
        )
        cur.execute(
            "INSERT INTO shop.contact_messages (email, name, direction, subject, body, sent_at) "
            "VALUES (%s, %s, 'inbound', 'Photo book', %s, '2023-01-10T09:00Z')",
            (PERSON["email"], f"{PERSON['first_name']} {PERSON['last_name']}", PERSON["message"]),
        )
    conn.commit()
    conn.close()


def _register(dag_object) -> None:
    """dag.test() in Airflow 3.3 runs only DAGs serialized in the metadata DB, which it fills by
    parsing the dags-folder bundle; a DAG defined in a test module is outside it, so register it
    the way the DAG processor would."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    bag = SimpleNamespace(dags={dag_object.dag_id: dag_object}, import_errors={}, bundle_path=None, dag_warnings=set())
    sync_bag_to_db(bag, "dags-folder", None)


def _body(message: email.message.Message) -> str:
    parts = [
        p.get_payload(decode=True).decode(p.get_content_charset() or "utf-8")
        for p in message.walk()
        if p.get_content_type() == "text/html"
    ]
    return html.unescape("\n".join(parts))


def test_failures_alert_by_email_without_personal_data(airflow_home, smtp_inbox, shop_with_overdue_personal_data):
    _register(PROBE)
    run = PROBE.test(logical_date=NOW)
    assert run.state == "failed"

    mails = {m["Subject"]: (m, _body(m)) for m in smtp_inbox}
    prefix = f"[governance] {PROBE.dag_id} failed: "
    expected = {
        f"{prefix}{task_id} in {run.run_id}": task_id
        for task_id in ("hold_unknown_person", "audit_overdue", "fail_mapped[batch-1]")
    }
    assert set(mails) == set(expected), f"one alert per failed task instance, got {sorted(mails)}"

    for subject, task_label in expected.items():
        message, body = mails[subject]
        assert message["To"] == governance_airflow.ALERT_EMAIL
        task_id = task_label.split("[")[0]
        assert f"DAG {PROBE.dag_id}, task {task_id}" in _text(body)
        assert f"run {run.run_id} failed" in _text(body)
        assert governance_airflow.RUNBOOK_URL in body
        assert "Try number 1." in body

    hold_body = mails[f"{prefix}hold_unknown_person in {run.run_id}"][1]
    assert "no record in the data map names the given e-mail address; check the --email" in hold_body

    audit_body = mails[f"{prefix}audit_overdue in {run.run_id}"][1]
    assert "retention audit notifier-probe as of 2026-03-01T12:00:00Z:" in audit_body
    assert "visit-data (RET-1, RET-10, CAT-1): 1 record overdue" in audit_body
    assert "order-records (RET-3, RET-8, RET-10, CAT-3): 1 record overdue" in audit_body
    assert "contact-messages (RET-4, RET-10, CAT-4): 1 record overdue" in audit_body
    assert "governance sweep --rule RULE --now 2026-03-01T12:00:00Z" in audit_body

    mapped_body = mails[f"{prefix}fail_mapped[batch-1] in {run.run_id}"][1]
    assert "(map index 1: batch-1)" in mapped_body
    assert "batch 1 of 2 failed: 3 keys not deleted" in mapped_body

    everything = "\n".join(str(m) + body for m, body in mails.values()).lower()
    for name, value in PERSON.items():
        assert value.lower() not in everything, f"the alert carries the person's {name}"


def _text(body: str) -> str:
    """The HTML body with tags removed, for reading like a person would."""
    import re

    return re.sub(r"<[^>]+>", "", body)


def test_library_exceptions_carry_no_personal_data(airflow_connections):
    """The messages on-call reads (and that alerts, logs and task states carry) name counts and ids."""
    from governance.db import connect
    from governance.holds import HoldError, add_hold
    from governance.policy import load_policy
    from governance.settings import SettingsError

    conn = connect(airflow_connections["db_url"])
    try:
        for kwargs in ({"email": PERSON["unknown_email"]}, {"email": f"not an address {PERSON['first_name']}"}):
            with pytest.raises(HoldError) as excinfo:
                add_hold(conn, load_policy(), scope="person", reason="court order", set_by="legal", now=NOW, **kwargs)
            assert PERSON["unknown_email"] not in str(excinfo.value)
            assert PERSON["first_name"] not in str(excinfo.value)
    finally:
        conn.close()

    with pytest.raises(SettingsError) as excinfo:
        connect("postgresql://astrid:S3cret-Pass@127.0.0.1:1/shop", source="--db-url")
    assert "S3cret-Pass" not in str(excinfo.value) and "--db-url" in str(excinfo.value)
