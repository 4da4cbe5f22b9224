"""Answering an access or portability request (ACC-1, POR-1; REQ-1): from a verified request to
the person's export delivered, each step committed with its evidence.

1. ``start``: verified -> in_progress (an unverified request is refused: nothing is disclosed);
2. one read-only REPEATABLE READ snapshot: the person (``resolve_subject``), their records store
   by store and their objects, streamed into one ZIP in the exports bucket (``write_export``);
3. one transaction: the export's row (governance.request_exports) and ``request_export_written``
   (counts per table, objects, bytes, SHA-256: no personal data);
4. the presigned link (7 days) mailed to the request's answer address;
5. one transaction: ``link_sent_at``, ``request_export_delivered`` and the request completed with
   its counts.

A rerun resumes: a stored export gets its link sent (no second archive); an archive written but
not recorded (a crash between 2 and 3) is removed before a new one is written; a completed request
is returned as it is. Failures raise ExportFailed naming ids, never the person. An earlier export
of the person (CAT-7) is listed as a record, but its archive is not copied into the new one: it
holds copies of the same records.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import botocore.exceptions
import psycopg2
from psycopg2.extensions import connection, cursor

from governance.db import transaction
from governance.errors import TRANSIENT_S3_CODES, ExportFailed, RequestError
from governance.exports import (
    LINK_LIFETIME,
    ObjectExport,
    Summary,
    TableExport,
    presigned_link,
    send_link,
    write_export,
)
from governance.objectstore import iter_keys
from governance.person.reading import person_tables, read_objects
from governance.person.records import snapshot
from governance.person.subject import resolve_subject
from governance.policy import Policy
from governance.requests.ledger import complete, contact, fetch, start
from governance.requests.model import SubjectRequest
from governance.requests.store import record
from governance.sweep.objects import purge_objects
from governance.windows import as_utc, iso

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from governance.breach import SmtpServer

EXPORT_KINDS = ("access", "portability")
EXPORT_PREFIX = "exports/"
EXPORTS_TABLE = "governance.request_exports"
OWN_SCHEMA = "governance."  # the platform's own copies for requests (CAT-7): contacts, exports, corrections
ANSWER_LOCK = 0x60FE_0011  # pg_try_advisory_lock(ANSWER_LOCK, request_id): one worker per request
RUNBOOK_SECTION = "docs/runbook.md, 'An export failed'"


@dataclass(frozen=True)
class StoredExport:
    """A row of governance.request_exports."""

    export_id: int
    bucket: str
    object_key: str
    created_at: datetime
    byte_size: int
    sha256: str
    file_count: int
    link_sent_at: datetime | None
    state: str


_EXPORT_COLUMNS = "export_id, bucket, object_key, created_at, byte_size, sha256, file_count, link_sent_at, state"


def answer_export(
    conn: connection, s3: S3Client, smtp: SmtpServer, policy: Policy, request_id: int, *, now: datetime
) -> dict[str, int]:
    """Answer request ``request_id`` (access or portability) with its export; returns its counts
    (records per table, ``records``, ``objects``, ``files``, ``bytes``), as the ledger's outcome."""
    now = as_utc(now)
    bucket = exports_bucket(policy)
    with transaction(conn, read_only=True) as cur:
        request = fetch(cur, request_id)
    if request.kind not in EXPORT_KINDS:
        raise RequestError(f"request {request_id} is {request.kind}: only {' and '.join(EXPORT_KINDS)} are exported")
    if request.state == "completed":
        return dict(request.outcome)
    with _answering(conn, request_id):
        request = start(conn, policy, request_id, now=now)
        export = _stored(conn, request_id)
        if export is None:
            export = _write(conn, s3, policy, request, bucket, now)
        elif export.state != "stored":
            raise _failed(
                request_id,
                f"its export {export.export_id} is being purged (its window ended before the link was sent); "
                "the next run after the retention sweep writes a new one",
                retryable=True,
            )
        return _deliver(conn, s3, smtp, policy, request, export, now)


def exports_bucket(policy: Policy) -> str:
    """The policy's exports bucket; ExportFailed (not retryable) when it names none."""
    bucket = policy.object_store.exports_bucket
    if not bucket:
        error = ExportFailed(
            "the policy names no object_store.exports_bucket, so no export can be written; add one (a bucket "
            f"inside the EEA, SEC-3) and the RET-9 rule that purges it; see {RUNBOOK_SECTION}"
        )
        error.retryable = False
        raise error
    return bucket


