"""The preparer of the rights check ``objectors_excluded`` (#11 item 7; TP-1, MKT-1, OBJ-1, CON-1,
RES-1): the advertising audience files still in the drop, read back from the object store onto the
audit's connection before the check (``include/sql/audit/rights/objectors_excluded.sql``) runs.

``declare`` makes two temporary tables, dropped at the transaction's end: ``audience_files_read
(file_id, found)``, every file ``governance.audience_files`` records as stored and whether its
object was there, and ``audience_members (file_id, email_sha256)``, their lines. ``load`` fills
them, one ``COPY`` per file streamed from S3. Nothing is logged or returned: the check reports ids.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import botocore.exceptions
from psycopg2.extensions import cursor

from governance.errors import AuditError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_LOAD = "COPY pg_temp.audience_members (email_sha256) FROM STDIN WITH (FORMAT csv, HEADER true)"


def declare(cur: cursor) -> None:
    """The two temporary tables, empty (enough for the auditor role's plan to see what the check reads)."""
    cur.execute(
        "CREATE TEMP TABLE audience_files_read (file_id bigint PRIMARY KEY, found boolean NOT NULL) ON COMMIT DROP"
    )
    cur.execute(
        "CREATE TEMP TABLE audience_members (file_id bigint NOT NULL, email_sha256 text NOT NULL) ON COMMIT DROP"
    )


def load(cur: cursor, s3: S3Client) -> None:
    """Every stored file's lines; a file whose object is gone is recorded as not found."""
    cur.execute("SELECT file_id, bucket, object_key FROM governance.audience_files WHERE state = 'stored'")
    for file_id, bucket, key in cur.fetchall():
        found = _load(cur, s3, file_id, bucket, key)
        cur.execute("INSERT INTO pg_temp.audience_files_read (file_id, found) VALUES (%s, %s)", (file_id, found))
    cur.execute("ANALYZE pg_temp.audience_members")


def _load(cur: cursor, s3: S3Client, file_id: int, bucket: str, key: str) -> bool:
    """Stream one file's lines into the temporary table; False when its object is gone."""
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    except botocore.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return False
        raise AuditError(f"audience file {file_id}: cannot be read from the drop ({type(exc).__name__})") from None
    except botocore.exceptions.BotoCoreError as exc:
        raise AuditError(f"audience file {file_id}: cannot be read from the drop ({type(exc).__name__})") from None
    cur.execute("ALTER TABLE pg_temp.audience_members ALTER COLUMN file_id SET DEFAULT %s", (file_id,))
    cur.copy_expert(_LOAD, body)
    return True
