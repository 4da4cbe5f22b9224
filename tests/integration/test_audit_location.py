"""SEC-3 at every audit: each bucket's region (asked of moto's S3 server over HTTP) and the database's
declared location against the EEA; a bucket outside fails the audit, named with its region, in the
report, the failure message and the evidence."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import botocore.config
import pytest

from governance.audit import AuditFailed, run_audit
from governance.audit.location import check_locations
from governance.audit.report import LOCATION_RULE, AuditReport
from governance.eea import EEA_AWS_REGIONS, region_in_eea
from governance.errors import AuditError
from governance.policy import load_policy
from tests.integration.test_audit_properties import empty_shop

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
POLICY = load_policy()
ANCHORS = POLICY.object_store.evidence_anchor_bucket  # created by the first anchor, absent here
DROP = POLICY.audiences[0].drop.bucket  # TP-1: the advertising audience drop
EXPORTS = POLICY.object_store.exports_bucket  # RET-9: the request exports, made where the uploads are
LEDGER = POLICY.object_store.erasure_ledger_bucket  # ERA-1: created by the first erasure, absent here
REPORTS = POLICY.object_store.reports_bucket  # RET-9 (#13): the daily compliance reports


def client(endpoint: str, region: str):
    return boto3.client("s3", endpoint_url=endpoint, region_name=region)


def create_bucket(endpoint: str, bucket: str, region: str) -> None:
    s3 = client(endpoint, region)
    if region == "us-east-1":  # S3 refuses a LocationConstraint of us-east-1: no constraint means it
        s3.create_bucket(Bucket=bucket)
    else:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})


def create_buckets(endpoint: str, uploads_region: str, exports_region: str = "eu-north-1") -> None:
    """The data map's buckets: the uploads (CAT-5) and the request exports (CAT-7)."""
    create_bucket(endpoint, "shop-uploads", uploads_region)
    create_bucket(endpoint, EXPORTS, exports_region)


def test_the_policy_names_its_buckets_and_the_database_location():
    assert POLICY.buckets() == ["shop-uploads", ANCHORS, "governance-exports", LEDGER, REPORTS, DROP]
    assert POLICY.locations is not None and POLICY.locations.database.country == "NO"


def test_eu_prefixed_regions_outside_the_eea_are_not_inside():
    assert region_in_eea("eu-north-1") and region_in_eea("eu-west-1")
    assert not region_in_eea("eu-west-2")  # London
    assert not region_in_eea("eu-central-2")  # Zurich
    assert not region_in_eea("us-east-1")
    assert all(name.startswith("eu-") for name in EEA_AWS_REGIONS)


def test_a_bucket_in_eu_north_1_passes(s3_url):
    create_buckets(s3_url, "eu-north-1")
    result = check_locations(client(s3_url, "eu-north-1"), POLICY)
    assert result.rule == LOCATION_RULE and result.overdue == 0
    assert result.details["bucket_regions"] == {
        "shop-uploads": "eu-north-1",
        ANCHORS: "absent",
        EXPORTS: "eu-north-1",
        LEDGER: "absent",
        REPORTS: "absent",
        DROP: "absent",  # TP-1: the audience drop, made by the first export
    }


def test_the_reports_bucket_outside_the_eea_fails_the_location_check(s3_url):
    """#13: the daily reports are a copy (RET-9) and stay inside the EEA like every other bucket."""
    create_buckets(s3_url, "eu-north-1")
    create_bucket(s3_url, REPORTS, "eu-west-2")  # London: not in the EEA
    result = check_locations(client(s3_url, "eu-north-1"), POLICY)
    assert result.overdue == 1
    assert result.details["outside"] == [f"bucket {REPORTS}: region eu-west-2 is outside the EEA"]


