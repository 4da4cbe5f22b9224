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
        args = ("test", "run-1", "visit-data", "batch-1", ["RET-1"], "2026-01-01T00:00:00Z", "v1", '{"deleted": 3}', "{}")
        cur.execute("SELECT governance.append_evidence(%s,%s,%s,%s,%s,%s,%s,%s,%s)", args)
        first = cur.fetchone()[0]
        cur.execute("SELECT governance.append_evidence(%s,%s,%s,%s,%s,%s,%s,%s,%s)", args)
        assert cur.fetchone()[0] == first
        cur.execute("SELECT count(*) FROM governance.evidence WHERE run_id = 'run-1'")
        assert cur.fetchone()[0] == 1
        cur.execute("SELECT * FROM governance.verify_evidence()")
        assert cur.fetchall() == []
        cur.execute("UPDATE governance.evidence SET counts = '{\"deleted\": 1}' WHERE entry_id = %s", (first,))
        cur.execute("SELECT entry_id, problem FROM governance.verify_evidence()")
        assert cur.fetchall() == [(first, "entry_hash does not match its content")]
