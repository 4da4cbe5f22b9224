"""The erasure ledger outside the database and its replay after a restore from a backup (ERA-1, #11),
against a real PostgreSQL (pg_dump / pg_restore) and moto S3 with Object Lock.

An erasure writes one entry (ids, instants, pseudonyms: no address) to the ledger bucket, which
Object Lock (COMPLIANCE) keeps from deletion; a ledger that cannot be written leaves the request in
progress. Take a dump, erase two people, restore the dump: they are back; the replay erases them
again, set-based (the held order kept, the others anonymised, the other person untouched), a second
replay does nothing and records nothing, a dry run changes nothing, a bad --since is refused, and
the DAG erasure_replay does the same through dag.test()."""

from __future__ import annotations

import hashlib
import json
import subprocess
from datetime import timedelta

import botocore.exceptions
import pytest

from governance import evidence
from governance.cli import main
from governance.db import connect
from governance.erasure import answer_erasure
from governance.erasure.ledger import read_entries
from governance.erasure.replay import replay
from governance.errors import ErasureFailed, EvidenceBroken, OptionError
from governance.holds import add_hold
from governance.objectstore import ensure_bucket
from tests.integration import test_erasure
from tests.integration.test_erasure import (
    GUEST,
    HOLDER,
    NOW,
    OTHER,
    POLICY,
    SHOP_TABLES,
    _one,
    _records_of,
    _request,
    _versions,
)

pytestmark = [pytest.mark.integration]

world = test_erasure.world  # the fixture: the guest, the account holder and another person, objects versioned
_pseudonym_key = test_erasure._pseudonym_key  # autouse: an erasure's notices name the person by keyed pseudonyms (TP-5)

LEDGER = POLICY.object_store.erasure_ledger_bucket
KEY = "k" * 40
LATER = NOW + timedelta(hours=1)


def _ledger(s3) -> list[dict]:
    page = s3.list_object_versions(Bucket=LEDGER, Prefix="erasures/")
    return page.get("Versions", [])


def _counts(conn) -> dict[str, int]:
    with conn.cursor() as cur:
        out = {t: _one(cur, f"SELECT count(*) FROM {t}") for t in SHOP_TABLES}  # noqa: S608 - fixed names
    conn.rollback()
    return out


def _evidence(conn, kind_like: str = "erasure_replay%") -> int:
    with conn.cursor() as cur:
        n = _one(cur, "SELECT count(*) FROM governance.evidence WHERE kind LIKE %s", (kind_like,))
    conn.rollback()
    return n


def _guest_left(conn) -> dict[str, int]:
    """Plain SQL, not the replay's selection: the guest's address anywhere, and what an erasure leaves."""
    with conn.cursor() as cur:
        address = "%ola.nordmann@example.no%"
        found = {
            "orders_with_address": _one(cur, "SELECT count(*) FROM shop.orders WHERE lower(email) LIKE %s", (address,)),
            "messages": _one(cur, "SELECT count(*) FROM shop.contact_messages WHERE lower(email) LIKE %s", (address,)),
            "subscriptions": _one(
                cur, "SELECT count(*) FROM shop.newsletter_subscriptions WHERE lower(email) LIKE %s", (address,)
            ),
            "uploads": _one(cur, "SELECT count(*) FROM shop.uploads WHERE object_key LIKE 'uploads/ola-%%'"),
            "holder_account": _one(cur, "SELECT count(*) FROM shop.accounts WHERE lower(email) = %s", (HOLDER,)),
        }
    conn.rollback()
    return found


def _dump(db_url: str, path) -> None:
    subprocess.run(["pg_dump", "-Fc", "-f", str(path), "-d", db_url], check=True, capture_output=True)


