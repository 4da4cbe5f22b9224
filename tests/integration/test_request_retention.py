"""RET-9 on a real PostgreSQL and moto's S3 server: the copies a data-subject request makes have windows.

The export archive (ACC-1, POR-1; ``governance.request_exports`` and its object in the exports
bucket) is kept 7 days after it was written, the life of its download link (decision RET-9-exports):
until then the sweep leaves it and the audit finds nothing; from the boundary on, the audit, run
before the sweep, flags the row and its object, and the sweep purges every version of the object,
then the row. The answer address (REQ-1; ``governance.request_contacts``) has no clock while the
request is open and goes 30 days after it closed (decision RET-9-contacts), unless a legal hold on
the person keeps it (RET-8). The ledger rows are written with plain SQL through the state machine
(received -> verified -> in_progress -> completed), which its trigger and CHECKs enforce.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from governance.audit import AuditFailed, run_audit
from governance.holds import add_hold, lift_hold
from governance.policy import load_policy
from governance.sweep import sweep_rule
from governance_dev.loader import ensure_store_buckets
from tests.integration.sweep_support import account, object_keys
from tests.integration.test_audit_properties import empty_shop

pytestmark = pytest.mark.integration

POLICY = load_policy()
EXPORTS = POLICY.object_store.exports_bucket
EXPORTS_CHECK = "request-exports-object-store"
S = timedelta(seconds=1)
DAY = timedelta(days=1)
WRITTEN = datetime(2026, 5, 4, 9, 30, 15, tzinfo=UTC)  # when the archive was written
LINK_GONE = WRITTEN + 7 * DAY  # RET-9-exports: P7D, exactly the boundary
CLOSED = datetime(2026, 5, 10, 16, 0, tzinfo=UTC)  # when the request closed
ADDRESS_GONE = CLOSED + 30 * DAY  # RET-9-contacts: P30D after closing


def test_the_policy_gives_the_copies_their_windows():
    assert POLICY.window(POLICY.rule("request-exports")).iso == "P7D"
    assert POLICY.window(POLICY.rule("request-contacts")).iso == "P30D"
    assert POLICY.rule("request-exports").action.type == "purge_objects"
    assert POLICY.store("governance.request_exports").objects.buckets == [EXPORTS]


# --- the ledger, through its state machine -----------------------------------------------------


def open_request(conn, email: str, received_at: datetime, account_id: int | None = None) -> int:
    """A request as intake records it: the subject's pseudonym in the ledger, the address apart."""
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO governance.subject_requests (kind, account_id, email_sha256, channel, opened_by, "
            "received_at, opened_at, due_at) VALUES ('access', %s, governance.email_pseudonym(%s), 'email', "
            "'kundeservice', %s, %s, %s)",
            (account_id, email, received_at, received_at, received_at + timedelta(days=31)),
        )
        cur.execute("SELECT currval('governance.subject_requests_request_id_seq')")
        request_id = cur.fetchone()[0]
        cur.execute(
            "INSERT INTO governance.request_contacts (request_id, reply_to, subject_email, created_at) "
            "VALUES (%s, %s, %s, %s)",
            (request_id, email, email.strip().lower(), received_at),
        )
    conn.commit()
    return request_id


def move(conn, request_id: int, state: str, at: datetime) -> None:
    """One transition; the columns each state needs (the schema's CHECKs) set with it."""
    extra = {
        "verified": "verified_by = 'kundeservice', verified_at = %(at)s, verification_method = 'id_document'",
        "in_progress": "started_at = %(at)s",
        "completed": "closed_at = %(at)s",
        "withdrawn": "closed_at = %(at)s",
    }[state]
    with conn.cursor() as cur:
        cur.execute(
            f"UPDATE governance.subject_requests SET state = %(state)s, {extra} WHERE request_id = %(id)s",
            {"state": state, "at": at, "id": request_id},
        )
    conn.commit()


def answered_request(conn, email: str, closed_at: datetime, account_id: int | None = None) -> int:
    request_id = open_request(conn, email, closed_at - 12 * DAY, account_id)
    move(conn, request_id, "verified", closed_at - 11 * DAY)
    move(conn, request_id, "in_progress", closed_at - 10 * DAY)
    move(conn, request_id, "completed", closed_at)
    return request_id


def write_export(conn, s3, request_id: int, written_at: datetime) -> tuple[int, str]:
    """The archive in a versioned exports bucket (two versions: a retried upload), and its row."""
    key = f"exports/{request_id}/innsyn.zip"
    for body in (b"PK first attempt", b"PK archive"):
        s3.put_object(Bucket=EXPORTS, Key=key, Body=body, ServerSideEncryption="AES256")
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO governance.request_exports (request_id, bucket, object_key, created_at, byte_size, sha256, "
            "file_count, link_expires_at, link_sent_at) VALUES (%s, %s, %s, %s, 10, repeat('a', 64), 3, %s, %s) "
            "RETURNING export_id",
            (request_id, EXPORTS, key, written_at, written_at + 7 * DAY, written_at),
        )
        export_id = cur.fetchone()[0]
    conn.commit()
    return export_id, key


