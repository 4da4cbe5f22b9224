"""CAT-5 object purge against an S3 endpoint that refuses some keys (moto over HTTP).

An object-lock bucket with a legal hold on some object versions makes DeleteObjects answer with
per-key ``AccessDenied`` errors while deleting the rest. Those uploads must stay (as 'purging'
tombstones), the sweep must fail naming the count (not the keys), and a rerun of the same run
after the holds are lifted must finish the job: no orphan objects, no rows pointing at nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from governance.policy import load_policy
from governance.sweep import ObjectPurgeFailed, sweep_rule
from tests.integration import sweep_support as s

NOW = datetime(2026, 6, 1, tzinfo=UTC)
RUN = "object-lock"


def test_per_key_errors_keep_rows_purging_until_a_rerun_finishes(conn, s3):
    s.empty_shop(conn)
    s.create_locked_bucket(s3)
    with conn.cursor() as cur:
        ids = [s.upload(cur, NOW - timedelta(days=100 + i), None, s3, key=f"uploads/guest-{i}.jpg") for i in range(12)]
        kept = s.upload(cur, NOW - timedelta(days=1), None, s3, key="uploads/recent.jpg")
    conn.commit()
    locked = [f"uploads/guest-{i}.jpg" for i in (2, 5, 11)]
    for key in locked:
        s3.put_object_legal_hold(Bucket=s.BUCKET, Key=key, LegalHold={"Status": "ON"})
    policy = load_policy()

    with pytest.raises(ObjectPurgeFailed) as failure:
        sweep_rule(conn, s3, policy, "guest-uploads", NOW, RUN, batch_size=5)
    message = str(failure.value)
    assert "3 object(s) could not be deleted" in message and "AccessDenied" in message
    assert not any(key in message for key in locked) and "uploads/" not in message
    assert not failure.value.retryable  # a lock does not go away by retrying

    with conn.cursor() as cur:
        cur.execute("SELECT object_key, state FROM shop.uploads ORDER BY upload_id")
        rows = cur.fetchall()
        totals = s.evidence_totals(cur, RUN)["guest-uploads"]
    conn.rollback()
    assert rows == [(key, "purging") for key in locked] + [("uploads/recent.jpg", "stored")]
    assert s.object_keys(s3) == {*locked, "uploads/recent.jpg"}  # the others went, every version
    assert totals == {"tombstoned": 12, "deleted": 9, "objects_deleted": 9, "object_errors": 3}

    for key in locked:  # the cause is lifted
        s3.put_object_legal_hold(Bucket=s.BUCKET, Key=key, LegalHold={"Status": "OFF"})
    result = sweep_rule(conn, s3, policy, "guest-uploads", NOW, RUN, batch_size=5)
    assert (result.deleted, result.tombstoned, result.object_errors) == (3, 0, 0)
    with conn.cursor() as cur:
        cur.execute("SELECT upload_id FROM shop.uploads")
        assert cur.fetchall() == [(kept,)]
        totals = s.evidence_totals(cur, RUN)["guest-uploads"]
        summary = s.latest_summaries(cur, RUN)["guest-uploads"]
    conn.rollback()
    assert s.object_keys(s3) == {"uploads/recent.jpg"}
    assert totals["deleted"] == len(ids) == summary["deleted"]
    assert totals["object_errors"] == 3  # the first attempt's errors stay on record


def test_rows_pointing_outside_the_policys_buckets_are_never_purged(conn, s3):
    """Defence in depth: an upload row naming another bucket is reported, its object left alone."""
    s.empty_shop(conn)
    s3.create_bucket(Bucket=s.BUCKET, CreateBucketConfiguration={"LocationConstraint": s3.meta.region_name})
    s3.create_bucket(Bucket="other-bucket", CreateBucketConfiguration={"LocationConstraint": s3.meta.region_name})
    with conn.cursor() as cur:
        s.upload(cur, NOW - timedelta(days=200), None, s3, key="uploads/x.jpg", bucket="other-bucket")
        s.upload(cur, NOW - timedelta(days=200), None, s3, key="uploads/y.jpg")
    conn.commit()
    with pytest.raises(ObjectPurgeFailed, match="1 object.*OutsidePolicyBuckets"):
        sweep_rule(conn, s3, load_policy(), "guest-uploads", NOW, "outside")
    assert s.object_keys(s3, "other-bucket") == {"uploads/x.jpg"}
    assert s.object_keys(s3) == set()