def _restore(db_url: str, path) -> None:
    """Into a fresh database (pg_restore --clean cannot drop a partition's inherited constraints)."""
    done = subprocess.run(
        ["pg_restore", "--single-transaction", "--exit-on-error", "-d", db_url, str(path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


def test_the_ledger_entry_names_no_one_and_object_lock_refuses_its_deletion(conn, s3, world, monkeypatch):
    """ERA-1, SEC-1: one entry per erasure (request id, instant, pseudonyms, HMAC); no address in its bytes."""
    monkeypatch.setenv("GOVERNANCE_EVIDENCE_KEY", KEY)
    rid = _request(conn, email=GUEST)
    answer_erasure(conn, s3, POLICY, rid, now=NOW)
    (version,) = _ledger(s3)
    assert version["Key"] == f"erasures/2026/06/01/20260601T120000000000Z-request-{rid:012d}.json"
    body = s3.get_object(Bucket=LEDGER, Key=version["Key"])["Body"].read()
    for personal in ("ola", "nordmann", "example.no", "@"):
        assert personal not in body.decode().lower()
    entry = json.loads(body)
    assert entry["request_id"] == rid and entry["erased_at"] == "2026-06-01T12:00:00.000000Z"
    assert hashlib.sha256(GUEST.encode()).hexdigest() in entry["email_sha256s"]
    assert entry["keep_categories"] == [] and entry["mac_algorithm"] == "HMAC-SHA256" and entry["kind"] == "erasure"
    (_, read), *_ = read_entries(s3, LEDGER, NOW)
    assert read is not None and read.mac_ok(KEY.encode())
    with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
        s3.delete_object(Bucket=LEDGER, Key=version["Key"], VersionId=version["VersionId"])
    assert len(_ledger(s3)) == 1


def test_a_ledger_that_cannot_be_written_leaves_the_request_in_progress(conn, s3, world):
    """ERA-1: a bucket without Object Lock is refused by name; the request stays open; a rerun completes it."""
    ensure_bucket(s3, LEDGER)  # a plain bucket: entries there could be deleted
    rid = _request(conn, email=GUEST)
    with pytest.raises(ErasureFailed) as failed:
        answer_erasure(conn, s3, POLICY, rid, now=NOW)
    message = str(failed.value)
    assert LEDGER in message and "Object Lock" in message and f"request {rid}" in message and "ola" not in message
    with conn.cursor() as cur:
        assert _one(cur, "SELECT state FROM governance.subject_requests WHERE request_id = %s", (rid,)) == "in_progress"
    conn.rollback()
    fixed = POLICY.model_copy(
        update={"object_store": POLICY.object_store.model_copy(update={"erasure_ledger_bucket": "erasure-ledger-2"})}
    )
    answer_erasure(conn, s3, fixed, rid, now=NOW)
    assert len(s3.list_objects_v2(Bucket="erasure-ledger-2")["Contents"]) == 1


def test_erasures_restored_from_a_dump_are_replayed_once(conn, s3, world, db_url, make_database, tmp_path, capsys):
    """ERA-1, RET-8: dump, erase two people, restore: they are back; the replay erases them again."""
    held_order = world["guest"]["orders"][1]
    add_hold(
        conn,
        POLICY,
        scope="record",
        table_name="shop.orders",
        record_key=held_order,
        reason="tax audit",
        set_by="legal",
        now=NOW - timedelta(days=1),
    )
    other_before = _records_of(conn, [world["other"]])
    dump = tmp_path / "shop.dump"
    _dump(db_url, dump)
    for rid in (_request(conn, email=GUEST), _request(conn, account_id=world["holder"]["account"])):
        answer_erasure(conn, s3, POLICY, rid, now=NOW)
    erased = _counts(conn)
    assert _guest_left(conn) == dict.fromkeys(_guest_left(conn), 0) | {"orders_with_address": 1, "uploads": 1}
    restored_url = make_database(apply=False)
    _restore(restored_url, dump)
    conn = connect(restored_url)
    assert (
        _guest_left(conn)["messages"] == 2 and _guest_left(conn)["holder_account"] == 1
    )  # the restore brought them back
    restored, evidence_before = _counts(conn), _evidence(conn)

    dry = replay(conn, s3, POLICY, NOW - timedelta(minutes=1), now=LATER, dry_run=True)
    assert dry.entries == 2 and dry.found["shop.orders"] == {"pending": 4, "held": 1} and not dry.tables
    assert _counts(conn) == restored and _evidence(conn) == evidence_before  # a dry run changes nothing

    done = replay(conn, s3, POLICY, NOW - timedelta(minutes=1), now=LATER)
    assert done.tables["shop.orders"]["anonymised"] == 4 and done.tables["shop.contact_messages"]["deleted"] == 4
    assert done.tables["shop.uploads"]["deleted"] == 5  # their objects were gone already: no failure
    assert done.check["objects_left"] == 0 and done.check["held.shop.orders"] == 1
    assert _counts(conn) == erased  # as many records as right after the erasures
    assert _guest_left(conn) == dict.fromkeys(_guest_left(conn), 0) | {"orders_with_address": 1, "uploads": 1}
    with conn.cursor() as cur:
        cur.execute(
            "SELECT order_id, email IS NULL AND account_id IS NULL AND payment_method = 'anonymised' "
            "AND anonymised_at IS NOT NULL FROM shop.orders WHERE order_id = ANY(%s) ORDER BY 1",
            (world["guest"]["orders"] + world["holder"]["orders"],),
        )
        assert {o: anonymised for o, anonymised in cur.fetchall()} == {
            o: o != held_order for o in world["guest"]["orders"] + world["holder"]["orders"]
        }
    conn.rollback()
    assert _records_of(conn, [world["other"]]) == other_before  # the other person untouched
    recorded = _evidence(conn)
    assert recorded > evidence_before and "ola" not in _evidence_text(conn) and evidence.verify(conn).ok

    again = replay(conn, s3, POLICY, NOW - timedelta(minutes=1), now=LATER + timedelta(minutes=5))
    assert not any(n for counts in again.tables.values() for n in counts.values()) and not again.check
    assert all(t["pending"] == 0 for t in again.found.values())
    assert _evidence(conn) == recorded and _counts(conn) == erased  # no effect, no evidence

    code = main(
        [
            "erasure",
            "replay",
            "--since",
            "2026-06-01T11:00:00Z",
            "--json",
            "--db-url",
            restored_url,
            "--s3-endpoint-url",
            s3.meta.endpoint_url,
            "--now",
            "2026-06-01T13:30:00Z",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and json.loads(out)["entries"] == 2 and "ola" not in out.lower() and "@" not in out
    conn.close()


def test_a_replay_tombstones_only_the_uploads_whose_objects_are_back(conn, s3, world, db_url, make_database, tmp_path):
    """ERA-1, ADR 0004: after a restore a listing finds most objects gone: their rows are deleted at
    once, without a tombstone; an object written again since (two versions) takes the tombstone's
    path: every version purged, then its row."""
    dump = tmp_path / "shop.dump"
    _dump(db_url, dump)
    answer_erasure(conn, s3, POLICY, _request(conn, account_id=world["holder"]["account"]), now=NOW)
    restored_url = make_database(apply=False)
    _restore(restored_url, dump)
    conn = connect(restored_url)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT object_key FROM shop.uploads WHERE object_key LIKE 'uploads/kari-%%' ORDER BY upload_id", ()
        )
        keys = [k for (k,) in cur.fetchall()]
    conn.rollback()
    assert len(keys) >= 2 and not any(_versions(s3, k) for k in keys)  # the erasure purged them all
    for body in (b"back", b"back again"):
        s3.put_object(Bucket=test_erasure.BUCKET, Key=keys[0], Body=body)

    done = replay(conn, s3, POLICY, NOW - timedelta(minutes=1), now=LATER)
    assert done.tables["shop.uploads"] == {
        "deleted": len(keys),
        "held": 0,
        "tombstoned": 1,
        "object_versions_deleted": 2,
        "object_errors": 0,
    }
    assert not _versions(s3, keys[0]) and done.check["objects_left"] == 0
    with conn.cursor() as cur:
        assert _one(cur, "SELECT count(*) FROM shop.uploads WHERE object_key LIKE 'uploads/kari-%%'") == 0
        cur.execute(
            "SELECT split_part(step, '#', 1), counts, details->>'objects' FROM governance.evidence "
            "WHERE kind = 'erasure_replayed' AND step LIKE 'shop.uploads:%%' ORDER BY entry_id"
        )
        steps = cur.fetchall()
    conn.rollback()
    assert steps == [
        ("shop.uploads:delete", {"deleted": len(keys) - 1, "held": 0}, "none left"),
        ("shop.uploads:tombstone", {"tombstoned": 1, "held": 0}, None),
        ("shop.uploads:purge", {"deleted": 1, "object_versions_deleted": 2, "object_errors": 0}, None),
    ]
    conn.close()


def _evidence_text(conn) -> str:
    with conn.cursor() as cur:
        cur.execute("SELECT string_agg(e::text, ' ') FROM governance.evidence e WHERE kind LIKE 'erasure_replay%%'")
        text = cur.fetchone()[0] or ""
    conn.rollback()
    return text.lower()


def test_a_bad_since_is_refused_naming_the_flag(conn, s3, db_url, capsys):
    """ERA-1: --since must be an instant, not in the future; nothing runs otherwise."""
    common = ["--db-url", db_url, "--s3-endpoint-url", s3.meta.endpoint_url]
    with pytest.raises(SystemExit) as exited:
        main(["erasure", "replay", "--since", "yesterday", *common])
    assert exited.value.code == 2 and "--since" in capsys.readouterr().err
    assert main(["erasure", "replay", "--since", "2999-01-01T00:00:00Z", *common]) == 2
    assert "--since" in capsys.readouterr().err
    with pytest.raises(OptionError, match="--since"):
        replay(conn, s3, POLICY, LATER, now=NOW)


def test_an_altered_ledger_refuses_the_whole_replay(conn, s3, world, monkeypatch):
    """ERA-1, SEC-1: an entry whose MAC does not match the evidence key stops the replay before anything changes."""
    monkeypatch.setenv("GOVERNANCE_EVIDENCE_KEY", KEY)
    answer_erasure(conn, s3, POLICY, _request(conn, email=GUEST), now=NOW)
    (version,) = _ledger(s3)
    entry = json.loads(s3.get_object(Bucket=LEDGER, Key=version["Key"])["Body"].read())
    entry["account_ids"] = [world["other"]["account"]]  # someone else's records, under a forged entry
    s3.put_object(Bucket=LEDGER, Key=version["Key"].replace("request-", "request-9"), Body=json.dumps(entry).encode())
    before = _counts(conn)
    with pytest.raises(EvidenceBroken, match="MAC"):
        replay(conn, s3, POLICY, NOW - timedelta(minutes=1), now=LATER, key=KEY.encode())
    assert _counts(conn) == before


@pytest.mark.slow
def test_the_dag_replays_and_a_rerun_does_nothing(conn, s3, world, airflow_home, airflow_connections):
    """ERA-1: erasure_replay through dag.test(): the replay's counts in its XCom, ids and counts only."""
    from tests.integration import request_support as rs

    answer_erasure(conn, s3, POLICY, _request(conn, email=OTHER), now=NOW)
    with conn.cursor() as cur:  # a restore brings a record of the person back
        cur.execute(
            "INSERT INTO shop.contact_messages (email, direction, body, sent_at) VALUES (%s, 'inbound', 'hi', %s)",
            (OTHER, NOW),
        )
    conn.commit()
    dag = rs.loaded_dag("erasure_replay")
    conf = {"since": "2026-06-01T11:00:00Z", "dry_run": False}
    run = dag.test(logical_date=LATER, run_conf=conf)
    assert str(run.state) == "success"
    with conn.cursor() as cur:
        assert _one(cur, "SELECT count(*) FROM shop.contact_messages WHERE email = %s", (OTHER,)) == 0
    conn.rollback()
    recorded = _evidence(conn)
    again = dag.test(logical_date=LATER + timedelta(minutes=1), run_conf=conf)
    assert str(again.state) == "success" and _evidence(conn) == recorded
    bad = dag.test(logical_date=LATER + timedelta(minutes=2), run_conf={"since": "soon", "dry_run": False})
    assert str(bad.state) == "failed"


def test_a_request_written_twice_is_replayed_once_from_its_latest_entry(s3):
    """ERA-1: a rerun of an erasure writes its entry again; the replay keeps the latest per request."""
    from governance.erasure.ledger import LedgerEntry
    from governance.erasure.replay import ledger_entries
    from governance.objectstore import locked_bucket_mode, put_locked

    locked_bucket_mode(s3, LEDGER, 1)
    for minute, accounts in ((1, [7]), (2, [7, 8])):
        entry = LedgerEntry(42, "erasure", f"2026-06-01T12:0{minute}:00.000000Z", accounts, [], [])
        put_locked(s3, LEDGER, entry.object_key(), entry.to_bytes(), LATER + timedelta(days=1))
    (only,) = ledger_entries(s3, POLICY, NOW, None)
    assert only.account_ids == [7, 8] and only.erased_at.startswith("2026-06-01T12:02")
    with pytest.raises(EvidenceBroken, match="no MAC"):  # with a key, an unsigned entry could be anyone's
        ledger_entries(s3, POLICY, NOW, KEY.encode())
    assert ledger_entries(s3, POLICY, NOW, KEY.encode(), allow_unsigned=True) == [only]
    (later,) = ledger_entries(s3, POLICY, NOW + timedelta(minutes=1, seconds=30), None)  # --since after the first
    assert later == only
    put_locked(s3, LEDGER, "erasures/2026/06/01/x.json", b"{}", LATER + timedelta(days=1))  # not an entry
    with pytest.raises(EvidenceBroken, match="erasures/2026/06/01/x.json"):
        ledger_entries(s3, POLICY, NOW, None)


def test_a_hundred_thousand_subjects_are_hashed_not_rescanned_for_each_row(conn):
    """ERA-1 at scale: the subjects' "IN" under an OR is a sub-plan; with the server's default
    work_mem, 120,000 pseudonyms would not be hashed and every order would rescan them (a replay of
    100,000 erasures ran for minutes on one statement). Loading them raises work_mem to hash both."""
    from psycopg2 import sql

    from governance.erasure import replay_work
    from governance.person.records import person_predicate
    from governance.policy import load_policy

    policy = load_policy()
    with conn.cursor() as cur:
        cur.execute("SHOW work_mem")
        before = cur.fetchone()[0]
        replay_work.create_scratch(cur)
        replay_work.load_subjects(cur, range(1, 60_001), [f"{i:064x}" for i in range(120_000)])
        predicate = person_predicate(policy, policy.store("shop.orders"), replay_work.REPLAY_KEYS)
        cur.execute(sql.SQL("EXPLAIN SELECT 1 FROM shop.orders t WHERE {}").format(predicate))
        plan = "\n".join(r[0] for r in cur.fetchall())
        cur.execute("SHOW work_mem")
        raised = cur.fetchone()[0]
    conn.rollback()
    assert plan.count("hashed SubPlan") == 2, plan
    assert raised != before
