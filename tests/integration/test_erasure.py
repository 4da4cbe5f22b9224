"""Erasure of a verified person (ERA-1, #11) against a real PostgreSQL and moto S3 with versioning:
every record the data map reaches goes, set-based and evidenced; what the law keeps stays (a legal
hold, RET-8; order records anonymised with the RET-8 strategies, their lines kept); another person
is untouched; the independent check passes afterwards and fails on a planted leftover; a SIGKILL
between batches and a rerun lose nothing and record nothing twice; two runs at once erase once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from governance import errors as requests_errors
from governance import evidence, requests
from governance.cli import main
from governance.db import connect
from governance.erasure import answer_erasure, complete_erasure, erase_person, preview, verify_erasure
from governance.errors import ErasureFailed
from governance.holds import add_hold
from governance.notices import PSEUDONYM_KEY_ENV, pseudonym_key
from governance.objectstore import ensure_bucket
from governance.person.records import person_stores, read_store, snapshot
from governance.person.subject import resolve_subject
from governance.policy import load_policy

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
POLICY = load_policy()
BUCKET = "shop-uploads"
GUEST = "ola.nordmann@example.no"
GUEST_SPELLINGS = ["ola.nordmann@example.no", " OLA.Nordmann@example.no", "Ola.Nordmann@Example.NO  "]
HOLDER = "kari.hansen@example.no"
OTHER = "per.olsen@example.no"
SHOP_TABLES = [
    "shop.accounts",
    "shop.calendar_events",
    "shop.saved_products",
    "shop.saved_product_uploads",
    "shop.orders",
    "shop.order_lines",
    "shop.order_line_uploads",
    "shop.uploads",
    "shop.newsletter_subscriptions",
    "shop.newsletter_events",
    "shop.contact_messages",
    "shop.cookie_preferences",
]


def _one(cur, query: str, params: tuple = ()) -> int:
    cur.execute(query, params)
    return cur.fetchone()[0]


def _upload(cur, s3, account_id: int | None, name: str, versions: int = 3) -> int:
    key = f"uploads/{name}.jpg"
    for v in range(versions):
        s3.put_object(Bucket=BUCKET, Key=key, Body=f"{name} v{v}".encode())
    return _one(
        cur,
        "INSERT INTO shop.uploads (account_id, kind, bucket, object_key, byte_size, uploaded_at) "
        "VALUES (%s, 'photo', %s, %s, 10, %s) RETURNING upload_id",
        (account_id, BUCKET, key, NOW - timedelta(days=10)),
    )


def _order(cur, s3, email: str, account_id: int | None, name: str) -> int:
    order_id = _one(
        cur,
        "INSERT INTO shop.orders (account_id, email, first_name, last_name, phone, delivery_street, payment_method, "
        "card_last4, total_amount, placed_at) VALUES (%s, %s, 'Name', 'Surname', '+4712345678', 'Street 1', 'card', "
        "'4242', 199, %s) RETURNING order_id",
        (account_id, email, NOW - timedelta(days=30)),
    )
    line = _one(
        cur,
        "INSERT INTO shop.order_lines (order_id, product_type, quantity, unit_price) VALUES (%s, 'print', 2, 50) "
        "RETURNING order_line_id",
        (order_id,),
    )
    upload = _upload(cur, s3, account_id, f"{name}-order-{order_id}")
    cur.execute("INSERT INTO shop.order_line_uploads (order_line_id, upload_id) VALUES (%s, %s)", (line, upload))
    return order_id


def _person(cur, s3, email: str, name: str, *, account: bool) -> dict:
    """A person with every kind of record the data map knows; returns their ids."""
    ids: dict = {"account": None, "orders": [], "email": email}
    if account:
        ids["account"] = account_id = _one(
            cur,
            "INSERT INTO shop.accounts (email, password_hash, first_name, created_at) VALUES (%s, 'x', 'N', %s) "
            "RETURNING account_id",
            (email, NOW - timedelta(days=400)),
        )
        cur.execute(
            "INSERT INTO shop.calendar_events (account_id, title, event_date, created_at) "
            "VALUES (%s, 'birthday', '2026-07-01', %s), (%s, 'anniversary', '2026-08-01', %s)",
            (account_id, NOW, account_id, NOW),
        )
        saved = _one(
            cur,
            "INSERT INTO shop.saved_products (account_id, product_type, title, saved_at) "
            "VALUES (%s, 'photo_book', 'Summer', %s) RETURNING saved_product_id",
            (account_id, NOW),
        )
        upload = _upload(cur, s3, account_id, f"{name}-saved")
        cur.execute("INSERT INTO shop.saved_product_uploads VALUES (%s, %s)", (saved, upload))
        cur.execute(
            "INSERT INTO shop.cookie_preferences (visitor_key, account_id, analytics, marketing, given_at) "
            "VALUES (gen_random_uuid(), %s, true, false, %s)",
            (account_id, NOW),
        )
        ids["orders"].append(_order(cur, s3, email, account_id, name))
        spellings = [email.upper()]
    else:
        spellings = GUEST_SPELLINGS
    for spelling in spellings:  # guest orders under several spellings of one address
        ids["orders"].append(_order(cur, s3, spelling, None, name))
    sub = _one(
        cur,
        "INSERT INTO shop.newsletter_subscriptions (account_id, email, first_name, subscribed_at) "
        "VALUES (%s, %s, 'N', %s) RETURNING subscription_id",
        (ids["account"], email.title(), NOW - timedelta(days=100)),
    )
    cur.execute(
        "INSERT INTO shop.newsletter_events (subscription_id, kind, occurred_at) VALUES (%s, 'send', %s), (%s, 'open', %s)",
        (sub, NOW, sub, NOW),
    )
    cur.execute(
        "INSERT INTO shop.contact_messages (email, name, direction, subject, body, sent_at) "
        "VALUES (%s, 'N', 'inbound', 'Hi', 'Question', %s), (%s, 'N', 'outbound', 'Re: Hi', 'Answer', %s)",
        (f"  {email.upper()}", NOW, email, NOW),
    )
    return ids


@pytest.fixture(autouse=True)
def _pseudonym_key(monkeypatch):
    """TP-5: the recipients' notices name the person by keyed pseudonyms."""
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, "erasure-test-key-0123456789abcdef0123")


