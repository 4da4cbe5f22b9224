"""The reports bucket's check of every audit (RET-9, #13): no daily compliance report is kept past
its window (``object_store.keep_reports``). Independent of the purge (``governance.compliance.
publish``): it lists the bucket itself. A report counts as overdue once it is older than the window
plus ``PURGE_CADENCE`` (the ``compliance_report`` DAG purges daily). One ``RuleAudit`` under the
rule id ``compliance-reports-object-store``; keys are not personal data (days), counts only.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import botocore.exceptions

from governance.audit.report import OBJECT_STORE_CHECK, OBJECT_STORE_SUFFIX, RuleAudit
from governance.errors import AuditError
from governance.policy import Policy
from governance.windows import as_utc

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

REPORTS_RULE = f"compliance-reports{OBJECT_STORE_SUFFIX}"
REPORTS_PREFIX = "reports/"
PURGE_CADENCE = timedelta(days=1)  # compliance_report runs daily: a report may wait that long


def check_reports(s3: S3Client, policy: Policy, now: datetime) -> RuleAudit | None:
    """The reports bucket's objects against the window; None when the policy names no bucket."""
    bucket = policy.object_store.reports_bucket
    if not bucket:
        return None
    window, now = policy.reports_window(), as_utc(now)
    listed, late = 0, []
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=REPORTS_PREFIX):
            for item in page.get("Contents", []):
                listed += 1
                due = window.expires_at(as_utc(item["LastModified"])) + PURGE_CADENCE
                if due <= now:
                    late.append(int((now - due).total_seconds()))
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "?")
        if code not in ("NoSuchBucket", "404"):
            raise AuditError(f"RET-9: cannot list the reports bucket {bucket!r} ({code})") from None
    except botocore.exceptions.BotoCoreError as exc:
        raise AuditError(f"RET-9: cannot list the reports bucket {bucket!r} ({type(exc).__name__})") from None
    return RuleAudit(
        rule=REPORTS_RULE,
        requirements=["RET-9"],
        overdue=len(late),
        oldest_overdue_seconds=max(late) if late else None,
        held=0,
        check=OBJECT_STORE_CHECK,
        details={"bucket": bucket, "objects_listed": listed, "window": str(window)},
    )
