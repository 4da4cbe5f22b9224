"""The breach ledger and the people it concerns (SEC-2), on a real PostgreSQL.

The people a breach queues notices for are compared with an independent, hand-written SQL query
over the shop's tables (the data map is not read): accounts with a record in the window, and
guests by normalised address, an address that is a concerned account's own being that account.
Pseudonyms are recomputed in Python, not with the database's function.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest

from governance.breach import close_breach, get_breach, notify_authority, open_breach
from governance.cli import main
from governance.errors import BreachError
from governance.policy import load_policy

pytestmark = [pytest.mark.integration]

POLICY = load_policy()
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

# Hand-written for this test, table by table: (table, account column, email column, clock column).
EXPECTED_SOURCES = {
    "CAT-2": [
        ("shop.accounts", "account_id", "email", "created_at"),
        ("shop.calendar_events", "account_id", None, "created_at"),
        ("shop.saved_products", "account_id", None, "saved_at"),
        ("shop.marketing_consents", "account_id", None, "given_at"),  # CON-1, TP-1: the consents given
    ],
    "CAT-3": [("shop.orders", "account_id", "email", "placed_at")],
    "CAT-4": [
        ("shop.newsletter_subscriptions", "account_id", "email", "subscribed_at"),
        ("shop.contact_messages", None, "email", "sent_at"),
    ],
    "CAT-5": [("shop.uploads", "account_id", None, "uploaded_at")],
    "CAT-6": [("shop.cookie_preferences", "account_id", None, "given_at")],
}


def sha(address: str) -> str:
    return hashlib.sha256(address.strip().lower().encode("utf-8")).hexdigest()


def expected_people(conn, categories, start, end) -> set[tuple[str, str]]:
    """Independent oracle: ('account', id) and ('email', sha256) of everyone a breach concerns."""
    accounts: set[int] = set()
    guests: set[str] = set()
    with conn.cursor() as cur:
        for category in categories:
            for table, account, email, clock in EXPECTED_SOURCES.get(category, []):
                cur.execute(
                    f"SELECT {account or 'NULL'}, {email or 'NULL'} FROM {table} WHERE {clock} >= %s AND {clock} < %s",
                    (start, end),
                )
                for account_id, address in cur.fetchall():
                    if account_id is not None:
                        accounts.add(account_id)
                    elif address is not None:
                        guests.add(sha(address))
        cur.execute("SELECT account_id, email FROM shop.accounts WHERE account_id = ANY(%s)", (list(accounts),))
        own = {sha(address) for _, address in cur.fetchall()}
    conn.rollback()
    return {("account", str(a)) for a in accounts} | {("email", g) for g in guests - own}


def queued_people(conn, breach_id) -> set[tuple[str, str]]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT account_id, email_sha256 FROM governance.breach_notices WHERE breach_id = %s AND state = 'queued'",
            (breach_id,),
        )
        rows = cur.fetchall()
    conn.rollback()
    return {("account", str(a)) if a is not None else ("email", e) for a, e in rows}


@pytest.fixture(scope="module")
def seeded(db_url):
    from governance.db import connect
    from governance_dev.loader import seed

    conn = connect(db_url)
    seed(conn, None, POLICY, NOW, customers=120, seed=7, objects=False, holds=False)
    conn.close()


@pytest.mark.parametrize(
    ("categories", "days"),
    [(["CAT-2", "CAT-3"], 400), (["CAT-4"], 900), (["CAT-3", "CAT-5", "CAT-6"], 200), (["CAT-1"], 30)],
)
def test_the_people_found_equal_an_independent_query(seeded, conn, categories, days):
    start, end = NOW - timedelta(days=days), NOW - timedelta(days=days // 4)
    breach, queued = open_breach(
        conn, POLICY, categories=categories, window_from=start, window_to=end, description="Export leak", now=NOW
    )
    expected = expected_people(conn, categories, start, end)
    assert queued == len(expected)
    assert queued_people(conn, breach.breach_id) == expected
    if categories != ["CAT-1"]:  # CAT-1 (visits) names no person
        assert {kind for kind, _ in expected} == {"account", "email"}, "the window should concern both kinds"


def test_guests_are_grouped_by_normalised_address_and_joined_to_their_account(conn):
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO shop.accounts (email, password_hash, created_at) VALUES ('Kari@Example.no', 'x', %s) "
            "RETURNING account_id",
            (NOW - timedelta(days=900),),
        )
        (account_id,) = cur.fetchone()
        for address in ("  kari@example.NO ", "Ola@example.no", "ola@EXAMPLE.no  "):
            cur.execute(
                "INSERT INTO shop.orders (email, total_amount, placed_at) VALUES (%s, 10, %s)",
                (address, NOW - timedelta(days=3)),
            )
        cur.execute(
            "INSERT INTO shop.orders (account_id, email, total_amount, placed_at) VALUES (%s, 'kari@example.no', 5, %s)",
            (account_id, NOW - timedelta(days=3)),
        )
    conn.commit()
    start, end = NOW - timedelta(days=4), NOW - timedelta(days=2)
    breach, queued = open_breach(
        conn, POLICY, categories=["CAT-3"], window_from=start, window_to=end, description="Leak", now=NOW
    )
    people = queued_people(conn, breach.breach_id)
    assert people == expected_people(conn, ["CAT-3"], start, end)
    assert ("account", str(account_id)) in people and ("email", sha("kari@example.no")) not in people
    assert ("email", sha("ola@example.no")) in people


def test_transitions_are_refused_out_of_order_and_evidenced(conn):
    detected = NOW - timedelta(hours=2)
    breach, _ = open_breach(
        conn,
        POLICY,
        categories=["CAT-2"],
        window_from=NOW - timedelta(days=1),
        window_to=NOW,
        description="Stolen laptop",
        now=NOW,
        detected_at=detected,
    )
    assert breach.due_at == detected + timedelta(hours=72) and breach.state == "open"
    with pytest.raises(BreachError, match="not subjects_notified"):
        close_breach(conn, POLICY, breach.breach_id, now=NOW)
    notified = notify_authority(conn, POLICY, breach.breach_id, reference="DT-1", now=NOW + timedelta(hours=1))
    assert notified.state == "authority_notified"
    with pytest.raises(BreachError, match="already notified"):
        notify_authority(conn, POLICY, breach.breach_id, reference="DT-1", now=NOW + timedelta(hours=2))
    with conn.cursor() as cur:
        cur.execute(
            "SELECT kind, requirements, details FROM governance.evidence WHERE run_id = %s ORDER BY entry_id",
            (f"breach-{breach.breach_id}",),
        )
        rows = cur.fetchall()
    conn.rollback()
    assert [r[0] for r in rows] == ["breach_opened", "breach_authority_notified"]
    assert all(r[1] == ["SEC-2"] for r in rows)
    assert "Stolen laptop" not in json.dumps([r[2] for r in rows])  # only its hash
    assert get_breach(conn, breach.breach_id)[0].authority_reference == "DT-1"
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM governance.verify_evidence()")
        assert cur.fetchone()[0] == 0, "the chain stays intact"
    conn.rollback()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"categories": ["CAT-9"]}, "unknown or missing categories CAT-9"),
        ({"description": "call Kari at +47 912 34 567"}, "looks like it holds personal data"),
        ({"description": "kari@example.no leaked"}, "looks like it holds personal data"),
        ({"description": "customer 91234567 called"}, "looks like it holds personal data"),
        ({"window_to": NOW - timedelta(days=9)}, "is not after --from"),
        ({"detected_at": NOW + timedelta(hours=1)}, "is after now"),
    ],
)
def test_bad_input_is_refused_naming_the_fix(conn, kwargs, message):
    args = {
        "categories": ["CAT-2"],
        "window_from": NOW - timedelta(days=2),
        "window_to": NOW,
        "description": "Leak",
        "now": NOW,
    } | kwargs
    with pytest.raises(BreachError, match=message) as excinfo:
        open_breach(conn, POLICY, **args)
    assert "kari" not in str(excinfo.value).lower()


def test_the_cli_opens_lists_shows_and_notifies(db_url, capsys):
    common = ["--db-url", db_url, "--now", "2026-03-01T12:00:00Z"]
    assert (
        main(
            [
                "breach",
                "open",
                *common,
                "--categories",
                "CAT-2,CAT-3",
                "--from",
                "2026-02-01T00:00Z",
                "--to",
                "2026-03-01T00:00Z",
                "--detected-at",
                "2026-03-01T09:00Z",
                "--description",
                "On 2026-02-27 10:00 an API bug exposed 3 500 orders",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    breach_id = int(out.split()[1])
    assert "due 2026-03-04T09:00:00Z" in out
    assert main(["breach", "list", "--db-url", db_url, "--now", "2026-03-04T10:00:00Z"]) == 0
    listed = capsys.readouterr().out
    assert f"{breach_id} " in listed and "2026-03-04T09:00:00Z LATE" in listed
    assert main(["breach", "notify-authority", str(breach_id), *common, "--reference", "DT-7"]) == 0
    assert main(["breach", "show", str(breach_id), "--db-url", db_url]) == 0
    shown = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert shown["state"] == "authority_notified" and shown["authority_reference"] == "DT-7"
    assert main(["breach", "close", str(breach_id), *common]) == 2
    assert "not subjects_notified" in capsys.readouterr().err


@pytest.fixture
def smtp_server(smtp_inbox):
    """conftest's SMTP server (aiosmtpd) as the library's SmtpServer; with the messages it received."""
    import os

    from governance.breach import SmtpServer

    port = json.loads(os.environ["AIRFLOW_CONN_GOVERNANCE_SMTP"])["port"]

    return SmtpServer(host="127.0.0.1", port=port, timeout=10), smtp_inbox


@pytest.fixture
def fresh_conn(make_database):
    """A database of the test's own: every queued notice in it is the test's."""
    from governance.db import connect

    connection = connect(make_database())
    yield connection
    connection.close()


def _notified_breach(conn, addresses, at):
    with conn.cursor() as cur:
        for address in addresses:
            cur.execute(
                "INSERT INTO shop.contact_messages (email, direction, body, sent_at) VALUES (%s, 'inbound', 'x', %s)",
                (address, at),
            )
    conn.commit()
    breach, queued = open_breach(
        conn,
        POLICY,
        categories=["CAT-4"],
        window_from=at,
        window_to=at + timedelta(seconds=1),
        description="Leak",
        now=NOW,
    )
    assert queued == len(addresses)
    notify_authority(conn, POLICY, breach.breach_id, reference="DT-9", now=NOW)
    return breach


def _states(conn, breach_id):
    with conn.cursor() as cur:
        cur.execute(
            "SELECT state, failure, count(*) FROM governance.breach_notices WHERE breach_id = %s GROUP BY 1, 2",
            (breach_id,),
        )
        rows = {(s, f): n for s, f, n in cur.fetchall()}
    conn.rollback()
    return rows


def test_a_lost_mail_server_requeues_and_a_person_whose_data_is_gone_is_not_sent_to(fresh_conn, smtp_server):
    conn = fresh_conn
    from dataclasses import replace

    from governance.breach import send_notices, settle
    from governance.errors import NoticeDeliveryError

    server, inbox = smtp_server
    at = datetime(2025, 5, 5, 5, 5, 5, 5, tzinfo=UTC)  # this test's own instant: only its rows are in the window
    addresses = [f"person{i}@example.no" for i in range(5)]
    breach = _notified_breach(conn, addresses, at)

    with pytest.raises(NoticeDeliveryError, match="5 notice\\(s\\) queued again") as excinfo:
        send_notices(conn, POLICY, replace(server, port=1), limit=10, now=NOW, run_id="r0")
    assert excinfo.value.retryable and "example.no" not in str(excinfo.value)
    assert _states(conn, breach.breach_id) == {("queued", None): 5}

    with conn.cursor() as cur:  # the shop forgets one person before the notice goes out
        cur.execute("DELETE FROM shop.contact_messages WHERE email = %s", (addresses[0],))
    conn.commit()
    first = send_notices(conn, POLICY, server, limit=3, now=NOW, run_id="r1")
    second = send_notices(conn, POLICY, server, limit=3, now=NOW, run_id="r2")
    third = send_notices(conn, POLICY, server, limit=3, now=NOW, run_id="r3")
    assert (first.sent, first.failed) == ({breach.breach_id: 2}, {breach.breach_id: 1})
    assert (second.sent, third.sent) == ({breach.breach_id: 2}, {})
    assert sorted(m["To"] for m in inbox) == sorted(addresses[1:]), "each remaining person exactly once"
    assert _states(conn, breach.breach_id) == {("sent", None): 4, ("failed", "no_address"): 1}
    assert breach.breach_id in settle(conn, POLICY, now=NOW)


def test_a_notice_claimed_before_a_crash_is_never_sent_again(fresh_conn, smtp_server):
    conn = fresh_conn
    from governance.breach import send_notices, settle

    server, inbox = smtp_server
    at = datetime(2025, 6, 6, 6, 6, 6, 6, tzinfo=UTC)
    breach = _notified_breach(conn, ["crash.a@example.no", "crash.b@example.no"], at)
    with conn.cursor() as cur:  # a run claimed one notice, then died before marking it
        cur.execute(
            "UPDATE governance.breach_notices SET state = 'sending', claimed_at = %s WHERE notice_id = "
            "(SELECT min(notice_id) FROM governance.breach_notices WHERE breach_id = %s)",
            (NOW, breach.breach_id),
        )
    conn.commit()
    batch = send_notices(conn, POLICY, server, limit=10, now=NOW, run_id="after-crash")
    assert batch.sent == {breach.breach_id: 1} and len(inbox) == 1
    assert breach.breach_id not in settle(conn, POLICY, now=NOW), "a notice in 'sending' needs a person's check"


def _policy_with_order_store(tmp_path, **changes):
    import copy

    import yaml

    from governance.policy import DEFAULT_POLICY_PATH

    data = copy.deepcopy(yaml.safe_load(DEFAULT_POLICY_PATH.read_text()))
    store = next(s for c in data["categories"] for s in c["stores"] if s["table"] == "shop.orders")
    for key, value in changes.items():
        if value is None:
            store.pop(key)
        else:
            store[key] = value
    path = tmp_path / "breach_policy.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_policy(path)


def test_a_misspelt_breach_clock_is_named_by_the_database_check(conn, tmp_path):
    from governance.policy import PolicyError, require_database_match

    policy = _policy_with_order_store(tmp_path, breach_clock="placed_on")
    with pytest.raises(PolicyError, match="store 'shop.orders': column 'placed_on' does not exist in shop.orders"):
        require_database_match(policy, conn)


def test_a_person_store_without_breach_clock_is_refused_naming_it(conn, tmp_path):
    policy = _policy_with_order_store(tmp_path, breach_clock=None)
    with pytest.raises(BreachError, match="shop.orders name a person but have no breach_clock"):
        open_breach(
            conn,
            policy,
            categories=["CAT-3"],
            window_from=NOW - timedelta(days=1),
            window_to=NOW,
            description="Leak",
            now=NOW,
        )
