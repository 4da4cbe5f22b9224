"""Notices of retention ends (TP-5 for RET-3/RET-8, #12) through the real sweep on PostgreSQL: the
order-records rule anonymises a shop's expired orders batch by batch, and every batch's transaction
queues one notice per recipient with ``notify.retention_ended`` (the policy: the delivery carrier and
the financial partner), naming the customers by that recipient's pseudonyms and the orders by their
ids; nobody else is told; a rerun, a dry run, a failed or retried batch and held orders queue
nothing (more); visits are never notified; the notices go out through the delivery unchanged, to a
real local webhook, and the payload window and the audit's notice checks cover them."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import psycopg2
import pytest

from governance.audit.predicates import audit_parameters
from governance.audit.rendering import render_markers
from governance.audit.rights import load_checks
from governance.cli import main
from governance.db import transaction
from governance.errors import SettingsError
from governance.notices import PSEUDONYM_KEY_ENV
from governance.notices.delivery import deliver_due
from governance.notices.delivery_send import Channels
from governance.notices.payloads import expire_payloads
from governance.notices.secrets import EnvSecrets
from governance.policy import load_policy
from governance.sweep import sweep_rule
from tests.integration import sweep_support as s
from tests.integration.notice_support import Receiver, accepts, acks, new_secret, policy_with, webhook

pytestmark = [pytest.mark.integration]

POLICY = load_policy()
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=3 * 365)  # RET-3: two years after the customer's last order, and more
SECRET = "retention-notice-key-0123456789abcdef0123456789"
TOLD = {"delivery-carrier", "financial-partner"}  # photo_shop.yaml: notify.retention_ended
GUESTS = 500  # enough work-table pages for several batches at BATCH
BATCH = 150


@pytest.fixture(autouse=True)
def shop(conn, monkeypatch):
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, SECRET)
    s.empty_shop(conn)
    with transaction(conn) as cur:
        cur.execute("DELETE FROM governance.recipient_outbox")


def expected_pseudonym(recipient: str, name: str) -> str:
    """Written from the documented scheme (governance/notices/pseudonyms.py), not from the code."""
    derived = hmac.new(SECRET.encode(), b"governance/recipient-pseudonym/v1/" + recipient.encode(), hashlib.sha256)
    return hmac.new(derived.digest(), name.encode(), hashlib.sha256).hexdigest()


def seed(conn) -> dict:
    """GUESTS guests with one expired order each; an account customer with two expired orders; a
    guest whose last order is recent (not due); a guest whose expired order is held (RET-8)."""
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO shop.orders (email, first_name, total_amount, placed_at) "
            "SELECT 'guest' || i || '@example.invalid', 'Gjest', 10, %s FROM generate_series(1, %s) i",
            (OLD, GUESTS),
        )
        account = s.account(cur, OLD - timedelta(days=30), email="Kari.Konto@Example.no")
        account_orders = [s.order(cur, OLD, account_id=account, email=" Kari.Konto@Example.no ") for _ in range(2)]
        recent = s.order(cur, NOW - timedelta(days=30), email="fresh@example.invalid")
        held = s.order(cur, OLD, email="held@example.invalid")
        s.hold(cur, "record", OLD, table_name="shop.orders", record_key=str(held))
        cur.execute("SELECT order_id FROM shop.orders WHERE order_id <> ALL(%s)", ([recent, held],))
        due = {row[0] for row in cur.fetchall()}
    conn.commit()
    return {"account": account, "account_orders": account_orders, "recent": recent, "held": held, "due": due}


def notices(conn) -> list[dict]:
    with transaction(conn, read_only=True) as cur:
        cur.execute(
            "SELECT notice_id, request_id, run_id, recipient_id, event, categories, tables, columns, record_counts, "
            "subject_pseudonyms, order_ids, idempotency_key, state FROM governance.recipient_outbox ORDER BY notice_id"
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def entries(conn, run_id: str, kind: str) -> list[tuple[str, dict, dict]]:
    with transaction(conn, read_only=True) as cur:
        cur.execute(
            "SELECT step, counts, details FROM governance.evidence WHERE run_id = %s AND kind = %s ORDER BY entry_id",
            (run_id, kind),
        )
        return cur.fetchall()


def sweep_orders(conn, run_id: str, policy=POLICY, **kwargs):
    return sweep_rule(conn, None, policy, "order-records", NOW, run_id, batch_size=BATCH, **kwargs)


def test_each_batch_queues_one_notice_per_told_recipient(conn):
    shop = seed(conn)
    result = sweep_orders(conn, "sweep-a")
    assert result.anonymised == len(shop["due"])
    batches = entries(conn, "sweep-a", "sweep_batch")
    told = entries(conn, "sweep-a", "notices_queued")
    assert len(batches) >= 3, "the seed must give several batches"
    # one notices_queued entry per batch, in its transaction's order, same step, same records
    assert [(step, c["records"]) for step, c, _ in told] == [(step, c["anonymised"]) for step, c, _ in batches]
    assert all(c == {"notices": 2, "records": c["records"], "unnamed": 0} for _, c, _ in told)
    found = notices(conn)
    assert len(found) == 2 * len(batches)
    assert {n["recipient_id"] for n in found} == TOLD  # the other CAT-3 recipients have no opt-in
    assert sorted(i for _, _, d in told for i in d["notice_ids"]) == [n["notice_id"] for n in found]
    for recipient in TOLD:
        mine = [n for n in found if n["recipient_id"] == recipient]
        ids = [i for n in mine for i in n["order_ids"]]
        assert len(ids) == len(set(ids)) and set(ids) == shop["due"]  # each order once; held and recent never
        assert len({n["idempotency_key"] for n in mine}) == len(batches)
        for n in mine:
            assert (n["request_id"], n["run_id"], n["event"], n["state"]) == (
                None,
                "sweep-a",
                "retention_ended",
                "queued",
            )
            assert (n["categories"], n["tables"]) == (["CAT-3"], ["shop.orders"])
            assert n["record_counts"] == {"shop.orders": len(n["order_ids"])}
            assert "email" in n["columns"]["shop.orders"] and "delivery_street" in n["columns"]["shop.orders"]
            assert len(n["subject_pseudonyms"]) >= 1
    # the account customer: named by its address (normalised) and its account, per recipient
    for recipient in TOLD:
        [n] = [n for n in found if n["recipient_id"] == recipient and shop["account_orders"][0] in n["order_ids"]]
        assert expected_pseudonym(recipient, "email:kari.konto@example.no") in n["subject_pseudonyms"]
        assert expected_pseudonym(recipient, f"account:{shop['account']}") in n["subject_pseudonyms"]
        assert expected_pseudonym(recipient, "email:held@example.invalid") not in n["subject_pseudonyms"]
    carrier = {p for n in found if n["recipient_id"] == "delivery-carrier" for p in n["subject_pseudonyms"]}
    partner = {p for n in found if n["recipient_id"] == "financial-partner" for p in n["subject_pseudonyms"]}
    assert len(carrier) == GUESTS + 2 and not carrier & partner  # lists that cannot be joined
    with transaction(conn, read_only=True) as cur:
        cur.execute("SELECT anonymised_at IS NULL FROM shop.orders WHERE order_id = %s", (shop["held"],))
        assert cur.fetchone() == (True,)  # RET-8: the held order was never touched


def test_a_rerun_queues_nothing_more(conn, db_url, capsys):
    seed(conn)
    sweep_orders(conn, "sweep-b")
    first = notices(conn)
    assert main(["notices", "list", "--db-url", db_url, "--run", "sweep-b", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [n["notice_id"] for n in listed] == [n["notice_id"] for n in first]
    assert {(n["run_id"], n["request_id"], n["event"]) for n in listed} == {("sweep-b", None, "retention_ended")}
    assert main(["notices", "list", "--db-url", db_url, "--run", "another-run"]) == 0
    assert capsys.readouterr().out.strip() == "no notices"
    evidence = entries(conn, "sweep-b", "notices_queued")
    assert sweep_orders(conn, "sweep-b").anonymised == 0
    assert sweep_orders(conn, "sweep-c").anonymised == 0
    assert notices(conn) == first and entries(conn, "sweep-b", "notices_queued") == evidence
    assert entries(conn, "sweep-c", "notices_queued") == []


def test_a_dry_run_queues_none(conn):
    shop = seed(conn)
    planned = sweep_orders(conn, "sweep-dry", dry_run=True)
    assert planned.dry_run and planned.anonymised == len(shop["due"])  # what it would do
    with transaction(conn, read_only=True) as cur:
        cur.execute("SELECT count(*) FROM shop.orders WHERE anonymised_at IS NOT NULL")
        assert cur.fetchone() == (0,)
    assert notices(conn) == [] and entries(conn, "sweep-dry", "notices_queued") == []
    assert sweep_orders(conn, "sweep-real").anonymised == len(shop["due"])  # and then for real


def test_without_the_opt_in_nobody_is_told(conn):
    seed(conn)
    silent = POLICY.model_copy(
        update={
            "recipients": [
                r.model_copy(update={"notify": r.notify.model_copy(update={"retention_ended": False})})
                if r.notify
                else r
                for r in POLICY.recipients
            ]
        }
    )
    assert sweep_orders(conn, "sweep-silent", silent).anonymised > 0
    assert notices(conn) == [] and entries(conn, "sweep-silent", "notices_queued") == []


def test_a_retried_batch_queues_once_and_a_failed_batch_none(conn):
    """A batch that fails for good queues nothing and leaves its orders as they were. Then the
    first attempt fails transiently (rolled back, retried by the runner): one set of notices."""
    shop = seed(conn)
    with transaction(conn) as cur:
        cur.execute("CREATE TABLE public.fail_for_good (on_purpose boolean)")
        cur.execute("INSERT INTO public.fail_for_good VALUES (true)")
        cur.execute("CREATE SEQUENCE public.batch_attempts")
        cur.execute(
            "CREATE FUNCTION public.fail_orders() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF EXISTS (SELECT 1 FROM public.fail_for_good) THEN RAISE EXCEPTION 'refused (test)'; END IF; "
            "IF nextval('public.batch_attempts') = 1 THEN "
            "RAISE EXCEPTION 'conflict (test)' USING ERRCODE = '40001'; END IF; RETURN NULL; END $$"
        )
        cur.execute(
            "CREATE TRIGGER fail_orders BEFORE UPDATE ON shop.orders FOR EACH STATEMENT "
            "EXECUTE FUNCTION public.fail_orders()"
        )
    try:
        with pytest.raises(psycopg2.Error, match="refused"):
            sweep_orders(conn, "sweep-failed")
        assert notices(conn) == [] and entries(conn, "sweep-failed", "notices_queued") == []
        with transaction(conn) as cur:
            cur.execute("SELECT count(*) FROM shop.orders WHERE anonymised_at IS NOT NULL")
            assert cur.fetchone() == (0,)
            cur.execute("DELETE FROM public.fail_for_good")
        assert sweep_orders(conn, "sweep-retried").anonymised == len(shop["due"])
        with transaction(conn, read_only=True) as cur:
            cur.execute("SELECT last_value FROM public.batch_attempts")
            assert cur.fetchone()[0] > len(entries(conn, "sweep-retried", "sweep_batch"))  # one retried
        found = notices(conn)
        assert len(found) == 2 * len(entries(conn, "sweep-retried", "sweep_batch"))
        for recipient in TOLD:
            ids = [i for n in found if n["recipient_id"] == recipient for i in n["order_ids"]]
            assert sorted(ids) == sorted(shop["due"])  # the retried batch's orders once
    finally:
        with transaction(conn) as cur:
            cur.execute("DROP TRIGGER IF EXISTS fail_orders ON shop.orders")
            cur.execute("DROP FUNCTION IF EXISTS public.fail_orders()")
            cur.execute("DROP SEQUENCE IF EXISTS public.batch_attempts")
            cur.execute("DROP TABLE IF EXISTS public.fail_for_good")


def test_a_missing_key_fails_the_batch_before_its_effect(conn, monkeypatch):
    seed(conn)
    monkeypatch.delenv(PSEUDONYM_KEY_ENV)
    with pytest.raises(SettingsError, match=PSEUDONYM_KEY_ENV):
        sweep_orders(conn, "sweep-nokey")
    with transaction(conn, read_only=True) as cur:
        cur.execute("SELECT count(*) FROM shop.orders WHERE anonymised_at IS NOT NULL")
        assert cur.fetchone() == (0,)
    assert notices(conn) == []


def test_records_per_notice_bound_a_notice(conn):
    shop = seed(conn)
    policy = POLICY.model_copy(
        update={"notices": POLICY.notices.model_copy(update={"retention_records_per_notice": 40})}
    )
    sweep_orders(conn, "sweep-small", policy)
    found = notices(conn)
    assert max(len(n["order_ids"]) for n in found) == 40
    carrier = [i for n in found if n["recipient_id"] == "delivery-carrier" for i in n["order_ids"]]
    assert sorted(carrier) == sorted(shop["due"])
    told = entries(conn, "sweep-small", "notices_queued")
    assert sum(c["notices"] for _, c, _ in told) == len(found)


def test_visits_are_never_notified(conn):
    """A recipient of CAT-1 (cloud hosting) told of retention ends: visits are unidentifiable."""
    hosting = next(r for r in POLICY.recipients if r.id == "cloud-hosting")
    assert hosting.notify is not None and "CAT-1" in hosting.categories
    policy = POLICY.model_copy(
        update={
            "recipients": [
                hosting.model_copy(update={"notify": hosting.notify.model_copy(update={"retention_ended": True})})
            ]
        }
    )
    with conn.cursor() as cur:
        for hours in (30, 40):
            s.visit(cur, NOW - timedelta(hours=hours))
    conn.commit()
    sweep_rule(conn, None, policy, "visit-data", NOW, "sweep-visits")
    with transaction(conn, read_only=True) as cur:
        cur.execute("SELECT count(*) FROM shop.visits")
        assert cur.fetchone() == (0,)  # swept
    assert notices(conn) == [] and entries(conn, "sweep-visits", "notices_queued") == []


@pytest.fixture
def receivers():
    started: list[Receiver] = []

    def start(behaviour, **kwargs) -> Receiver:
        started.append(Receiver(behaviour, **kwargs).start())
        return started[-1]

    yield start
    for receiver in started:
        receiver.stop()


def check_ids(conn, policy, check_id: str, at: datetime) -> set[str]:
    check = next(c for c in load_checks() if c.id == check_id)
    with transaction(conn, read_only=True) as cur:
        cur.execute(render_markers(cur, policy, check.file, check.text), audit_parameters(policy, at))
        return {row[1] for row in cur.fetchall()}


def test_delivered_end_to_end_then_windowed_and_audited(conn, monkeypatch, receivers):
    """The sweep's notices through the recipient_notices delivery to local webhooks: signed,
    acknowledged (the carrier) or only accepted (the partner); then the audit's ack check finds
    the unacknowledged one, and the payload window empties the acknowledged one (RET-9)."""
    carrier_secret, partner_secret = new_secret(), new_secret()
    carrier = receivers(acks, expect_secret=carrier_secret)
    partner = receivers(accepts, expect_secret=partner_secret)
    policy = policy_with(
        POLICY,
        {
            "delivery-carrier": webhook(monkeypatch, carrier.url, "carrier_hook", carrier_secret, retention_ended=True),
            "financial-partner": webhook(
                monkeypatch, partner.url, "partner_hook", partner_secret, retention_ended=True
            ),
        },
    )
    with conn.cursor() as cur:
        account = s.account(cur, OLD, email="Ola.Leser@Example.no")
        order = s.order(cur, OLD, account_id=account, email="Ola.Leser@Example.no")
    conn.commit()
    sweep_orders(conn, "sweep-e2e", policy)
    channels = Channels(secrets=EnvSecrets(), timeout=5)
    try:
        done = deliver_due(conn, policy, channels, now=NOW, run_id="deliver-e2e")
    finally:
        channels.close()
    assert done.counts == {"acknowledged": 1, "sent": 1}
    [got] = carrier.received
    assert got.verified is True
    message = got.json()
    assert message["type"] == "notice.retention_ended"
    data = message["data"]
    assert data["event"] == "retention_ended" and data["subject"]["order_ids"] == [order]
    assert data["subject"]["pseudonyms"] == sorted(
        [expected_pseudonym("delivery-carrier", "email:ola.leser@example.no"),
         expected_pseudonym("delivery-carrier", f"account:{account}")]
    )  # fmt: skip
    assert data["record_counts"] == {"shop.orders": 1} and "corrected_values" not in data
    for body in (got.body, partner.received[0].body):
        assert b"ola.leser" not in body.lower() and b"Nordmann" not in body and b"Storgata" not in body
    by_recipient = {n["recipient_id"]: n for n in notices(conn)}
    assert by_recipient["delivery-carrier"]["state"] == "acknowledged"
    assert by_recipient["financial-partner"]["state"] == "sent"
    unacked = f"notice:{by_recipient['financial-partner']['notice_id']}"
    acked = f"notice:{by_recipient['delivery-carrier']['notice_id']}"
    late = NOW + timedelta(days=policy.notices.ack_within_days, hours=1)
    assert unacked in check_ids(conn, policy, "notices-acknowledged", late)
    after_window = NOW + timedelta(days=31)
    assert acked in check_ids(conn, policy, "notice-payloads-expired", after_window)
    assert expire_payloads(conn, policy, now=after_window) == [by_recipient["delivery-carrier"]["notice_id"]]
    assert acked not in check_ids(conn, policy, "notice-payloads-expired", after_window)
    emptied = {n["recipient_id"]: n for n in notices(conn)}["delivery-carrier"]
    assert (emptied["subject_pseudonyms"], emptied["order_ids"]) == ([], [])


def test_a_dead_sweep_notice_alerts_on_call_naming_the_sweep(conn, monkeypatch, receivers, smtp_inbox):
    """No request behind a retention_ended notice: the dead-letter alert says it came from a sweep."""
    import os

    from governance.breach import SmtpServer
    from governance.notices.delivery import Alerts

    secret = new_secret()
    receiver = receivers(lambda n, h, b: (503, b"{}", 0.0), expect_secret=secret)
    notify = webhook(monkeypatch, receiver.url, "carrier_hook", secret, retention_ended=True)
    policy = policy_with(POLICY, {"delivery-carrier": notify}, max_attempts=1)
    with conn.cursor() as cur:
        s.order(cur, OLD, email="gone@example.invalid")
    conn.commit()
    sweep_orders(conn, "sweep-dead", policy)
    port = int(json.loads(os.environ["AIRFLOW_CONN_GOVERNANCE_SMTP"])["port"])
    alerts = Alerts(SmtpServer("127.0.0.1", port), to="oncall@example.invalid", runbook_url="https://runbook")
    channels = Channels(secrets=EnvSecrets(), timeout=5)
    try:
        done = deliver_due(conn, policy, channels, now=NOW, run_id="deliver-dead", alerts=alerts)
    finally:
        channels.close()
    [notice] = notices(conn)
    assert done.dead == [notice["notice_id"]] and notice["state"] == "dead"
    [alert] = smtp_inbox
    text = alert.get_payload(decode=True).decode()
    assert "(retention_ended, a retention sweep)" in text and "request None" not in text
    assert "gone@example.invalid" not in text
