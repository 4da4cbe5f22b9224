"""Evidence that cannot be rewritten (SEC-1, issue #9 item 5), on a real PostgreSQL and moto's S3
server over HTTP: the application's roles cannot change the log, the triggers hold even for its
owner, and every attack a superuser can still make (triggers switched off) is exposed by the
anchors in the Object Lock bucket: truncation, a rewritten and re-hashed chain, a wiped table,
a forged anchor.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import botocore.exceptions
import psycopg2
import psycopg2.errors
import pytest

from governance.anchors import (
    EVIDENCE_KEY_ENV,
    PREFIX,
    Anchor,
    anchor_evidence,
    evidence_key,
    mac_of,
    read_anchors,
    verify_with_anchors,
)
from governance.cli import main
from governance.db import connect, transaction
from governance.errors import EvidenceBroken, SettingsError
from governance.evidence import append, verify
from governance.policy import load_policy

pytestmark = pytest.mark.integration

POLICY = load_policy()
BUCKET = POLICY.object_store.evidence_anchor_bucket or "governance-evidence-anchors"
KEY = b"k" * 16 + uuid.uuid4().hex.encode()  # 48 characters, unique per run
AS_OF = datetime(2026, 3, 1, tzinfo=UTC)


def record(conn, run_id: str, n: int) -> None:
    """``n`` entries the way the library writes them (evidence.append, one transaction each)."""
    for i in range(n):
        with transaction(conn) as cur:
            append(cur, kind="sweep_batch", run_id=run_id, rule_id="visit-data", step=f"b{i}", counts={"deleted": i})


@pytest.fixture
def db(make_database, s3):
    url = make_database()
    conn = connect(url)
    record(conn, "run-1", 4)
    yield {"url": url, "conn": conn, "s3": s3}
    conn.close()


def superuser_attack(conn, statements: list[str]) -> None:
    """What only a superuser can do: switch the append-only triggers off, then tamper."""
    with conn.cursor() as cur:
        cur.execute("SET LOCAL session_replication_role = replica")
        for statement in statements:
            cur.execute(statement)
    conn.commit()


def rehash_chain(conn) -> None:
    """Recompute every hash and the head with governance.evidence_payload, as an attacker would."""
    superuser_attack(
        conn,
        [
            """DO $$ DECLARE r record; prev text := repeat('0', 64); h text; BEGIN
               FOR r IN SELECT * FROM governance.evidence ORDER BY entry_id LOOP
                 h := encode(sha256(convert_to(prev || governance.evidence_payload(r.recorded_at, r.kind, r.run_id,
                      r.rule_id, r.step, r.requirements, r.as_of, r.policy_version, r.counts, r.details), 'UTF8')), 'hex');
                 UPDATE governance.evidence SET prev_hash = prev, entry_hash = h WHERE entry_id = r.entry_id;
                 prev := h;
               END LOOP;
               UPDATE governance.evidence_head SET last_entry_id = (SELECT max(entry_id) FROM governance.evidence),
                      last_hash = prev;
               END $$""",
        ],
    )


def problems(result) -> list[str]:
    return [p.problem for p in result.problems]


def test_the_app_role_may_only_append_and_read(db):
    """SEC-1 by privilege: a role granted governance_evidence_writer appends through append_evidence
    and reads; UPDATE, DELETE, TRUNCATE, a direct INSERT, moving the head and switching the triggers
    off are all refused."""
    conn = db["conn"]
    role = f"gov_test_app_{uuid.uuid4().hex[:8]}"
    with conn.cursor() as cur:
        cur.execute(f"CREATE ROLE {role} NOLOGIN IN ROLE governance_evidence_writer")
    conn.commit()
    try:
        refused = [
            "UPDATE governance.evidence SET counts = '{}'",
            "DELETE FROM governance.evidence",
            "TRUNCATE governance.evidence",
            "INSERT INTO governance.evidence (kind, run_id, prev_hash, entry_hash) VALUES ('x', 'x', 'x', 'x')",
            "UPDATE governance.evidence_head SET last_entry_id = 1",
            "ALTER TABLE governance.evidence DISABLE TRIGGER USER",
        ]
        for statement in refused:
            with conn.cursor() as cur:
                cur.execute(f"SET ROLE {role}")
                with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                    cur.execute(statement)
            conn.rollback()
        with transaction(conn) as cur:
            cur.execute(f"SET LOCAL ROLE {role}")
            append(cur, kind="sweep_batch", run_id="as-app", rule_id="visit-data", step="b0")
            cur.execute("SELECT count(*) FROM governance.evidence")
            assert cur.fetchone()[0] == 5
        assert verify(conn).ok and verify(conn).entries == 5
    finally:
        conn.rollback()
        with conn.cursor() as cur:
            cur.execute(f"DROP ROLE {role}")
        conn.commit()


@pytest.mark.parametrize("role", ["postgres", "governance_evidence_owner"])
def test_the_triggers_refuse_changes_even_to_the_owner_and_a_superuser(db, role):
    conn = db["conn"]
    for statement, message in [
        ("UPDATE governance.evidence SET counts = '{}'", "governance.evidence is append-only: UPDATE refused"),
        ("DELETE FROM governance.evidence", "governance.evidence is append-only: DELETE refused"),
        ("TRUNCATE governance.evidence", "governance.evidence is append-only: TRUNCATE refused"),
        ("DELETE FROM governance.evidence_head", "moves only through governance.append_evidence: DELETE refused"),
        (
            "UPDATE governance.evidence_head SET last_entry_id = last_entry_id - 1, "
            "last_hash = (SELECT entry_hash FROM governance.evidence ORDER BY entry_id DESC OFFSET 1 LIMIT 1)",
            "moves only through governance.append_evidence: UPDATE refused",
        ),
    ]:
        with conn.cursor() as cur:
            if role != "postgres":
                cur.execute(f"SET LOCAL ROLE {role}")
            with pytest.raises(psycopg2.errors.InsufficientPrivilege, match=message):
                cur.execute(statement)
        conn.rollback()
    assert verify(conn).ok and verify(conn).entries == 4


def test_an_anchor_is_a_locked_object_never_overwritten(db):
    conn, s3 = db["conn"], db["s3"]
    first = anchor_evidence(conn, s3, KEY, BUCKET, run_id="run-1", retention_days=30)
    record(conn, "run-2", 2)
    second = anchor_evidence(conn, s3, KEY, BUCKET, run_id="run-2", retention_days=30)
    assert (first.entries, second.entries) == (4, 6)
    assert (
        s3.get_object_lock_configuration(Bucket=BUCKET)["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]["Mode"]
        == "COMPLIANCE"
    )
    stored = read_anchors(s3, BUCKET, first.database)
    assert [a for _, a in stored] == [first, second]
    assert all(a is not None and a.mac_ok(KEY) for _, a in stored)
    name = first.object_key()
    head = s3.head_object(Bucket=BUCKET, Key=name)
    assert head["ObjectLockMode"] == "COMPLIANCE"
    with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
        s3.delete_object(Bucket=BUCKET, Key=name, VersionId=head["VersionId"])
    with pytest.raises(botocore.exceptions.ClientError, match="PreconditionFailed"):
        s3.put_object(Bucket=BUCKET, Key=name, Body=b"{}", IfNoneMatch="*")
    body = s3.get_object(Bucket=BUCKET, Key=name)["Body"].read()
    with conn.cursor() as cur:
        cur.execute("SELECT string_agg(e::text, ' ') FROM governance.evidence e")
        evidence_text = cur.fetchone()[0]
    conn.rollback()
    assert KEY not in body and KEY.decode() not in evidence_text  # the key never leaves the process
    assert verify_with_anchors(conn, s3, BUCKET, KEY).ok


def test_an_existing_bucket_without_compliance_lock_is_refused(db):
    s3 = db["s3"]
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-north-1"})
    with pytest.raises(SettingsError, match="has no Object Lock in COMPLIANCE mode"):
        anchor_evidence(db["conn"], s3, KEY, BUCKET)


def test_deleting_the_last_entries_and_moving_the_head_is_detected(db):
    conn, s3 = db["conn"], db["s3"]
    anchor = anchor_evidence(conn, s3, KEY, BUCKET)
    superuser_attack(
        conn,
        [
            "DELETE FROM governance.evidence WHERE entry_id > (SELECT min(entry_id) + 1 FROM governance.evidence)",
            "UPDATE governance.evidence_head SET last_entry_id = (SELECT max(entry_id) FROM governance.evidence), "
            "last_hash = (SELECT entry_hash FROM governance.evidence ORDER BY entry_id DESC LIMIT 1)",
        ],
    )
    assert verify(conn).ok  # the hash chain alone cannot tell
    result = verify_with_anchors(conn, s3, BUCKET, KEY)
    assert problems(result) == [
        f"anchor {anchor.object_key()} recorded entry {anchor.head_entry_id}, beyond the table's last entry "
        f"{anchor.head_entry_id - 2}: entries were removed from the end (truncation)"
    ]


def test_a_rewritten_and_rehashed_chain_is_detected_and_a_forged_anchor_too(db, s3_url, capsys, monkeypatch):
    conn, s3 = db["conn"], db["s3"]
    anchor = anchor_evidence(conn, s3, KEY, BUCKET)
    superuser_attack(conn, ["UPDATE governance.evidence SET counts = '{\"deleted\": 0}'"])
    rehash_chain(conn)
    assert verify(conn).ok  # re-hashed with governance.evidence_payload: the chain is consistent
    result = verify_with_anchors(conn, s3, BUCKET, KEY)
    assert problems(result) == [
        f"entry {anchor.head_entry_id} no longer has the hash anchor {anchor.object_key()} recorded: "
        "the chain was rewritten"
    ]
    # The attacker can write a new anchor for the new head, but not with the key.
    forged = anchor_evidence(conn, s3, b"f" * 40, BUCKET)
    result = verify_with_anchors(conn, s3, BUCKET, KEY)
    assert f"anchor {forged.object_key()}: MAC does not match (altered, forged, or another key)" in problems(result)
    monkeypatch.setenv(EVIDENCE_KEY_ENV, KEY.decode())
    assert main(["evidence", "verify", "--db-url", db["url"], "--s3-endpoint-url", s3_url]) == EvidenceBroken.exit_code
    out = capsys.readouterr().out
    assert out.startswith("BROKEN: 2 problem(s)") and "the chain was rewritten" in out and "MAC does not match" in out
    assert KEY.decode() not in out


def test_truncate_is_refused_and_a_forced_wipe_is_detected(db):
    conn, s3 = db["conn"], db["s3"]
    anchor_evidence(conn, s3, KEY, BUCKET)
    record(conn, "run-2", 1)
    last = anchor_evidence(conn, s3, KEY, BUCKET)
    with conn.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege, match="append-only"):
        cur.execute("TRUNCATE governance.evidence")
    conn.rollback()
    superuser_attack(
        conn,
        [
            "TRUNCATE governance.evidence",
            "UPDATE governance.evidence_head SET last_entry_id = NULL, last_hash = repeat('0', 64)",
        ],
    )
    assert verify(conn).ok and verify(conn).entries == 0
    result = verify_with_anchors(conn, s3, BUCKET, KEY)
    assert problems(result) == [
        f"the table is empty, but anchor {last.object_key()} recorded 5 entries up to entry {last.head_entry_id}: wiped"
    ]


def test_deleting_an_entry_in_the_middle_is_detected_even_with_a_rehashed_chain(db):
    conn, s3 = db["conn"], db["s3"]
    anchor = anchor_evidence(conn, s3, KEY, BUCKET)
    superuser_attack(
        conn, ["DELETE FROM governance.evidence WHERE entry_id = (SELECT min(entry_id) FROM governance.evidence)"]
    )
    rehash_chain(conn)
    assert verify(conn).ok
    result = verify_with_anchors(conn, s3, BUCKET, KEY)
    assert problems(result) == [
        f"entry {anchor.head_entry_id} no longer has the hash anchor {anchor.object_key()} recorded: "
        "the chain was rewritten"
    ]


def test_verify_without_a_key_says_unauthenticated(db, s3_url, capsys, monkeypatch):
    monkeypatch.delenv(EVIDENCE_KEY_ENV, raising=False)
    common = ["--db-url", db["url"], "--s3-endpoint-url", s3_url]
    assert main(["evidence", "verify", *common]) == 0
    assert "not anchored: no anchor of this database yet" in capsys.readouterr().out
    assert main(["evidence", "anchor", *common, "--run-id", "manual"]) == 0
    assert "UNAUTHENTICATED: no evidence key configured" in capsys.readouterr().out
    assert main(["evidence", "verify", *common]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("OK: evidence chain intact, 4 entries")
    assert lines[1].startswith("anchors: 1 checked, the latest at entry")
    assert lines[2].startswith("UNAUTHENTICATED: no evidence key configured (GOVERNANCE_EVIDENCE_KEY")


def test_a_short_key_is_refused_without_showing_it(monkeypatch):
    monkeypatch.setenv(EVIDENCE_KEY_ENV, "hunter2-short")
    with pytest.raises(SettingsError) as caught:
        evidence_key()
    assert "shorter than 32 characters" in str(caught.value) and "hunter2" not in str(caught.value)


def test_the_mac_covers_every_field():
    anchor = Anchor("db", 7, "ab" * 32, 7, "2026-03-01T00:00:00Z", "run").signed(KEY)
    assert anchor.mac == mac_of(KEY, anchor.payload()) and anchor.mac_ok(KEY)
    for changed in ({"head_entry_id": 8}, {"head_hash": "cd" * 32}, {"entries": 6}, {"database": "other"}):
        forged = Anchor(**{**anchor.__dict__, **changed})
        assert not forged.mac_ok(KEY), changed
    assert json.loads(json.dumps(anchor.to_dict()))["mac_algorithm"] == "HMAC-SHA256"
    assert anchor.object_key().startswith(f"{PREFIX}db/")


def test_the_dags_take_the_key_from_an_airflow_variable_then_a_connection_then_the_environment(monkeypatch):
    from governance_airflow.anchoring import evidence_key as airflow_key

    for name in ("AIRFLOW_VAR_GOVERNANCE_EVIDENCE_KEY", "AIRFLOW_CONN_GOVERNANCE_EVIDENCE_KEY", EVIDENCE_KEY_ENV):
        monkeypatch.delenv(name, raising=False)
    assert airflow_key() is None
    monkeypatch.setenv(EVIDENCE_KEY_ENV, "e" * 40)
    assert airflow_key() == b"e" * 40
    monkeypatch.setenv(
        "AIRFLOW_CONN_GOVERNANCE_EVIDENCE_KEY", json.dumps({"conn_type": "generic", "password": "c" * 40})
    )
    assert airflow_key() == b"c" * 40
    monkeypatch.setenv("AIRFLOW_VAR_GOVERNANCE_EVIDENCE_KEY", "v" * 40)
    assert airflow_key() == b"v" * 40
