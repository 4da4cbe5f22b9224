"""The location check of every audit (SEC-3): each bucket the policy names, and the database, in the EEA.

A bucket's region is asked of the object store (GetBucketLocation); the database's location cannot
be asked of PostgreSQL, so the policy declares it (``locations: database:``) and the declaration is
checked. The result is one ``RuleAudit`` under the rule id ``data-location``: ``overdue`` counts
the places outside the EEA, named (bucket and region, never a key) in its details and message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import botocore.exceptions

from governance.audit.report import LOCATION_CHECK, LOCATION_REQUIREMENTS, LOCATION_RULE, RuleAudit
from governance.eea import BUCKET_LOCATION_ALIASES, EEA_AWS_REGIONS, country_in_eea, region_in_eea
from governance.errors import AuditError
from governance.policy import Policy

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


# A bucket the policy names that does not exist (yet: the evidence anchors' bucket is created by
# the first anchor) holds nothing, so nothing of it is outside the EEA.
ABSENT = "absent"


def bucket_region(s3: S3Client, bucket: str) -> str:
    """The AWS region a bucket is in, as GetBucketLocation reports it (us-east-1 and EU normalised),
    or ``ABSENT`` for a bucket that does not exist."""
    try:
        # None for us-east-1 on AWS, whatever the stubs say
        answer: str | None = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint")
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "?")
        if code == "NoSuchBucket":
            return ABSENT
        raise _unaskable(bucket, f"GetBucketLocation: {code}") from None
    except botocore.exceptions.BotoCoreError as exc:  # endpoint unreachable, no credentials
        raise _unaskable(bucket, type(exc).__name__) from None
    region = answer or ""
    return BUCKET_LOCATION_ALIASES.get(region, region)


def _unaskable(bucket: str, cause: str) -> AuditError:
    return AuditError(
        f"SEC-3: cannot ask the object store where bucket {bucket!r} is ({cause}); check the endpoint and "
        "grant s3:GetBucketLocation to the audit's credentials (docs/runbook.md, 'Data outside the EEA')"
    )


def database_problem(policy: Policy) -> str | None:
    """Why the declared database location is not inside the EEA, or None when it is."""
    if policy.locations is None:
        return "database: no location declared (add 'locations: database: {country: ..}' to the policy)"
    where = policy.locations.database
    if where.country is not None and not country_in_eea(where.country):
        return f"database: declared country {where.country} is outside the EEA"
    if where.region is not None and not region_in_eea(where.region):
        return f"database: declared region {where.region} is outside the EEA"
    return None


def check_locations(s3: S3Client, policy: Policy) -> RuleAudit:
    """Every bucket's region and the database's declared location against the EEA lists."""
    regions = {bucket: bucket_region(s3, bucket) for bucket in policy.buckets()}
    outside = [
        f"bucket {b}: region {r} is outside the EEA" for b, r in regions.items() if r != ABSENT and not region_in_eea(r)
    ]
    problem = database_problem(policy)
    if problem is not None:
        outside.append(problem)
    database = policy.locations.database.model_dump(exclude_none=True) if policy.locations else None
    return RuleAudit(
        rule=LOCATION_RULE,
        requirements=list(LOCATION_REQUIREMENTS),
        overdue=len(outside),
        oldest_overdue_seconds=None,
        held=0,  # a location is not a record: nothing to hold
        check=LOCATION_CHECK,
        details={
            "bucket_regions": regions,
            "database": database,
            "outside": outside,
            "eea_regions": sorted(EEA_AWS_REGIONS),
        },
    )