@contextmanager
def _answering(conn: connection, request_id: int) -> Iterator[None]:
    """Hold a session advisory lock on the request while answering it (two workers never write two archives)."""
    with transaction(conn) as cur:
        cur.execute("SELECT pg_try_advisory_lock(%s, %s::int)", (ANSWER_LOCK, request_id))
        locked = bool(_one(cur))
    if not locked:
        raise _failed(request_id, "another worker is answering it now; this run retries later", retryable=True)
    try:
        yield
    finally:
        try:
            conn.rollback()
            with transaction(conn) as cur:
                cur.execute("SELECT pg_advisory_unlock(%s, %s::int)", (ANSWER_LOCK, request_id))
        except psycopg2.Error:
            pass  # a lost connection took its session lock with it


def _stored(conn: connection, request_id: int) -> StoredExport | None:
    with transaction(conn, read_only=True) as cur:
        cur.execute(f"SELECT {_EXPORT_COLUMNS} FROM governance.request_exports WHERE request_id = %s", (request_id,))  # noqa: S608 - fixed names
        row = cur.fetchone()
    return None if row is None else StoredExport(*row)


# --- writing the archive -----------------------------------------------------------------------


class _Counted:
    """The person's objects as archive members, counted as they pass."""

    def __init__(self, objects: Iterable[ObjectExport]) -> None:
        self.objects, self.count = objects, 0

    def __iter__(self) -> Iterator[ObjectExport]:
        for item in self.objects:
            self.count += 1
            yield item


def _write(
    conn: connection, s3: S3Client, policy: Policy, request: SubjectRequest, bucket: str, now: datetime
) -> StoredExport:
    """Stream the person's records and objects into a new archive, then record it with its evidence."""
    request_id = request.request_id
    with transaction(conn, read_only=True) as cur:
        answer = contact(cur, request_id)
    _remove_unrecorded(s3, bucket, request_id)
    key = f"{EXPORT_PREFIX}{request_id}/{secrets.token_urlsafe(24)}.zip"
    with snapshot(conn) as cur:
        subject = resolve_subject(cur, policy, account_id=request.account_id, email=answer.subject_email)
        found = person_tables(cur, policy, subject)  # every store's columns in one catalog query
        tables = [TableExport(t.table, t.category.id, t.store.key, t.columns, t.rows) for t in found]
        objects = _Counted(
            ObjectExport(
                path=f"files/{ref.table}/{ref.record_key}/{_file_name(ref.key)}", bucket=ref.bucket, key=ref.key
            )
            for ref in read_objects(cur, policy, subject, found)  # from the rows read, where they fit
            if ref.bucket != bucket  # not an earlier export's archive
        )
        result = write_export(
            s3,
            bucket=bucket,
            key=key,
            tables=tables,
            objects=objects,
            # made once every table is written, from the rows written of each
            summary=lambda rows: replace(Summary.from_policy(policy), nothing_held=_nothing_held(rows)),
            package_name=f"request-{request_id}-{request.kind}",
            created_at=now,
        )
    counts = result.rows  # the rows written per table: no count_records before the export
    written = {**counts, "records": sum(counts.values()), "objects": objects.count}
    written |= {"files": result.file_count, "bytes": result.byte_size}
    try:
        with transaction(conn) as cur:
            cur.execute(
                "INSERT INTO governance.request_exports (request_id, bucket, object_key, created_at, byte_size, "  # noqa: S608 - fixed names
                f"sha256, file_count) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {_EXPORT_COLUMNS}",
                (request_id, bucket, key, now, result.byte_size, result.sha256, result.file_count),
            )
            export = StoredExport(*_row(cur))
            step = f"request_export_written:{export.export_id}"
            details = {"export_id": export.export_id, "bucket": bucket, "object_key": key, "sha256": result.sha256}
            record(cur, policy, "request_export_written", request, now, step=step, counts=written, **details)
    except BaseException:
        with suppress(Exception):  # not recorded: nothing may stay behind; else the next run removes it
            purge_objects(s3, [(bucket, key)])
        raise
    return export


def _nothing_held(counts: dict[str, int]) -> bool:
    """No record of the person but the platform's own for their requests (CAT-7, schema governance)."""
    return not any(n for table, n in counts.items() if not table.startswith(OWN_SCHEMA))


def _file_name(key: str) -> str:
    """The object's own name, for its path in the archive (the person's own file name)."""
    name = key.rsplit("/", 1)[-1]
    return name if name not in ("", ".", "..") and "\\" not in name and name.isprintable() else "file"


