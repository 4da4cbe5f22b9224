"""The audit's rights check that no person who objected, withdrew consent or is restricted is in
an advertising audience or subscribed (#11 item 7; TP-1, MKT-1, OBJ-1, CON-1, RES-1).

Independent of the export: every audience file still in the drop (``governance.audience_files``,
state 'stored') is read back from the object store into a temporary table, and the predicate
``include/sql/audit/audiences/objectors_excluded.sql`` compares it with the processing register and
the consents as they were when the file was made; newsletter subscriptions are compared with the
register now. Returns ids and counts only (no address, no hash); the caller (the audit run) records
them. The temporary table lives for the one transaction.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import botocore.exceptions

from governance.db import transaction
from governance.errors import AuditError
from governance.policy import SQL_DIR, Policy

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PREDICATE = SQL_DIR / "audit" / "audiences" / "objectors_excluded.sql"
CHECK_IDS = ("objectors-in-audience", "unconsented-in-audience", "objectors-subscribed")
REQUIREMENTS = ("TP-1", "MKT-1", "OBJ-1", "CON-1", "RES-1")
_LOAD = "COPY pg_temp.audience_members (email_sha256) FROM STDIN WITH (FORMAT csv, HEADER true)"


@dataclass(frozen=True)
class Finding:
    check_id: str
    record_id: int  # an audience file id, or a newsletter subscription id
    offending: int  # persons in it who should not be


@dataclass(frozen=True)
class RightsCheck:
    findings: list[Finding]
    files_read: int
    files_missing: list[int] = field(default_factory=list)  # stored, but no object to read

    @property
    def passed(self) -> bool:
        return not self.findings and not self.files_missing

    def counts(self) -> dict[str, Any]:
        """Per check: offending records and persons; ids of unreadable files. No personal data."""
        records = Counter(f.check_id for f in self.findings)
        persons = Counter[str]()
        for f in self.findings:
            persons[f.check_id] += f.offending
        return {
            "files_read": self.files_read,
            "files_missing": list(self.files_missing),
            **{c: {"records": records[c], "persons": persons[c]} for c in CHECK_IDS},
        }


def newsletter_purpose(policy: Policy) -> str:
    """The purpose whose switch-off ends newsletter subscriptions (default 'newsletter')."""
    for purpose in policy.purposes:
        if any(s.table == "shop.newsletter_subscriptions" for s in purpose.switch_off):
            return purpose.id
    return "newsletter"


def check_objectors_excluded(conn: Any, s3: S3Client, policy: Policy, *, now: datetime) -> RightsCheck:
    """Read every stored audience file back and evaluate the predicate at ``now``."""
    with transaction(conn) as cur:
        cur.execute(
            "CREATE TEMP TABLE audience_members (file_id bigint NOT NULL, email_sha256 text NOT NULL) ON COMMIT DROP"
        )
        cur.execute("SELECT file_id, bucket, object_key FROM governance.audience_files WHERE state = 'stored'")
        files = cur.fetchall()
        missing = [file_id for file_id, bucket, key in files if not _load(cur, s3, file_id, bucket, key)]
        cur.execute("ANALYZE pg_temp.audience_members")
        cur.execute(PREDICATE.read_text(encoding="utf-8"), {"now": now, "newsletter": newsletter_purpose(policy)})
        findings = [Finding(str(c), int(r), int(n)) for c, r, n in cur.fetchall()]
    return RightsCheck(findings=findings, files_read=len(files) - len(missing), files_missing=missing)


def _load(cur: Any, s3: S3Client, file_id: int, bucket: str, key: str) -> bool:
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
