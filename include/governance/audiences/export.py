"""The advertising audience file (TP-1): who is in the audience at ``now`` (``selection``), as one
``COPY`` streamed to the drop (``stream``), with a manifest of counts beside it, recorded in
``governance.audience_files`` (RET-9: the copy's window, rule ``audience-files``) together with its
evidence (``audience_exported``: counts, key, SHA-256 of the file; never an address).

The file and the counts are read from one snapshot (REPEATABLE READ): with a second connection the
counts run on it concurrently (``pg_export_snapshot``), so they cost no extra time; they must agree
with the file's lines or nothing is recorded. Idempotent per run: the key is the audience's and
``now``'s, a rerun overwrites it, the row is updated and evidence is added only when the file differs.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import botocore.exceptions

from governance import evidence
from governance.audiences.selection import EXPORT_COPY, REASON_COUNTS, REASONS, parameters
from governance.audiences.stream import Streamed, copy_to_object
from governance.db import transaction
from governance.errors import AudienceFailed
from governance.exports.upload import SSE
from governance.policy import Policy
from governance.policy.audiences import Audience
from governance.windows import as_utc, iso

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

HASHING = "sha256(lower(trim(address))), hex"
MANIFESTS = "manifests/"


@dataclass(frozen=True)
class Exported:
    file_id: int
    persons: int
    excluded: dict[str, int]
    byte_size: int
    sha256: str
    object_key: str
    manifest_key: str
    run_id: str

    def counts(self) -> dict[str, Any]:
        """What logs, XComs and evidence may carry: counts and the file's hash."""
        return {"file_id": self.file_id, "persons": self.persons, "excluded": self.excluded, "bytes": self.byte_size}


def keys(audience: Audience, now: datetime) -> tuple[str, str]:
    """The file's and the manifest's keys: the audience's and the instant's, the same on a rerun."""
    stamp = as_utc(now).strftime("%Y-%m-%dT%H%M%SZ")
    return f"{audience.drop.prefix}{stamp}.csv", f"{MANIFESTS}{audience.id}/{stamp}.json"


def export_audience(
    conn: Any, s3: S3Client, policy: Policy, audience: Audience, *, now: datetime, counts_conn: Any | None = None
) -> Exported:
    """Write the audience file of ``now`` to the drop and record it; ``counts_conn`` (a second
    connection) counts the exclusions at the same time. Raises AudienceFailed naming what to do."""
    run_id = f"audience:{audience.id}:{iso(now)}"
    key, manifest_key = keys(audience, now)
    params = parameters(audience, audience.purpose, now)
    streamed, reasons = _read(conn, counts_conn, s3, audience, key, params)
    persons = streamed.lines - 1  # the header
    if reasons.get("included", 0) != persons:
        raise AudienceFailed(
            f"audience {audience.id}: the file lists {persons} persons but the counts say "
            f"{reasons.get('included', 0)}; nothing was recorded, run again"
        )
    excluded = {r: reasons.get(r, 0) for r in REASONS if r != "included"}
    _put_manifest(s3, audience, manifest_key, run_id, policy, now, persons, excluded, streamed)
    file_id = _record(conn, policy, audience, now, run_id, key, manifest_key, persons, excluded, streamed)
    return Exported(
        file_id, persons, excluded, streamed.uploaded.byte_size, streamed.uploaded.sha256, key, manifest_key, run_id
    )


def _read(
    conn: Any, counts_conn: Any | None, s3: S3Client, audience: Audience, key: str, params: dict[str, Any]
) -> tuple[Streamed, dict[str, int]]:
    """The file and the counts of one snapshot."""
    reasons: dict[str, int] = {}
    failure: list[BaseException] = []
    with transaction(conn, read_only=True) as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        counter = None
        if counts_conn is not None:
            cur.execute("SELECT pg_export_snapshot()")
            snapshot = str(_one(cur))
            counter = threading.Thread(
                target=_count_in, args=(counts_conn, snapshot, params, reasons, failure), daemon=True
            )
            counter.start()
        try:
            streamed = copy_to_object(cur, EXPORT_COPY, params, s3, audience.drop.bucket, key, content_type="text/csv")
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise AudienceFailed(
                f"audience {audience.id}: the file could not be written to the drop ({type(exc).__name__}); "
                "nothing was recorded, run again"
            ) from None
        finally:
            if counter is not None:
                counter.join()
        if counter is None:
            cur.execute(REASON_COUNTS, params)
            reasons.update({reason: int(n) for reason, n in cur.fetchall()})
    if failure:
        raise failure[0]
    return streamed, reasons


