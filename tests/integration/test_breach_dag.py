"""The breach_notices DAG (SEC-2) through Airflow's own dag.test(): real PostgreSQL, a real SMTP
server (aiosmtpd) behind the connection governance_smtp.

Notices go out only once the authority is notified, at most batch_size per run, to exactly the
people concerned (an independent list written here), never twice across reruns; on-call is
alerted once when the authority notice is due within 24 h and once when it is late; no address is
in the logs, the XComs or the evidence.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import governance_airflow
from governance.breach import notify_authority, open_breach
from governance.policy import load_policy

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAGS = Path(__file__).resolve().parents[2] / "dags"
POLICY = load_policy()
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
IN_WINDOW = NOW - timedelta(days=5)
OUTSIDE = NOW - timedelta(days=40)
# account holders with an order in the window, guests (one with two spellings), and people outside it
ACCOUNTS = ["Astrid.Vindenes@example.no", "bjorn.berg@example.no", "cecilie.dahl@example.no"]
GUESTS = [("Guri.Lie@example.no", " guri.lie@EXAMPLE.no "), ("hans.moe@example.no",), ("ida.nes@example.no",)]
NOT_CONCERNED = ["outside.window@example.no", "contact.only@example.no"]


@pytest.fixture
def db_url(make_database):
    """A database of each test's own: the DAG sees every breach in it."""
    return make_database()


def breach_dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag("breach_notices")


@pytest.fixture
def shop(airflow_home, airflow_connections, smtp_inbox, conn):
    with conn.cursor() as cur:
        for address in ACCOUNTS:
            cur.execute(
                "INSERT INTO shop.accounts (email, password_hash, first_name, created_at) VALUES (%s, 'x', 'Kari', %s) "
                "RETURNING account_id",
                (address, OUTSIDE),
            )
            cur.execute(
                "INSERT INTO shop.orders (account_id, email, total_amount, placed_at) VALUES (%s, %s, 10, %s)",
                (cur.fetchone()[0], address, IN_WINDOW),
            )
        for spellings in GUESTS:
            for address in spellings:
                cur.execute(
                    "INSERT INTO shop.orders (email, total_amount, placed_at) VALUES (%s, 20, %s)", (address, IN_WINDOW)
                )
        cur.execute(
            "INSERT INTO shop.orders (email, total_amount, placed_at) VALUES (%s, 30, %s)", (NOT_CONCERNED[0], OUTSIDE)
        )
        cur.execute(
            "INSERT INTO shop.contact_messages (email, direction, body, sent_at) VALUES (%s, 'inbound', 'hi', %s)",
            (NOT_CONCERNED[1], IN_WINDOW),
        )
    conn.commit()
    return smtp_inbox


def _open(conn, detected_at):
    breach, queued = open_breach(
        conn,
        POLICY,
        categories=["CAT-3"],
        window_from=NOW - timedelta(days=10),
        window_to=NOW - timedelta(days=1),
        description="An order export was readable without login",
        now=detected_at + timedelta(minutes=30),
        detected_at=detected_at,
    )
    return breach, queued


def _xcoms(run) -> str:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.scalars(XComModel.get_many(run_id=run.run_id, key="return_value", dag_ids="breach_notices"))
        return json.dumps([XComModel.deserialize_value(r) for r in rows])


def _evidence(conn) -> str:
    with conn.cursor() as cur:
        cur.execute("SELECT counts::text || details::text FROM governance.evidence")
        text = "\n".join(r[0] for r in cur.fetchall())
    conn.rollback()
    return text


def _subject(message) -> str:
    return str(message["Subject"]).replace("\r\n", "")  # unfolded


def _text(message) -> str:
    return message.get_payload(decode=True).decode(message.get_content_charset() or "utf-8")


def _notices(conn, breach_id) -> dict[str, int]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT state, count(*) FROM governance.breach_notices WHERE breach_id = %s GROUP BY state", (breach_id,)
        )
        counts = dict(cur.fetchall())
    conn.rollback()
    return counts


