"""The daily reports in the reports bucket (#13, DAG ``compliance_report``), a copy with a window
(RET-9, decision ``object_store.keep_reports``; SEC-3 checks the bucket with the others).

- ``write_daily``: the report of one UTC day (HTML and JSON) to ``reports/YYYY/MM/DD/report.*``,
  server-side encrypted, then its evidence (``report_written``: keys, sizes, sha256, the verified
  head) committed after the upload. Idempotent per day: when the day's evidence exists and both
  objects are there with the recorded sha256, nothing is written or recorded again; otherwise the
  same keys are overwritten and the new hashes recorded (a numbered step).
- ``purge_expired``: every report object written longer ago than the window (S3 LastModified) is
  deleted, every version (``governance.sweep.objects.purge_objects``), then evidenced
  (``reports_purged``: keys and counts).

The reports hold ids, counts and hashes only, never personal data.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import botocore.exceptions

from governance import evidence
from governance.compliance import report as period_report
from governance.db import transaction
from governance.errors import InfrastructureError, SettingsError
from governance.exports.upload import SSE
from governance.policy import Policy
from governance.sweep.objects import purge_objects
from governance.windows import as_utc, iso

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from psycopg2.extensions import connection

PREFIX = "reports/"
WRITTEN_KIND = "report_written"
PURGED_KIND = "reports_purged"
DAILY_FORMATS = ("html", "json")
REQUIREMENTS = ["RET-9", "SEC-1"]


def reports_bucket(policy: Policy) -> str:
    bucket = policy.object_store.reports_bucket
    if not bucket:
        raise SettingsError(
            "the policy names no object_store.reports_bucket, so no daily report can be written; add one "
            "(and keep_reports: {decision: ...} with a window, RET-9)"
        )
    return bucket


def day_keys(day: date) -> dict[str, str]:
    """The day's object keys by format: ``reports/YYYY/MM/DD/report.<format>``."""
    return {fmt: f"{PREFIX}{day:%Y/%m/%d}/report.{fmt}" for fmt in DAILY_FORMATS}


@dataclass(frozen=True)
class Written:
    day: date
    bucket: str
    keys: dict[str, str]
    sha256: dict[str, str]
    skipped: bool  # the day's report was already there, as recorded
    verified_ok: bool = True
    problems: list[str] = field(default_factory=list)


def _stored_sha256(s3: S3Client, bucket: str, key: str) -> str | None:
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except botocore.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise _unreachable(bucket, type(exc).__name__) from None
    return hashlib.sha256(body).hexdigest()


def _unreachable(bucket: str, cause: str) -> InfrastructureError:
    return InfrastructureError(
        f"the reports bucket {bucket!r} could not be read or written ({cause}); nothing was recorded; "
        "see docs/runbook.md 'The daily report failed'"
    )


def _recorded(conn: connection, run_id: str) -> dict[str, Any] | None:
    """The newest ``report_written`` details of the day's run id, if any."""
    with transaction(conn, read_only=True) as cur:
        cur.execute(
            "SELECT details FROM governance.evidence WHERE kind = %s AND run_id = %s ORDER BY entry_id DESC LIMIT 1",
            (WRITTEN_KIND, run_id),
        )
        row = cur.fetchone()
    return dict(row[0]) if row else None


def write_daily(
    conn: connection, s3: S3Client, policy: Policy, day: date, *, now: datetime, by: str, run_id: str
) -> Written:
    """The report of UTC day ``day`` in the reports bucket, then its evidence (see the module)."""
    bucket, keys = reports_bucket(policy), day_keys(day)
    day_run = f"compliance_report:{day.isoformat()}"
    recorded = _recorded(conn, day_run)
    if recorded is not None:
        stored = {fmt: _stored_sha256(s3, bucket, key) for fmt, key in keys.items()}
        if stored == recorded.get("sha256"):
            return Written(day, bucket, keys, dict(stored), skipped=True)  # type: ignore[arg-type]
    period = period_report.Period(day, day)
    result = period_report.verify_and_record(conn, s3, policy, by=by, run_id=run_id, now=now)
    built = period_report.build(conn, policy, period, verification=result, generated_at=now, generated_by=by)
    bodies = {fmt: period_report.render(built, fmt) for fmt in DAILY_FORMATS}
    for fmt, body in bodies.items():
        try:
            s3.put_object(
                Bucket=bucket,
                Key=keys[fmt],
                Body=body,
                ContentType=period_report.MEDIA_TYPES[fmt],
                ServerSideEncryption=SSE,
            )
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchBucket":
                raise SettingsError(
                    f"the reports bucket {bucket!r} does not exist; create it (server-side encryption, in an EEA "
                    "region, SEC-3) and rerun"
                ) from None
            raise _unreachable(bucket, type(exc).__name__) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise _unreachable(bucket, type(exc).__name__) from None
    sha = {fmt: hashlib.sha256(body).hexdigest() for fmt, body in bodies.items()}
    with transaction(conn) as cur:  # after the upload: the entry says what is in the bucket
        evidence.append(
            cur,
            kind=WRITTEN_KIND,
            run_id=day_run,
            step="write",
            requirements=REQUIREMENTS,
            as_of=now,
            policy_version=policy.version,
            counts={"objects": len(bodies), "bytes": sum(len(b) for b in bodies.values())},
            details={
                "day": day.isoformat(),
                "bucket": bucket,
                "keys": keys,
                "sha256": sha,
                "verified_ok": result.ok,
                "verified_head_hash": result.head_hash,
                "by_run": run_id,
            },
            numbered=True,
        )
    return Written(
        day, bucket, keys, sha, skipped=False, verified_ok=result.ok, problems=[p.problem for p in result.problems]
    )


def expired_keys(s3: S3Client, policy: Policy, *, now: datetime) -> list[str]:
    """Report objects written (LastModified) at least the window ago."""
    bucket, window = reports_bucket(policy), policy.reports_window()
    out = []
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=PREFIX):
            for item in page.get("Contents", []):
                if window.expires_at(as_utc(item["LastModified"])) <= as_utc(now):
                    out.append(item["Key"])
    except botocore.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchBucket", "404"):
            return []
        raise _unreachable(bucket, type(exc).__name__) from None
    return sorted(out)


def purge_expired(conn: connection, s3: S3Client, policy: Policy, *, now: datetime, run_id: str) -> int:
    """Delete the reports past their window (every version), then evidence what went; returns the
    number of objects deleted. Objects that would not go are named in the error; a rerun retries."""
    bucket = reports_bucket(policy)
    keys = expired_keys(s3, policy, now=now)
    if not keys:
        return 0
    outcome = purge_objects(s3, [(bucket, k) for k in keys])
    gone = sorted(k for k in keys if (bucket, k) in outcome.gone)
    with transaction(conn) as cur:
        evidence.append(
            cur,
            kind=PURGED_KIND,
            run_id=run_id,
            step="purge",
            requirements=["RET-9"],
            as_of=now,
            policy_version=policy.version,
            counts={
                "objects": len(gone),
                "failed": len(keys) - len(gone),
                "versions_deleted": outcome.versions_deleted,
            },
            details={"bucket": bucket, "keys": gone, "window": str(policy.reports_window()), "at": iso(now)},
            numbered=True,
        )
    if len(gone) < len(keys):
        raise _unreachable(
            bucket, f"{len(keys) - len(gone)} expired report object(s) not deleted: {outcome.error_codes}"
        )
    return len(gone)
