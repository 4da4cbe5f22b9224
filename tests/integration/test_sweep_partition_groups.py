"""RET-1 partition drops in groups: several fully expired partitions per transaction, each with its
own evidence entry carrying the exact number of rows its DROP removed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from governance.policy import load_policy
from governance.sweep import sweep_rule
from governance.sweep.engine import DROPS_PER_TRANSACTION
from tests.integration import sweep_support as s

NOW = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
RUN = "test-partition-groups"


def test_expired_partitions_dropped_in_groups_with_exact_evidence(conn, s3):
    s.empty_shop(conn)
    expired_hours = 2 * DROPS_PER_TRANSACTION + 3  # two full groups and a partial one
    with conn.cursor() as cur:
        # the hours that end 24 h or more before NOW (fully expired), oldest first
        hours = [(NOW - timedelta(hours=h)).replace(minute=0) for h in range(24 + expired_hours, 24, -1)]
        cur.execute("SELECT governance.ensure_hourly_partitions('shop.visits', %s, %s)",
                    (hours[0], NOW + timedelta(hours=2)))
        expected: dict[str, int] = {}
        for h, start in enumerate(hours):
            n = 1 + h % 4  # a different count per partition
            for i in range(n):
                s.visit(cur, start + timedelta(minutes=1 + i))
            expected["visits_p" + start.strftime("%Y%m%d%H")] = n
        kept = s.visit(cur, NOW - timedelta(hours=1))
    conn.commit()

    result = sweep_rule(conn, s3, load_policy(), "visit-data", NOW, RUN)

    assert result.partitions_dropped == expired_hours
    assert result.deleted == sum(expected.values())
    with conn.cursor() as cur:
        cur.execute("SELECT step, (counts->>'deleted')::int, (counts->>'partitions_dropped')::int, xmin::text "
                    "FROM governance.evidence WHERE run_id = %s AND kind = 'sweep_batch' AND step LIKE 'drop %%'",
                    (RUN,))
        rows = cur.fetchall()
        cur.execute("SELECT count(*) FROM pg_class WHERE relname = ANY(%s)", (sorted(expected),))
        left = cur.fetchone()[0]
        assert s.exists(cur, "shop.visits", "visit_id", kept)
        cur.execute("SELECT count(*) FROM governance.verify_evidence()")  # rows are problems
        problems = cur.fetchone()[0]
    conn.rollback()
    assert left == 0
    # one entry per partition, each with the exact count of the rows it held
    assert {step.removeprefix("drop "): deleted for step, deleted, _, _ in rows} == expected
    assert len(rows) == expired_hours and all(dropped == 1 for _, _, dropped, _ in rows)
    # grouped: ceil(n / DROPS_PER_TRANSACTION) transactions, never more than the group size each
    transactions: dict[str, int] = {}
    for *_, xid in rows:
        transactions[xid] = transactions.get(xid, 0) + 1
    assert len(transactions) == -(-expired_hours // DROPS_PER_TRANSACTION)
    assert max(transactions.values()) == DROPS_PER_TRANSACTION
    assert problems == 0

    # a rerun of the same run drops nothing and records nothing more
    again = sweep_rule(conn, s3, load_policy(), "visit-data", NOW, RUN)
    assert again.partitions_dropped == 0 and again.deleted == 0