@pytest.fixture
def world(conn, s3):
    """The guest, the account holder and another person, in a clean shop; uploads versioned."""
    ensure_bucket(s3, BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    with conn.cursor() as cur:
        cur.execute(
            "TRUNCATE " + ", ".join(SHOP_TABLES) + ", governance.legal_holds, governance.erasure_work, "
            "governance.erasure_subjects, governance.request_exports, governance.request_contacts, "
            "governance.subject_requests CASCADE"  # ids go on: evidence names request-<id> for good
        )
        people = {
            "guest": _person(cur, s3, GUEST, "ola", account=False),
            "holder": _person(cur, s3, HOLDER, "kari", account=True),
            "other": _person(cur, s3, OTHER, "per", account=True),
        }
    conn.commit()
    return people


def _request(conn, *, email: str | None = None, account_id: int | None = None) -> int:
    request = requests.open_request(
        conn,
        POLICY,
        kind="erasure",
        email=email,
        account_id=account_id,
        reply_to=None if email else "answer@example.org",
        channel="email",
        opened_by="support:test",
        now=NOW,
    )
    requests.verify(conn, POLICY, request.request_id, verified_by="support:test", method="id_document", now=NOW)
    return request.request_id


def _snapshot(conn) -> dict[str, list]:
    """Every row of every shop table, as text."""
    with conn.cursor() as cur:
        out = {}
        for table in SHOP_TABLES:
            cur.execute(f"SELECT t::text FROM {table} t ORDER BY 1")  # noqa: S608 - fixed table names
            out[table] = [r[0] for r in cur.fetchall()]
    conn.rollback()
    return out


def _records_of(conn, people: list[dict]) -> dict[str, list]:
    """Every record of these people that the data map reaches, every column (the person finder)."""
    out: dict[str, list] = {}
    with snapshot(conn) as cur:
        for person in people:
            subject = resolve_subject(cur, POLICY, account_id=person["account"], email=person["email"])
            for _, store in person_stores(POLICY):
                out.setdefault(store.table, []).extend(read_store(cur, POLICY, subject, store))
    return out


def _versions(s3, prefix: str = "uploads/") -> set[str]:
    page = s3.list_object_versions(Bucket=BUCKET, Prefix=prefix)
    return {v["Key"] for v in page.get("Versions", []) + page.get("DeleteMarkers", [])}


def _batch_evidence(conn, request_id: int) -> list[tuple[str, dict]]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT step, counts FROM governance.evidence WHERE run_id = %s AND kind = 'erasure_batch' ORDER BY entry_id",
            (f"request-{request_id}",),
        )
        rows = cur.fetchall()
    conn.rollback()
    return rows


