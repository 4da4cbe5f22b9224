"""RET-9 for the advertising audience files (TP-1): a file in the drop is a copy of consenting
persons' addresses (hashed), kept only for the ``keep_files`` decision's window after it was
written. Each run of the DAG purges the expired files of an audience: the rows are marked
'purging' (committed), every version of the file and of its manifest is deleted
(``governance.sweep.objects.purge_objects``), then the rows go in one transaction with their
evidence (``audience_files_purged``: counts and file ids). A file under a legal hold (a record
hold on ``governance.audience_files``, RET-8) is kept and counted. A file whose objects could not
all be deleted stays 'purging' and is taken up again by the next run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from governance import evidence
from governance.db import transaction
from governance.errors import AudienceFailed
from governance.policy import Policy
from governance.policy.audiences import Audience
from governance.sweep.objects import purge_objects

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

TABLE = "governance.audience_files"

_EXPIRED = """
UPDATE governance.audience_files f SET state = 'purging'
WHERE f.audience_id = %(audience)s
  AND (f.state = 'purging'
       OR (f.created_at AT TIME ZONE 'UTC' + %(window)s::interval) AT TIME ZONE 'UTC' <= %(now)s::timestamptz)
  AND NOT EXISTS (SELECT 1 FROM governance.holds_at(%(now)s::timestamptz) h
                  WHERE h.scope = 'record' AND h.table_name = 'governance.audience_files'
                    AND h.record_key = f.file_id::text)
RETURNING f.file_id, f.bucket, f.object_key, f.manifest_key
"""
_HELD = """
SELECT count(*) FROM governance.audience_files f
WHERE f.audience_id = %(audience)s
  AND (f.created_at AT TIME ZONE 'UTC' + %(window)s::interval) AT TIME ZONE 'UTC' <= %(now)s::timestamptz
  AND EXISTS (SELECT 1 FROM governance.holds_at(%(now)s::timestamptz) h
              WHERE h.scope = 'record' AND h.table_name = 'governance.audience_files'
                AND h.record_key = f.file_id::text)
"""


@dataclass(frozen=True)
class Purged:
    files: int
    held: int
    failed: int


def purge_expired(conn: Any, s3: S3Client, policy: Policy, audience: Audience, *, now: datetime) -> Purged:
    """Purge the audience's files past their window at ``now`` (and any left 'purging')."""
    params = {"audience": audience.id, "window": str(policy.files_window(audience)), "now": now}
    with transaction(conn) as cur:
        cur.execute(_EXPIRED, params)
        rows: list[tuple[int, str, str, str]] = cur.fetchall()
        cur.execute(_HELD, params)
        held = int(cur.fetchone()[0])  # type: ignore[index]
    if not rows:
        return Purged(0, held, 0)
    outcome = purge_objects(s3, [(b, k) for _, b, key, manifest in rows for k in (key, manifest)])
    done = [f for f, b, key, manifest in rows if (b, key) in outcome.gone and (b, manifest) in outcome.gone]
    with transaction(conn) as cur:
        cur.execute("DELETE FROM governance.audience_files WHERE file_id = ANY(%s) AND state = 'purging'", (done,))
        evidence.append(
            cur,
            kind="audience_files_purged",
            run_id=f"audience:{audience.id}:purge:{now.isoformat()}",
            rule_id=audience.id,
            step="purge",
            requirements=["RET-9", "TP-1"],
            as_of=now,
            policy_version=policy.version,
            counts={
                "files": len(done),
                "held": held,
                "failed": len(rows) - len(done),
                "versions_deleted": outcome.versions_deleted,
            },
            details={
                "file_ids": sorted(done),
                "window": str(policy.files_window(audience)),
                "error_codes": outcome.error_codes,
            },
            numbered=True,
        )
    if len(done) < len(rows):
        raise AudienceFailed(
            f"audience {audience.id}: {len(rows) - len(done)} expired file(s) could not be deleted from the drop "
            f"({outcome.error_codes}); they stay 'purging' and the next run tries again"
        )
    return Purged(len(done), held, 0)
