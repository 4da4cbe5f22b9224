"""The schema applies idempotently and the policy's names exist in it."""

from governance.db import apply_schema
from governance.policy import check_against_database, load_policy


def test_schema_applies_twice_and_matches_policy(conn):
    policy = load_policy()
    apply_schema(conn, policy)
    apply_schema(conn, policy)
    assert check_against_database(policy, conn) == []


def test_evidence_chain_is_idempotent_and_detects_tampering(conn):
    with conn.cursor() as cur:
        args = (
            "test",
            "run-1",
            "visit-data",
            "batch-1",
            ["RET-1"],
            "2026-01-01T00:00:00Z",
            "v1",
            '{"deleted": 3}',
            "{}",
        )
        cur.execute("SELECT governance.append_evidence(%s,%s,%s,%s,%s,%s,%s,%s,%s)", args)
        first = cur.fetchone()[0]
        cur.execute("SELECT governance.append_evidence(%s,%s,%s,%s,%s,%s,%s,%s,%s)", args)
        assert cur.fetchone()[0] == first
        cur.execute("SELECT count(*) FROM governance.evidence WHERE run_id = 'run-1'")
        assert cur.fetchone()[0] == 1
        cur.execute("SELECT * FROM governance.verify_evidence()")
        assert cur.fetchall() == []
        cur.execute("SET LOCAL session_replication_role = replica")  # superuser past the append-only triggers
        cur.execute("UPDATE governance.evidence SET counts = '{\"deleted\": 1}' WHERE entry_id = %s", (first,))
        cur.execute("SELECT entry_id, problem FROM governance.verify_evidence()")
        assert cur.fetchall() == [(first, "entry_hash does not match its content")]


def test_hourly_partitions_skip_hours_another_partition_already_covers(conn):
    """ensure_hourly_partitions (RET-1) after a rename, or beside partitions another tool made: an hour
    already covered under another name is left alone, the others are created, nothing fails."""
    from datetime import UTC, datetime, timedelta

    start = datetime(2031, 1, 1, 0, tzinfo=UTC)
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE shop.visits_legacy_2031010101 PARTITION OF shop.visits FOR VALUES FROM (%s) TO (%s)",
            (start + timedelta(hours=1), start + timedelta(hours=2)),
        )
        cur.execute(
            "SELECT governance.ensure_hourly_partitions('shop.visits', %s, %s)", (start, start + timedelta(hours=3))
        )
        made = cur.fetchone()[0]
        cur.execute(
            "SELECT count(*) FROM pg_class WHERE relname = ANY(%s)",
            (["visits_p2031010100", "visits_p2031010101", "visits_p2031010102"],),
        )
        named = cur.fetchone()[0]
        cur.execute(
            "SELECT governance.ensure_hourly_partitions('shop.visits', %s, %s)", (start, start + timedelta(hours=3))
        )
        again = cur.fetchone()[0]
    conn.rollback()
    assert (made, named, again) == (2, 2, 0)