def _all_evidence_text(conn) -> str:
    with conn.cursor() as cur:
        cur.execute("SELECT string_agg(e::text, ' ') FROM governance.evidence e")
        text = cur.fetchone()[0] or ""
    conn.rollback()
    return text.lower()


def test_a_guest_under_several_spellings_is_erased_orders_anonymised_a_held_order_kept(conn, s3, world):
    """ERA-1, RET-8: the guest's records go; orders are anonymised (lines kept); one held order stays as it is."""
    held_order = world["guest"]["orders"][1]
    add_hold(
        conn,
        POLICY,
        scope="record",
        table_name="shop.orders",
        record_key=held_order,
        reason="tax audit 2026",
        set_by="legal",
        now=NOW - timedelta(days=1),
    )
    rid = _request(conn, email=" Ola.Nordmann@EXAMPLE.no")
    before = _snapshot(conn)
    others_before = _records_of(conn, [world["holder"], world["other"]])
    guest_keys = {k for k in _versions(s3) if "ola-" in k}
    assert guest_keys

    dry = preview(conn, POLICY, rid, now=NOW)
    assert dry["shop.orders"] == {"delete": 0, "anonymise": 2, "keep": 0, "held": 1}
    assert dry["shop.contact_messages"]["delete"] == 2 and dry["shop.order_lines"]["keep"] == 3
    assert _snapshot(conn) == before  # the dry run changed nothing

    outcome = answer_erasure(conn, s3, POLICY, rid, now=NOW)

    assert outcome["shop.orders.anonymised"] == 2 and outcome["shop.orders.held"] == 1
    assert outcome["shop.contact_messages.deleted"] == 2
    assert outcome["shop.newsletter_subscriptions.deleted"] == 1 and outcome["shop.newsletter_events.deleted"] == 2
    assert outcome["shop.order_lines.kept"] == 3
    assert outcome["check.objects_left"] == 0 and outcome["check.held.shop.orders"] == 1
    with conn.cursor() as cur:
        cur.execute(
            "SELECT order_id, email IS NULL, payment_method, anonymised_at IS NOT NULL FROM shop.orders "
            "WHERE order_id = ANY(%s) ORDER BY 1",
            (world["guest"]["orders"],),
        )
        orders = cur.fetchall()
        assert [(o[1], o[2], o[3]) for o in orders if o[0] != held_order] == [(True, "anonymised", True)] * 2
        assert [(o[1], o[2]) for o in orders if o[0] == held_order] == [(False, "card")]  # held: untouched
        assert (
            _one(cur, "SELECT count(*) FROM shop.order_lines WHERE order_id = ANY(%s)", (world["guest"]["orders"],))
            == 3
        )
        # a hold keeps what it reaches: the held order's photo stays with it, the others go
        assert _one(cur, "SELECT count(*) FROM shop.uploads WHERE object_key LIKE 'uploads/ola-%%'") == 1
        assert _one(cur, "SELECT state FROM governance.subject_requests WHERE request_id = %s", (rid,)) == "completed"
    conn.rollback()
    held_key = f"uploads/ola-order-{held_order}.jpg"
    assert guest_keys & _versions(s3) == {held_key}  # every version and delete marker of the others gone
    assert outcome["shop.uploads.held"] == 1 and outcome["shop.uploads.deleted"] == 2
    assert _records_of(conn, [world["holder"], world["other"]]) == others_before  # nobody else changed
    assert sum(map(len, others_before.values())) > 20
    assert any(k.startswith("uploads/per-") for k in _versions(s3)) and any("kari" in k for k in _versions(s3))
    assert all(n not in _all_evidence_text(conn) for n in ["ola.nordmann", "example.no", "street"])
    assert evidence.verify(conn).ok