def rows(conn, table: str, key: str) -> set[int]:
    with conn.cursor() as cur:
        cur.execute(f"SELECT {key} FROM {table}")
        found = {r[0] for r in cur.fetchall()}
    conn.rollback()
    return found


def audit(conn, db_url, s3, now: datetime, run_id: str):
    return run_audit(conn, s3, POLICY, now, run_id, db_url=db_url)


@pytest.fixture
def clean(conn, s3):
    empty_shop(conn)  # the shop, the holds and the request tables
    ensure_store_buckets(s3, POLICY)
    s3.put_bucket_versioning(Bucket=EXPORTS, VersioningConfiguration={"Status": "Enabled"})
    return conn


# --- the export archive ------------------------------------------------------------------------


def test_the_export_is_kept_while_its_link_lives(clean, db_url, s3):
    conn = clean
    request_id = answered_request(conn, "kari.nordmann@example.no", WRITTEN + timedelta(minutes=5))
    export_id, key = write_export(conn, s3, request_id, WRITTEN)
    now = LINK_GONE - S  # one second before the boundary

    report = audit(conn, db_url, s3, now, "ret9-before")
    assert report.overdue_total == 0, report.format_table()
    assert report.rule(EXPORTS_CHECK).details["objects_listed"] == 1

    result = sweep_rule(conn, s3, POLICY, "request-exports", now, "ret9-before")
    assert (result.deleted, result.tombstoned, result.objects_purged) == (0, 0, 0)
    assert rows(conn, "governance.request_exports", "export_id") == {export_id}
    assert object_keys(s3, EXPORTS) == {key}


def test_at_the_boundary_the_audit_flags_the_export_and_the_sweep_purges_every_version(clean, db_url, s3):
    conn = clean
    request_id = answered_request(conn, "kari.nordmann@example.no", WRITTEN + timedelta(minutes=5))
    export_id, key = write_export(conn, s3, request_id, WRITTEN)
    versions = s3.list_object_versions(Bucket=EXPORTS, Prefix=key)["Versions"]
    assert len(versions) == 2

    # the audit runs before the sweep: the row and its object are overdue, exactly at the boundary
    report = audit(conn, db_url, s3, LINK_GONE, "ret9-flagged")
    exports = report.rule("request-exports")
    assert (exports.overdue, exports.oldest_overdue_seconds, exports.held) == (1, 0, 0)
    objects = report.rule(EXPORTS_CHECK)
    assert (objects.overdue, objects.details["orphans"]) == (1, 0)
    assert report.overdue_total == 2  # the address of the request closed 5 minutes later is not due
    with pytest.raises(AuditFailed) as failed:
        report.raise_if_overdue()
    assert "request-exports (RET-9, ACC-1, POR-1, CAT-7): 1 record overdue, oldest by 0s" in str(failed.value)
    assert f"{EXPORTS_CHECK} (CAT-7, RET-9, ACC-1, POR-1): 1 object overdue" in str(failed.value)

    result = sweep_rule(conn, s3, POLICY, "request-exports", LINK_GONE, "ret9-sweep")
    assert (result.tombstoned, result.deleted, result.objects_purged, result.object_errors) == (1, 1, 2, 0)
    assert rows(conn, "governance.request_exports", "export_id") == set()
    assert object_keys(s3, EXPORTS) == set()  # every version, no delete marker left behind
    assert rows(conn, "governance.subject_requests", "request_id") == {request_id}  # the ledger stays

    again = audit(conn, db_url, s3, LINK_GONE, "ret9-after")
    assert again.overdue_total == 0, again.format_table()
    rerun = sweep_rule(conn, s3, POLICY, "request-exports", LINK_GONE, "ret9-sweep")  # idempotent
    assert (rerun.deleted, rerun.tombstoned) == (0, 0)

    with conn.cursor() as cur:
        cur.execute("SELECT coalesce(json_agg(e), '[]')::text FROM governance.evidence e WHERE run_id LIKE 'ret9-%%'")
        evidence = cur.fetchone()[0]
    conn.rollback()
    assert "request-exports" in evidence
    assert key not in evidence and "innsyn" not in evidence and "kari" not in evidence.lower()  # ids and counts only