def test_notices_go_out_rate_limited_once_each_without_personal_data(shop, conn, capfd):
    breach, queued = _open(conn, NOW - timedelta(hours=1))
    assert queued == len(ACCOUNTS) + len(GUESTS)
    dag = breach_dag()

    held = dag.test(logical_date=NOW, run_conf={"batch_size": 4})
    assert str(held.state) == "success"
    assert shop == [], "nothing is sent before the authority is notified"

    notify_authority(conn, POLICY, breach.breach_id, reference="DT-2026-17", now=NOW + timedelta(minutes=5))
    runs = [dag.test(logical_date=NOW + timedelta(minutes=15 * i), run_conf={"batch_size": 4}) for i in (1, 2, 3)]
    assert all(str(r.state) == "success" for r in runs)
    # our logs; the test mail server's own log (aiosmtpd, logger mail.log) is the envelope side
    logs = "\n".join(line for line in "".join(capfd.readouterr()).splitlines() if "[mail.log]" not in line)
    assert "notices per breach" in logs

    recipients = [m["To"].strip().lower() for m in shop]
    expected = {a.lower() for a in ACCOUNTS} | {g[0].lower() for g in GUESTS}
    assert len(recipients) == len(expected) and set(recipients) == expected, "each person once, nobody else"
    assert _notices(conn, breach.breach_id) == {"sent": len(expected)}
    body = _text(shop[0])
    assert "Hva har skjedd: An order export" in body and "What happened: An order export" in body
    assert f"B-{breach.breach_id}" in shop[0]["Subject"] and "Likely consequences" in body and "anbefaler" in body

    with conn.cursor() as cur:
        cur.execute(
            "SELECT (counts->>'sent')::int FROM governance.evidence WHERE kind = 'breach_notices_sent' "
            "AND run_id = %s ORDER BY entry_id",
            (f"breach-{breach.breach_id}",),
        )
        per_run = [r[0] for r in cur.fetchall()]
        cur.execute("SELECT state FROM governance.breaches WHERE breach_id = %s", (breach.breach_id,))
        state = cur.fetchone()[0]
    conn.rollback()
    assert per_run == [4, 2], "at most batch_size per run, evidenced per run; the third run had nothing to send"
    assert state == "subjects_notified"

    everything = (logs + "".join(_xcoms(r) for r in [held, *runs]) + _evidence(conn)).lower()
    for address in [*ACCOUNTS, *(g for spellings in GUESTS for g in spellings), *NOT_CONCERNED]:
        assert address.strip().lower() not in everything


def test_on_call_is_alerted_once_when_due_within_24h_and_once_when_late(shop, conn):
    detected = NOW - timedelta(hours=49)  # due at NOW + 23 h
    breach, _ = _open(conn, detected)
    dag = breach_dag()

    dag.test(logical_date=NOW - timedelta(hours=2))  # due in 25 h: no alert yet
    assert shop == []
    dag.test(logical_date=NOW)
    dag.test(logical_date=NOW + timedelta(minutes=15))
    assert [_subject(m) for m in shop] == [
        f"[governance] breach {breach.breach_id}: the authority notice is due within 24 hours (due 2026-03-02T11:00:00Z)"
    ]
    dag.test(logical_date=NOW + timedelta(hours=24))
    dag.test(logical_date=NOW + timedelta(hours=24, minutes=15))
    assert len(shop) == 2 and "is LATE" in _subject(shop[1])
    for message in shop:
        assert message["To"] == governance_airflow.ALERT_EMAIL
        text = _text(message)
        assert f"governance breach notify-authority {breach.breach_id}" in text and "Personal-data breach" in text
        assert not any(a.lower() in text.lower() for a in ACCOUNTS)
    with conn.cursor() as cur:
        cur.execute("SELECT kind FROM governance.evidence WHERE kind LIKE 'breach_deadline_%%' ORDER BY entry_id")
        assert [r[0] for r in cur.fetchall()] == ["breach_deadline_due_soon", "breach_deadline_late"]
    conn.rollback()