def test_an_account_holder_is_erased_by_account_id_and_another_person_is_untouched(conn, s3, world):
    """ERA-1: account, calendar, saved products, cookies, uploads (all versions), newsletter, messages; orders anonymised."""
    account = world["holder"]["account"]
    rid = _request(conn, account_id=account)
    others_before = _records_of(conn, [world["guest"], world["other"]])
    outcome = answer_erasure(conn, s3, POLICY, rid, now=NOW)
    assert outcome["shop.accounts.deleted"] == 1 and outcome["shop.calendar_events.deleted"] == 2
    assert outcome["shop.saved_products.deleted"] == 1 and outcome["shop.cookie_preferences.deleted"] == 1
    assert outcome["shop.uploads.deleted"] == 3 and outcome["shop.uploads.object_versions_deleted"] == 9
    assert outcome["shop.orders.anonymised"] == 2 and outcome["shop.contact_messages.deleted"] == 2
    assert not [k for k in _versions(s3) if "kari" in k]
    assert _records_of(conn, [world["guest"], world["other"]]) == others_before
    assert len(_snapshot(conn)["shop.accounts"]) == 1  # the other account
    assert evidence.verify(conn).ok


def test_the_independent_check_fails_on_a_planted_leftover_and_the_request_does_not_complete(conn, s3, world):
    """ERA-1: the check is not the erasure's selection; a record it did not erase makes it fail, by id and counts."""
    rid = _request(conn, email=GUEST)
    requests.start(conn, POLICY, rid, now=NOW)
    outcome = erase_person(conn, s3, POLICY, rid, now=NOW)
    assert verify_erasure(conn, s3, POLICY, rid, now=NOW).ok
    with conn.cursor() as cur:  # a message that arrives from the address under another spelling
        cur.execute(
            "INSERT INTO shop.contact_messages (email, direction, body, sent_at) VALUES (%s, 'inbound', 'Hello', %s)",
            ("OLA.NORDMANN@EXAMPLE.NO ", NOW),
        )
        # the address quoted inside another person's message body: not on an index, so not the
        # per-request check's; the audit's rights check finds it (test_audit_rights.py)
        cur.execute(
            "INSERT INTO shop.contact_messages (email, direction, body, sent_at) VALUES "
            "('someone@else.no', 'inbound', %s, %s)",
            ("please write to OLA.NORDMANN@EXAMPLE.NO", NOW),
        )
        sub = _one(  # and a subscription (with an event, found through its link) under another spelling
            cur,
            "INSERT INTO shop.newsletter_subscriptions (email, subscribed_at) VALUES (' Ola.Nordmann@example.NO', %s) "
            "RETURNING subscription_id",
            (NOW,),
        )
        cur.execute(
            "INSERT INTO shop.newsletter_events (subscription_id, kind, occurred_at) VALUES (%s, 'open', %s)",
            (sub, NOW),
        )
    conn.commit()
    s3.put_object(Bucket=BUCKET, Key=f"uploads/ola-order-{world['guest']['orders'][0]}.jpg", Body=b"again")
    check = verify_erasure(conn, s3, POLICY, rid, now=NOW)
    assert not check.ok and check.objects_left == 1
    assert check.left == {"shop.contact_messages": 1, "shop.newsletter_subscriptions": 1, "shop.newsletter_events": 1}
    with pytest.raises(ErasureFailed) as failed:
        complete_erasure(conn, POLICY, check, outcome, now=NOW)
    message = str(failed.value)
    assert f"request {rid}" in message and "shop.contact_messages: 1" in message and "objects: 1" in message
    assert "shop.newsletter_events: 1" in message
    assert "ola" not in message.lower() and "@" not in message
    with conn.cursor() as cur:
        assert _one(cur, "SELECT state FROM governance.subject_requests WHERE request_id = %s", (rid,)) == "in_progress"
        assert (
            _one(
                cur,
                "SELECT count(*) FROM governance.evidence WHERE kind = 'erasure_check_failed' AND run_id = %s",
                (f"request-{rid}",),
            )
            == 1
        )
    conn.rollback()


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from datetime import datetime
    import psycopg2.extensions
    from governance.db import connect
    from governance.erasure import erase_person
    from governance.objectstore import make_client
    from governance.policy import load_policy
    from governance.settings import resolve

    class Killing(psycopg2.extensions.connection):
        commits = 0
        def commit(self):
            super().commit()
            Killing.commits += 1
            when = os.environ["KILL_AFTER"]
            if when == "tombstone":  # right after a tombstone committed, before its objects go
                with self.cursor() as cur:
                    cur.execute("SELECT EXISTS (SELECT 1 FROM governance.erasure_work WHERE state = 'purging')")
                    due = cur.fetchone()[0]
                super().rollback()
            else:
                due = Killing.commits == int(when)
            if due:
                os.kill(os.getpid(), signal.SIGKILL)  # between two batches, as a crash would

    import psycopg2
    conn = psycopg2.connect(sys.argv[1], connection_factory=Killing, options="-c TimeZone=UTC")
    s3 = make_client(resolve(None, sys.argv[2]))
    erase_person(conn, s3, load_policy(), int(sys.argv[3]), now=datetime.fromisoformat(sys.argv[4]), batch_size=1)
    """
)


@pytest.mark.parametrize("kill_after", ["4", "9", "tombstone"])
def test_a_sigkill_between_batches_then_a_rerun_finishes_with_nothing_lost_and_no_double_evidence(
    conn, s3, s3_url, db_url, world, tmp_path, kill_after
):
    """ERA-1: a crash mid-erasure (SIGKILL after a committed batch); the rerun finishes; each batch evidenced once."""
    rid = _request(conn, account_id=world["holder"]["account"])
    requests.start(conn, POLICY, rid, now=NOW)
    script = tmp_path / "kill.py"
    script.write_text(KILLER)
    env = {
        **os.environ,
        "KILL_AFTER": kill_after,
        "PYTHONPATH": str(Path(__file__).parents[2] / "include"),
    }
    done = subprocess.run(
        [sys.executable, str(script), db_url, s3_url, str(rid), NOW.isoformat()],
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == -9, done.stderr.decode()[-2000:]
    partial = _batch_evidence(conn, rid)
    assert partial  # some batches committed before the kill
    if kill_after == "tombstone":
        assert partial[-1][0].split("#")[0].endswith(":tombstone") and any("kari" in k for k in _versions(s3))

    outcome = answer_erasure(conn, s3, POLICY, rid, now=NOW)

    entries = _batch_evidence(conn, rid)
    assert entries[: len(partial)] == partial
    assert len({step for step, _ in entries}) == len(entries)  # every step once (step#n numbered)
    deleted: dict[str, int] = {}
    for step, counts in entries:
        table = step.split(":")[0]
        deleted[table] = deleted.get(table, 0) + counts.get("deleted", 0) + counts.get("anonymised", 0)
    assert deleted["shop.calendar_events"] == 2 and deleted["shop.accounts"] == 1
    assert deleted["shop.orders"] == 2 and deleted["shop.uploads"] == 3
    assert outcome["check.objects_left"] == 0
    assert not [k for k in _versions(s3) if "kari" in k]
    assert evidence.verify(conn).ok
    # TP-5: the notices name the person as found before the crash (the account and its address),
    # though the rerun could no longer find the address; one per recipient, queued once.
    key = pseudonym_key()
    with conn.cursor() as cur:
        cur.execute(
            "SELECT recipient_id, subject_pseudonyms FROM governance.recipient_outbox WHERE request_id = %s", (rid,)
        )
        named = dict(cur.fetchall())
    conn.rollback()
    assert len(named) == outcome["notices"] == len({r.id for r in POLICY.recipients})
    account = world["holder"]["account"]
    assert all(p == key.pseudonyms(r, emails=[HOLDER], account_ids=[account]) for r, p in named.items())


def test_two_runs_of_one_request_at_once_erase_once(conn, s3, db_url, world):
    """ERA-1: the second run waits for the first (advisory lock), then returns its outcome; nothing twice."""
    rid = _request(conn, email=GUEST)
    results: list = []
    errors: list = []

    def run() -> None:
        c = connect(db_url)
        try:
            results.append(answer_erasure(c, s3, POLICY, rid, now=NOW))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            c.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and len(results) == 2 and results[0] == results[1]
    with conn.cursor() as cur:
        assert (
            _one(
                cur,
                "SELECT count(*) FROM governance.evidence WHERE kind = 'erasure_planned' AND run_id = %s",
                (f"request-{rid}",),
            )
            == 1
        )
        assert (
            _one(
                cur,
                "SELECT count(*) FROM governance.evidence WHERE kind = 'request_completed' AND run_id = %s",
                (f"request-{rid}",),
            )
            == 1
        )
    conn.rollback()
    total = sum(c.get("deleted", 0) for _, c in _batch_evidence(conn, rid) if c)
    assert total == sum(v for k, v in results[0].items() if k.endswith(".deleted") and not k.startswith("check."))


def test_cli_dry_run_changes_nothing_then_erase_completes(conn, s3_url, db_url, world, capsys, s3):
    """`governance request erase ID --dry-run` prints counts only; without it the request completes."""
    rid = _request(conn, email=GUEST)
    before = _snapshot(conn)
    base = ["--db-url", db_url, "--s3-endpoint-url", s3_url, "--now", NOW.isoformat()]
    assert main(["request", "erase", str(rid), "--dry-run", "--json", *base]) == 0
    printed = capsys.readouterr().out
    assert json.loads(printed)["shop.orders"]["anonymise"] == 3 and "@" not in printed
    assert _snapshot(conn) == before
    assert main(["request", "erase", str(rid), *base]) == 0
    printed = capsys.readouterr().out
    assert "completed" in printed and "ola" not in printed.lower()
    assert main(["request", "erase", str(rid), *base]) == 0  # a rerun of a completed erasure: its outcome


def test_a_person_hold_keeps_everything_of_the_person_and_the_check_counts_it_held(conn, s3, world):
    """RET-8: a hold on the person keeps every record the data map reaches, linked ones too; counted as held."""
    account = world["holder"]["account"]
    add_hold(conn, POLICY, scope="person", account_id=account, reason="litigation", set_by="legal", now=NOW)
    rid = _request(conn, account_id=account)
    before = _records_of(conn, [world["holder"]])
    outcome = answer_erasure(conn, s3, POLICY, rid, now=NOW)
    assert _records_of(conn, [world["holder"]]) == before  # nothing of the person changed
    assert not [k for k in outcome if k.endswith((".deleted", ".anonymised")) and outcome[k]]
    assert outcome["shop.accounts.held"] == 1 and outcome["shop.newsletter_events.held"] == 2
    assert outcome["shop.uploads.held"] == 3 and outcome["check.held.shop.uploads"] == 3
    assert sum(1 for k in _versions(s3) if "kari" in k) == 3


def test_the_persons_earlier_export_archive_goes_and_the_open_requests_answer_address_stays(conn, s3, world):
    """ERA-1, RET-9: an export archive of an earlier (closed) request is the person's copy: purged with
    its object; the erasure request's own answer address is kept while it is open (REQ-1)."""
    exports = POLICY.object_store.exports_bucket
    ensure_bucket(s3, exports)
    access = requests.open_request(
        conn, POLICY, kind="access", email=GUEST, channel="email", opened_by="support:test", now=NOW - timedelta(days=3)
    ).request_id
    requests.verify(conn, POLICY, access, verified_by="support", method="id_document", now=NOW - timedelta(days=3))
    requests.start(conn, POLICY, access, now=NOW - timedelta(days=3))
    s3.put_object(Bucket=exports, Key=f"exports/{access}.zip", Body=b"zip")
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO governance.request_exports (request_id, bucket, object_key, created_at, byte_size, sha256, "
            "file_count) VALUES (%s, %s, %s, %s, 3, %s, 1)",
            (access, exports, f"exports/{access}.zip", NOW - timedelta(days=2), "0" * 64),
        )
        requests.complete(cur, POLICY, access, outcome={"files": 1}, now=NOW - timedelta(days=2))
    conn.commit()
    rid = _request(conn, email=GUEST)
    outcome = answer_erasure(conn, s3, POLICY, rid, now=NOW)
    assert outcome["governance.request_exports.deleted"] == 1
    assert outcome["governance.request_contacts.deleted"] == 1  # the closed request's
    assert outcome["governance.request_contacts.kept"] == 1  # this request's, for its answer (RET-9 removes it)
    page = s3.list_object_versions(Bucket=exports, Prefix="exports/")
    assert not page.get("Versions") and not page.get("DeleteMarkers")
    with conn.cursor() as cur:
        assert _one(cur, "SELECT count(*) FROM governance.request_contacts WHERE request_id = %s", (rid,)) == 1
        assert _one(cur, "SELECT count(*) FROM governance.subject_requests WHERE request_id = %s", (access,)) == 1
    conn.rollback()