def test_an_archive_without_its_row_is_reported_and_a_record_hold_keeps_an_archive(clean, db_url, s3):
    conn = clean
    kept = answered_request(conn, "ola@example.no", WRITTEN)
    export_id, key = write_export(conn, s3, kept, WRITTEN - 30 * DAY)
    s3.put_object(Bucket=EXPORTS, Key="exports/999/innsyn.zip", Body=b"PK", ServerSideEncryption="AES256")
    add_hold(
        conn,
        POLICY,
        scope="record",
        table_name="governance.request_exports",
        record_key=export_id,
        reason="Klagesak hos Datatilsynet (syntetisk)",
        set_by="legal",
        now=LINK_GONE - DAY,
    )

    report = audit(conn, db_url, s3, LINK_GONE, "ret9-orphan")
    assert (report.rule("request-exports").overdue, report.rule("request-exports").held) == (0, 1)
    objects = report.rule(EXPORTS_CHECK)
    assert (objects.overdue, objects.details["orphans"], objects.held) == (1, 1, 1)

    result = sweep_rule(conn, s3, POLICY, "request-exports", LINK_GONE, "ret9-held")
    assert (result.deleted, result.tombstoned) == (0, 0)
    assert rows(conn, "governance.request_exports", "export_id") == {export_id}
    assert key in object_keys(s3, EXPORTS)


# --- the answer address ------------------------------------------------------------------------


def test_an_open_requests_address_is_never_due_and_a_closed_ones_goes_30_days_after(clean, db_url, s3):
    conn = clean
    still_open = open_request(conn, "open@example.no", CLOSED - 400 * DAY)
    move(conn, still_open, "verified", CLOSED - 399 * DAY)
    move(conn, still_open, "in_progress", CLOSED - 398 * DAY)
    received_only = open_request(conn, " Mottatt@Example.no", CLOSED - 500 * DAY)
    answered = answered_request(conn, "svar@example.no", CLOSED)
    withdrawn = open_request(conn, "trukket@example.no", CLOSED - 5 * DAY)
    move(conn, withdrawn, "withdrawn", CLOSED + S)  # one second later: one second before its boundary

    for now, due in ((ADDRESS_GONE - S, set()), (ADDRESS_GONE, {answered}), (ADDRESS_GONE + S, {answered, withdrawn})):
        report = audit(conn, db_url, s3, now, f"ret9-contacts-{now:%H%M%S}")
        assert report.rule("request-contacts").overdue == len(due), now

    result = sweep_rule(conn, s3, POLICY, "request-contacts", ADDRESS_GONE, "ret9-contacts")
    assert result.deleted == 1
    assert rows(conn, "governance.request_contacts", "request_id") == {still_open, received_only, withdrawn}
    assert audit(conn, db_url, s3, ADDRESS_GONE, "ret9-contacts-after").overdue_total == 0
    later = CLOSED + 3650 * DAY  # open requests' addresses have no clock, however old
    sweep_rule(conn, s3, POLICY, "request-contacts", later, "ret9-contacts-later")
    assert rows(conn, "governance.request_contacts", "request_id") == {still_open, received_only}
    assert rows(conn, "governance.subject_requests", "request_id") == {still_open, received_only, answered, withdrawn}


def test_a_legal_hold_on_the_person_keeps_the_answer_address(clean, db_url, s3):
    """RET-8: a hold on the account keeps the address the request was answered to (the account's,
    typed otherwise); a hold on an address keeps it too; lifted, the address goes."""
    conn = clean
    with conn.cursor() as cur:
        account_id = account(cur, CLOSED - 900 * DAY, email="held.kunde@example.no")
    conn.commit()
    by_account = answered_request(conn, " Held.Kunde@Example.no", CLOSED, account_id=account_id)
    by_address = answered_request(conn, "advokat@example.no", CLOSED)
    free = answered_request(conn, "fri@example.no", CLOSED)
    holds = [
        add_hold(conn, POLICY, scope="person", account_id=account_id, reason="Tvist", set_by="legal", now=CLOSED),
        add_hold(conn, POLICY, scope="person", email="ADVOKAT@example.no ", reason="Tvist", set_by="legal", now=CLOSED),
    ]

    report = audit(conn, db_url, s3, ADDRESS_GONE, "ret9-held-contacts")
    contacts = report.rule("request-contacts")
    assert (contacts.overdue, contacts.held) == (1, 2)
    result = sweep_rule(conn, s3, POLICY, "request-contacts", ADDRESS_GONE, "ret9-held-contacts")
    assert result.deleted == 1
    assert rows(conn, "governance.request_contacts", "request_id") == {by_account, by_address}
    assert free not in rows(conn, "governance.request_contacts", "request_id")

    for hold in holds:
        lift_hold(conn, POLICY, hold.hold_id, lifted_by="legal", now=ADDRESS_GONE)
    after = ADDRESS_GONE + DAY
    sweep_rule(conn, s3, POLICY, "request-contacts", after, "ret9-lifted")
    assert rows(conn, "governance.request_contacts", "request_id") == set()
    with conn.cursor() as cur:
        cur.execute("SELECT coalesce(json_agg(e), '[]')::text FROM governance.evidence e")
        evidence = cur.fetchone()[0].lower()
    conn.rollback()
    assert not [a for a in ("held.kunde", "advokat", "fri@example") if a in evidence]
    assert json.loads(evidence)  # the holds and the sweeps were evidenced