def test_a_bucket_in_us_east_1_fails_the_audit_named_with_its_region(conn, db_url, s3_url):
    create_buckets(s3_url, "us-east-1")
    empty_shop(conn)
    report = run_audit(conn, client(s3_url, "eu-north-1"), POLICY, NOW, "audit-sec3-us", db_url=db_url)
    location = report.rule(LOCATION_RULE)
    assert location.overdue == 1
    assert location.details["outside"] == ["bucket shop-uploads: region us-east-1 is outside the EEA"]
    assert report.overdue_total == 1  # the empty shop has nothing overdue: only the bucket fails
    with pytest.raises(AuditFailed) as failed:
        report.raise_if_overdue()
    assert "shop-uploads" in str(failed.value) and "us-east-1" in str(failed.value)
    assert "Data outside the EEA" in str(failed.value)
    # the DAG's enforce step rebuilds the report from its XCom: the message still names the bucket
    again = AuditReport.from_json(json.loads(json.dumps(report.to_json())))
    assert "bucket shop-uploads: region us-east-1" in again.failure_message()
    with conn.cursor() as cur:
        cur.execute(
            "SELECT overdue, check_kind, requirements FROM governance.audit_history WHERE run_id = %s AND rule_id = %s",
            ("audit-sec3-us", LOCATION_RULE),
        )
        assert cur.fetchone() == (1, "location", ["SEC-3"])
        cur.execute(
            "SELECT details -> 'bucket_regions' FROM governance.evidence WHERE run_id = %s AND rule_id = %s",
            ("audit-sec3-us", LOCATION_RULE),
        )
        assert cur.fetchone()[0] == {
            "shop-uploads": "us-east-1",
            ANCHORS: "absent",
            EXPORTS: "eu-north-1",
            LEDGER: "absent",
            REPORTS: "absent",
            DROP: "absent",
        }


def test_the_same_audit_passes_with_the_bucket_in_eu_north_1(conn, db_url, s3_url):
    create_buckets(s3_url, "eu-north-1")
    empty_shop(conn)
    report = run_audit(conn, client(s3_url, "eu-north-1"), POLICY, NOW, "audit-sec3-eu", db_url=db_url)
    assert report.rule(LOCATION_RULE).overdue == 0
    report.raise_if_overdue()


def test_an_exports_bucket_outside_the_eea_fails_the_location_check(s3_url):
    """SEC-3 covers the request exports (ACC-1, POR-1) as it covers the uploads: every bucket named."""
    create_buckets(s3_url, "eu-north-1", exports_region="eu-west-2")  # London: outside the EEA
    result = check_locations(client(s3_url, "eu-north-1"), POLICY)
    assert result.details["outside"] == [f"bucket {EXPORTS}: region eu-west-2 is outside the EEA"]


def test_a_database_declared_outside_the_eea_or_not_declared_fails(s3_url):
    create_buckets(s3_url, "eu-north-1")
    s3 = client(s3_url, "eu-north-1")
    in_us = POLICY.model_copy(
        update={
            "locations": POLICY.locations.model_copy(
                update={"database": type(POLICY.locations.database)(region="us-west-2")}
            )
        }
    )
    assert check_locations(s3, in_us).details["outside"] == ["database: declared region us-west-2 is outside the EEA"]
    in_ch = POLICY.model_copy(
        update={
            "locations": POLICY.locations.model_copy(update={"database": type(POLICY.locations.database)(country="CH")})
        }
    )
    assert check_locations(s3, in_ch).overdue == 1
    undeclared = POLICY.model_copy(update={"locations": None})
    assert "no location declared" in check_locations(s3, undeclared).details["outside"][0]


def test_a_bucket_that_does_not_exist_holds_nothing_outside_the_eea(s3_url):
    """The evidence anchors' bucket exists only after the first anchor: absent is not a breach."""
    result = check_locations(client(s3_url, "eu-north-1"), POLICY)
    assert result.details["bucket_regions"]["shop-uploads"] == "absent"
    assert result.overdue == 0


def test_an_object_store_that_cannot_be_asked_is_an_audit_error():
    import socket

    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    unreachable = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="eu-north-1",
        config=botocore.config.Config(retries={"max_attempts": 1}, connect_timeout=1),
    )
    with pytest.raises(AuditError, match="shop-uploads.*EndpointConnectionError"):
        check_locations(unreachable, POLICY)