def test_the_plan_comes_from_the_data_map_children_first(conn, world):
    """ERA-1: the order and what happens to each store are derived from links and foreign keys, not named."""
    from governance.erasure.plan import erasure_plan

    with conn.cursor() as cur:
        plans = erasure_plan(cur, POLICY)
    conn.rollback()
    order = [p.table for p in plans]
    for child, parent in [
        ("shop.calendar_events", "shop.accounts"),
        ("shop.orders", "shop.accounts"),
        ("shop.order_lines", "shop.orders"),
        ("shop.uploads", "shop.order_lines"),
        ("shop.uploads", "shop.saved_products"),
        ("shop.newsletter_events", "shop.newsletter_subscriptions"),
        ("governance.request_exports", "governance.request_contacts"),
    ]:
        assert order.index(child) < order.index(parent), (child, parent)
    by_table = {p.table: p for p in plans}
    assert by_table["shop.orders"].disposition == "anonymise" and by_table["shop.order_lines"].disposition == "keep"
    assert by_table["shop.uploads"].purges_objects and by_table["shop.contact_messages"].disposition == "erase"
    assert by_table["governance.request_contacts"].request_column == "request_id"
    assert "shop.visits" not in by_table  # unidentifiable


def test_an_unverified_request_is_refused_and_nothing_changes(conn, s3, world):
    """REQ-1: nothing is erased for a request whose identity was not verified."""
    rid = requests.open_request(
        conn, POLICY, kind="erasure", email=GUEST, channel="email", opened_by="support:test", now=NOW
    ).request_id
    before = _snapshot(conn)
    with pytest.raises(requests_errors.RequestError, match=f"request {rid} is not verified"):
        answer_erasure(conn, s3, POLICY, rid, now=NOW)
    assert _snapshot(conn) == before
    access = requests.open_request(
        conn, POLICY, kind="access", email=OTHER, channel="email", opened_by="support:test", now=NOW
    ).request_id
    requests.verify(conn, POLICY, access, verified_by="support", method="bankid", now=NOW)
    with pytest.raises(requests_errors.RequestError, match="not an erasure"):
        answer_erasure(conn, s3, POLICY, access, now=NOW)
    with conn.cursor() as cur:
        assert _one(cur, "SELECT state FROM governance.subject_requests WHERE request_id = %s", (access,)) == "verified"
    conn.rollback()


