"""Answering access and portability requests (ACC-1, POR-1, REQ-1) with the library alone: real
PostgreSQL, moto's S3 server over HTTP, a real SMTP server (aiosmtpd).

The export holds exactly the person's records (compared with an independent query per table, the
guest spelling grouped, the held order included) and their photos byte for byte; an unverified
request discloses nothing; a mail server that is down leaves a stored export whose link the rerun
sends without a second archive; an archive left unrecorded by a crash is removed; a person with
no data still gets an export; evidence carries counts and hashes only.
"""

from __future__ import annotations

import hashlib
import json
import socket
from datetime import UTC, datetime, timedelta

import pytest
import requests as http

from governance import evidence, requests
from governance.breach import SmtpServer
from governance.errors import ExportFailed, RequestError
from governance.policy import load_policy
from governance.requests.answer import answer_export
from tests.integration import request_support as rs

pytestmark = [pytest.mark.integration]

POLICY = load_policy()
NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def db_url(make_database):
    return make_database()


@pytest.fixture
def smtp(smtp_inbox):
    import os

    settings = json.loads(os.environ["AIRFLOW_CONN_GOVERNANCE_SMTP"])
    return SmtpServer(host=settings["host"], port=settings["port"], timeout=10)


@pytest.fixture
def person(conn, s3):
    return rs.seed_person(conn, s3, POLICY, NOW)


def exports(s3) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=rs.EXPORTS).get("Contents", [])]


def export_row(conn, request_id):
    with conn.cursor() as cur:
        cur.execute(
            "SELECT object_key, byte_size, sha256, file_count, link_sent_at, link_expires_at "
            "FROM governance.request_exports WHERE request_id = %s",
            (request_id,),
        )
        row = cur.fetchone()
    conn.rollback()
    return row


def mail_body(message) -> str:
    return message.get_payload(decode=True).decode(message.get_content_charset() or "utf-8")


def state(conn, request_id) -> str:
    with conn.cursor() as cur:
        state = requests.fetch(cur, request_id).state
    conn.rollback()
    return state


def test_the_export_holds_exactly_the_persons_records_and_photos(conn, s3, smtp, smtp_inbox, person):
    expected = rs.expected_keys(conn)
    request_id = rs.open_verified(conn, POLICY, NOW)
    expected["governance.request_contacts"] = {request_id}
    counts = answer_export(conn, s3, smtp, POLICY, request_id, now=NOW)

    key, size, sha, files, sent_at, expires_at = export_row(conn, request_id)
    assert (
        key.startswith(f"exports/{request_id}/")
        and key.endswith(".zip")
        and len(key) > len(f"exports/{request_id}/") + 30
    )
    assert s3.head_object(Bucket=rs.EXPORTS, Key=key)["ServerSideEncryption"] == "AES256"
    assert sent_at == NOW and expires_at == NOW + requests_link_lifetime()
    assert state(conn, request_id) == "completed"

    (mail,) = smtp_inbox
    assert mail["To"] == rs.ADDRESS and f"R-{request_id}" in mail["Subject"]
    body = http.get(rs.link_of(mail), timeout=10).content
    assert len(body) == size and hashlib.sha256(body).hexdigest() == sha
    archive = rs.Archive.of(body)
    assert len(archive.members) == files
    assert "no personal data about you" not in archive.members["README.txt"].decode()

    keys = {store.table: store.key for category in POLICY.categories for store in category.stores}
    for table, want in expected.items():
        assert archive.keys(table, keys[table]) == want, table
    assert person.held_order in archive.keys("shop.orders", "order_id"), "a held record is still the person's"
    assert "data/shop.visits.json" not in archive.members  # unidentifiable: no request can find a visit
    photos = archive.files()
    assert sorted(photos.values()) == sorted(person.uploads.values()), "every photo, byte for byte, nobody else's"
    for upload_id, photo in person.uploads.items():
        assert [p for p, b in photos.items() if p.startswith(f"files/shop.uploads/{upload_id}/")] != []
        assert photo in photos.values()
    manifest = json.loads(archive.members["manifest.json"])
    for entry in manifest["files"]:
        assert hashlib.sha256(archive.members[entry["path"]]).hexdigest() == entry["sha256"], entry["path"]

    assert counts["records"] == sum(len(v) for v in expected.values())
    assert counts["objects"] == len(person.uploads) and counts["bytes"] == size and counts["files"] == files
    assert {t: counts[t] for t in expected} == {t: len(v) for t, v in expected.items()}
    entries = evidence.entries(conn, run_id=f"request-{request_id}")
    conn.rollback()
    assert [e.kind for e in entries] == [
        "request_opened",
        "request_verified",
        "request_started",
        "request_export_written",
        "request_export_delivered",
        "request_completed",
    ]
    written = entries[3]
    assert written.counts == counts and written.details["sha256"] == sha and written.details["object_key"] == key
    text = json.dumps([(e.counts, e.details) for e in entries]).lower()
    assert not any(value.lower() in text for value in person.personal_values)
    assert evidence.verify(conn).ok

    again = answer_export(conn, s3, smtp, POLICY, request_id, now=NOW)
    assert again == counts and len(smtp_inbox) == 1 and exports(s3) == [key], "a completed request stays as it is"


def requests_link_lifetime():
    from governance.exports import LINK_LIFETIME

    return LINK_LIFETIME