def _remove_unrecorded(s3: S3Client, bucket: str, request_id: int) -> None:
    """An archive of this request left by a crash between its upload and its row: removed."""
    try:
        keys = list(iter_keys(s3, bucket, f"{EXPORT_PREFIX}{request_id}/"))
    except botocore.exceptions.ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", "unknown"))
        retryable = code in TRANSIENT_S3_CODES
        raise _failed(request_id, f"the exports bucket {bucket!r} cannot be listed ({code})", retryable) from None
    outcome = purge_objects(s3, [(bucket, key) for key in keys])
    if outcome.failed:
        codes = ", ".join(f"{code} x{n}" for code, n in sorted(outcome.error_codes.items()))
        raise _failed(request_id, f"an unrecorded archive could not be removed ({codes})", retryable=True)


# --- delivering it -------------------------------------------------------------------------------


def _deliver(
    conn: connection,
    s3: S3Client,
    smtp: SmtpServer,
    policy: Policy,
    request: SubjectRequest,
    export: StoredExport,
    now: datetime,
) -> dict[str, int]:
    """Mail the link (unless it went already), then record it and complete the request together."""
    request_id = request.request_id
    with transaction(conn, read_only=True) as cur:
        counts = _written_counts(cur, request_id, export.export_id)
        answer = contact(cur, request_id)
    expires_at = _link_expiry(policy, request_id, export, now)
    if export.link_sent_at is None:
        _check_present(s3, request_id, export)
        url = presigned_link(s3, export.bucket, export.object_key, expires=expires_at - now)
        send_link(smtp, to=answer.reply_to, url=url, request_id=request_id, expires_at=expires_at)
    with transaction(conn) as cur:
        cur.execute(
            "UPDATE governance.request_exports SET link_sent_at = coalesce(link_sent_at, %s), "
            "link_expires_at = coalesce(link_expires_at, %s) WHERE export_id = %s",
            (now, expires_at, export.export_id),
        )
        record(
            cur,
            policy,
            "request_export_delivered",
            request,
            now,
            step=f"request_export_delivered:{export.export_id}",
            counts={"links_sent": 1},
            export_id=export.export_id,
            link_expires_at=iso(expires_at),
        )
        complete(cur, policy, request_id, outcome=counts, now=now)
    return counts


def _link_expiry(policy: Policy, request_id: int, export: StoredExport, now: datetime) -> datetime:
    """7 days from now, but never past the archive's own window (RET-9): the link must not
    promise what the sweep will have removed. A window already over is a retryable failure: once
    the sweep has purged the archive, the next run writes a new one."""
    expires = now + LINK_LIFETIME
    for rule in policy.rules:
        if rule.table == EXPORTS_TABLE:
            expires = min(expires, policy.window(rule).expires_at(export.created_at))
    if expires - now < timedelta(minutes=1):
        raise _failed(
            request_id,
            f"the window of export {export.export_id} ended before its link was sent; the next run after the "
            "retention sweep writes a new one",
            retryable=True,
        )
    return expires


def _written_counts(cur: cursor, request_id: int, export_id: int) -> dict[str, int]:
    """The counts ``request_export_written`` recorded for this export (what the archive holds)."""
    cur.execute(
        "SELECT counts FROM governance.evidence WHERE kind = 'request_export_written' AND run_id = %s AND step = %s",
        (f"request-{request_id}", f"request_export_written:{export_id}"),
    )
    row = cur.fetchone()
    if row is None:
        raise _failed(request_id, f"export {export_id} has no 'request_export_written' evidence", retryable=False)
    return {str(k): int(v) for k, v in dict(row[0]).items()}


def _check_present(s3: S3Client, request_id: int, export: StoredExport) -> None:
    """The archive must still be there before its link is sent."""
    try:
        s3.head_object(Bucket=export.bucket, Key=export.object_key)
    except botocore.exceptions.ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", "unknown"))
        missing = code in ("404", "NoSuchKey", "NotFound")
        raise _failed(
            request_id,
            f"the archive of export {export.export_id} is {'missing from' if missing else 'unreadable in'} bucket "
            f"{export.bucket!r} ({code})",
            retryable=not missing,
        ) from None


def _failed(request_id: int, what: str, retryable: bool) -> ExportFailed:
    error = ExportFailed(f"request {request_id}: {what}; see {RUNBOOK_SECTION}")
    error.retryable = retryable
    return error


def _row(cur: cursor) -> tuple[Any, ...]:
    row = cur.fetchone()
    assert row is not None
    return tuple(row)


def _one(cur: cursor) -> Any:
    return _row(cur)[0]
