"""One rule's failure does not stop the others (#9 item 4): an object store that cannot be reached
fails the upload rules with one message naming the component, the cause and the runbook section,
and the other rules still run; a database connection terminated under the sweep is one clear
InfrastructureError, not a chain of "connection already closed"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.config import Config

from governance.db import connect
from governance.errors import DatabaseConnectionLost, InfrastructureError, ObjectStoreFailed
from governance.policy import load_policy
from governance.sweep import SweepFailed, sweep
from governance.sweep.runner import BatchRunner
from tests.integration import sweep_support as s

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def test_an_unreachable_object_store_fails_only_the_rules_that_touch_objects(conn):
    s.empty_shop(conn)
    with conn.cursor() as cur:
        visit = s.visit(cur, NOW - timedelta(days=2))
        upload = s.upload(cur, NOW - timedelta(days=200))  # a guest upload, overdue
    conn.commit()
    dead = boto3.client(  # a raw client (not LazyClient): botocore's own EndpointConnectionError
        "s3",
        endpoint_url="http://127.0.0.1:9",
        region_name="eu-north-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )
    with pytest.raises(SweepFailed) as failure:
        sweep(conn, dead, load_policy(), NOW, "s3-down", ["visit-data", "guest-uploads"])
    error = failure.value.errors["guest-uploads"]
    assert isinstance(error, ObjectStoreFailed) and isinstance(error, InfrastructureError)
    assert error.retryable and error.exit_code == 4
    assert "EndpointConnectionError" in str(error) and "Database or S3 unreachable" in str(error)
    assert error.__cause__ is None and error.__suppress_context__
    assert [r.rule for r in failure.value.results] == ["visit-data"]
    with conn.cursor() as cur:
        assert not s.exists(cur, "shop.visits", "visit_id", visit)  # the unrelated rule ran
        assert s.exists(cur, "shop.uploads", "upload_id", upload)
    conn.rollback()


def test_a_terminated_connection_is_one_clear_error(db_url, monkeypatch):
    conn = connect(db_url)  # its own: the fixture's would be closed under it
    s.empty_shop(conn)
    with conn.cursor() as cur:
        for i in range(6):
            s.visit(cur, NOW - timedelta(days=2, minutes=i))
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]
    conn.commit()
    original = BatchRunner.run

    def run_then_terminate(self, *args, **kwargs):  # kill the sweep's backend after its first batch
        counts = original(self, *args, **kwargs)
        with connect(db_url) as other, other.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
        other.close()
        return counts

    monkeypatch.setattr(BatchRunner, "run", run_then_terminate)
    with pytest.raises(DatabaseConnectionLost) as failure:
        sweep(conn, None, load_policy(), NOW, "terminated", ["visit-data", "cookie-preferences"], batch_size=2)
    error = failure.value
    assert "database connection was closed" in str(error) and "docs/runbook.md" in str(error)
    assert error.__cause__ is None and error.__suppress_context__ and error.exit_code == 4
    assert conn.closed