def test_an_object_that_will_not_go_stops_the_erasure_by_table_and_a_rerun_finishes_it(conn, s3, world):
    """ERA-1: a record whose object cannot be deleted (outside the policy's prefix) stays tombstoned,
    the request does not complete, the error names table and count; once fixed, a rerun finishes."""
    order = world["guest"]["orders"][0]
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE shop.uploads SET object_key = 'elsewhere/x.jpg' WHERE object_key = %s",
            (f"uploads/ola-order-{order}.jpg",),
        )
    conn.commit()
    s3.put_object(Bucket=BUCKET, Key="elsewhere/x.jpg", Body=b"x")
    rid = _request(conn, email=GUEST)
    with pytest.raises(ErasureFailed, match=r"records left \(shop.uploads: 1\)") as failed:
        answer_erasure(conn, s3, POLICY, rid, now=NOW)
    assert "ola" not in str(failed.value).lower() and "elsewhere" not in str(failed.value)
    assert [
        c.get("object_errors") for _, c in _batch_evidence(conn, rid) if "object_errors" in c and c["object_errors"]
    ]
    with conn.cursor() as cur:
        assert _one(cur, "SELECT count(*) FROM shop.uploads WHERE state = 'purging'") == 1
        assert _one(cur, "SELECT state FROM governance.subject_requests WHERE request_id = %s", (rid,)) == "in_progress"
        cur.execute(  # the operator moves the object under the policy's prefix (runbook)
            "UPDATE governance.erasure_work SET object_key = 'uploads/moved.jpg' WHERE object_key = 'elsewhere/x.jpg'"
        )
    conn.commit()
    s3.put_object(Bucket=BUCKET, Key="uploads/moved.jpg", Body=b"x")
    outcome = answer_erasure(conn, s3, POLICY, rid, now=NOW)
    assert outcome["check.objects_left"] == 0 and "uploads/moved.jpg" not in _versions(s3)