def test_an_unverified_request_discloses_nothing(conn, s3, smtp, smtp_inbox, person):
    request = requests.open_request(
        conn, POLICY, kind="portability", email=rs.ADDRESS, channel="web_form", opened_by="web", now=NOW
    )
    with pytest.raises(RequestError, match="not verified"):
        answer_export(conn, s3, smtp, POLICY, request.request_id, now=NOW)
    assert exports(s3) == [] and smtp_inbox == [] and export_row(conn, request.request_id) is None
    assert state(conn, request.request_id) == "received"


def test_a_mail_server_down_leaves_the_export_stored_and_the_rerun_only_sends_the_link(
    conn, s3, smtp, smtp_inbox, person
):
    request_id = rs.open_verified(conn, POLICY, NOW, kind="portability")
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        down = SmtpServer(host="127.0.0.1", port=probe.getsockname()[1], timeout=2)
    with pytest.raises(ExportFailed) as failed:
        answer_export(conn, s3, down, POLICY, request_id, now=NOW)
    assert failed.value.retryable and f"request {request_id}" in str(failed.value)
    assert rs.ADDRESS.lower() not in str(failed.value).lower()
    (key,) = exports(s3)
    row = export_row(conn, request_id)
    assert row[0] == key and row[4] is None and state(conn, request_id) == "in_progress"

    later = NOW + timedelta(days=3)
    counts = answer_export(conn, s3, smtp, POLICY, request_id, now=later)
    assert exports(s3) == [key], "no second archive"
    assert len(smtp_inbox) == 1 and state(conn, request_id) == "completed"
    # the link lives as long as the archive (RET-9: 7 days from when it was written), not 7 days from now
    assert export_row(conn, request_id)[4:] == (later, NOW + timedelta(days=7))
    assert "2026-11-09T09:00:00Z" in mail_body(smtp_inbox[0])
    assert counts["objects"] == len(person.uploads)
    kinds = [e.kind for e in evidence.entries(conn, run_id=f"request-{request_id}")]
    conn.rollback()
    assert kinds.count("request_export_written") == 1 and kinds.count("request_export_delivered") == 1


def test_an_archive_left_unrecorded_by_a_crash_is_replaced(conn, s3, smtp, smtp_inbox, person):
    request_id = rs.open_verified(conn, POLICY, NOW)
    s3.put_object(Bucket=rs.EXPORTS, Key=f"exports/{request_id}/left-by-a-crash.zip", Body=b"PK")
    answer_export(conn, s3, smtp, POLICY, request_id, now=NOW)
    (key,) = exports(s3)
    assert key == export_row(conn, request_id)[0] and "left-by-a-crash" not in key


def test_a_person_with_no_data_still_gets_an_export(conn, s3, smtp, smtp_inbox):
    rs.buckets(s3)
    request_id = rs.open_verified(conn, POLICY, NOW, email="nobody.here@example.no")
    counts = answer_export(conn, s3, smtp, POLICY, request_id, now=NOW)
    archive = rs.Archive.of(http.get(rs.link_of(smtp_inbox[0]), timeout=10).content)
    shop_tables = [t for t in counts if t.startswith("shop.")]
    assert shop_tables and all(counts[t] == 0 for t in shop_tables) and counts["objects"] == 0
    assert all(archive.rows(t) == [] for t in shop_tables) and archive.files() == {}
    assert counts["governance.request_contacts"] == 1  # where to answer them: the request itself
    assert "We hold no personal data about you" in archive.members["README.txt"].decode()
    assert "Vi har ingen personopplysninger om deg" in archive.members["LESMEG.txt"].decode()


def test_without_an_exports_bucket_nothing_starts(conn, s3, smtp, smtp_inbox, person):
    request_id = rs.open_verified(conn, POLICY, NOW)
    no_bucket = POLICY.model_copy(
        update={"object_store": POLICY.object_store.model_copy(update={"exports_bucket": None})}
    )
    with pytest.raises(ExportFailed, match="exports_bucket") as failed:
        answer_export(conn, s3, smtp, no_bucket, request_id, now=NOW)
    assert not failed.value.retryable and state(conn, request_id) == "verified"


def test_the_archive_is_flagged_by_the_audit_after_its_window_and_purged_by_the_sweep(
    conn, db_url, s3, smtp, smtp_inbox, person
):
    """RET-9: the export written here is a copy with a window (rule request-exports, P7D)."""
    from governance.audit import run_audit
    from governance.sweep import sweep_rule

    request_id = rs.open_verified(conn, POLICY, NOW)
    answer_export(conn, s3, smtp, POLICY, request_id, now=NOW)
    (key,) = exports(s3)
    window_end = NOW + timedelta(days=7)
    for now, overdue in ((window_end - timedelta(seconds=1), 0), (window_end, 1)):
        report = run_audit(conn, s3, POLICY, now, f"audit-{overdue}", db_url=db_url, record=False)
        assert report.rule("request-exports").overdue == overdue
        assert report.rule("request-exports-object-store").overdue == overdue
    swept = sweep_rule(conn, s3, POLICY, "request-exports", window_end, "sweep-ret-9")
    assert swept.to_dict()["deleted"] == 1
    assert exports(s3) == [] and export_row(conn, request_id) is None
    assert state(conn, request_id) == "completed"