def _count_in(
    conn: Any, snapshot: str, params: dict[str, Any], reasons: dict[str, int], failure: list[BaseException]
) -> None:
    """The reasons' counts on a second connection, in the snapshot the file is read from."""
    try:
        with transaction(conn, read_only=True) as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur.execute("SET TRANSACTION SNAPSHOT %s", (snapshot,))
            cur.execute(REASON_COUNTS, params)
            reasons.update({reason: int(n) for reason, n in cur.fetchall()})
    except BaseException as exc:  # raised in the caller's thread
        failure.append(exc)


def _put_manifest(
    s3: S3Client,
    audience: Audience,
    key: str,
    run_id: str,
    policy: Policy,
    now: datetime,
    persons: int,
    excluded: dict[str, int],
    streamed: Streamed,
) -> None:
    """The manifest beside the file: counts, the run, the policy version; no address."""
    manifest = {
        "audience": audience.id,
        "recipient": audience.recipient,
        "purpose": audience.purpose,
        "run_id": run_id,
        "as_of": iso(now),
        "policy_version": policy.version,
        "file": {
            "key": keys(audience, now)[0],
            "sha256": streamed.uploaded.sha256,
            "bytes": streamed.uploaded.byte_size,
        },
        "hashing": HASHING,
        "persons": persons,
        "excluded": excluded,
        "notice_days": audience.notice_days,
    }
    try:
        s3.put_object(
            Bucket=audience.drop.bucket,
            Key=key,
            Body=json.dumps(manifest, indent=2).encode(),
            ContentType="application/json",
            ServerSideEncryption=SSE,
        )
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise AudienceFailed(
            f"audience {audience.id}: the manifest could not be written ({type(exc).__name__}); run again"
        ) from None


def _record(
    conn: Any,
    policy: Policy,
    audience: Audience,
    now: datetime,
    run_id: str,
    key: str,
    manifest_key: str,
    persons: int,
    excluded: dict[str, int],
    streamed: Streamed,
) -> int:
    """The file's row and its evidence, in one transaction; evidence once per distinct file."""
    sha, size = streamed.uploaded.sha256, streamed.uploaded.byte_size
    with transaction(conn) as cur:
        cur.execute(
            "INSERT INTO governance.audience_files (audience_id, purpose, run_id, bucket, object_key, manifest_key, "
            "created_at, as_of, persons, byte_size, sha256) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (audience_id, run_id) DO UPDATE SET persons = EXCLUDED.persons, "
            "byte_size = EXCLUDED.byte_size, sha256 = EXCLUDED.sha256, state = 'stored' RETURNING file_id",
            (
                audience.id,
                audience.purpose,
                run_id,
                audience.drop.bucket,
                key,
                manifest_key,
                now,
                now,
                persons,
                size,
                sha,
            ),
        )
        file_id = int(_one(cur))
        evidence.append(
            cur,
            kind="audience_exported",
            run_id=run_id,
            rule_id=audience.id,
            step=f"file:{sha[:16]}",
            requirements=audience.requirements,
            as_of=now,
            policy_version=policy.version,
            counts={"persons": persons, "bytes": size, **{f"excluded_{r}": n for r, n in excluded.items()}},
            details={
                "file_id": file_id,
                "object_key": key,
                "manifest_key": manifest_key,
                "sha256": sha,
                "recipient": audience.recipient,
                "purpose": audience.purpose,
            },
        )
    return file_id


def _one(cur: Any) -> Any:
    """The single value of a query that returns exactly one row."""
    row = cur.fetchone()
    if row is None:
        raise AudienceFailed("a query that returns one row returned none; this is a bug, report it")
    return row[0]
