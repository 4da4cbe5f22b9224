"""RET-1 partition drops in groups: several fully expired partitions per transaction, each with its
own evidence entry carrying the exact number of rows its DROP removed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from governance.policy import load_policy
from governance.sweep import sweep_rule
from governance.sweep.strategies.partitions import DROPS_PER_TRANSACTION
from tests.integration import sweep_support as s

NOW = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
RUN = "test-partition-groups"


def cutoff_partition(conn) -> datetime:
    """An empty shop with the hourly partitions from the one the cut-off (NOW - 24 h) falls into
    onwards; returns that partition's hour (RET-1: its rows go by block-range batches)."""
    s.empty_shop(conn)
    hour = (NOW - timedelta(hours=24)).replace(minute=0)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT governance.ensure_hourly_partitions('shop.visits', %s, %s)", (hour, NOW + timedelta(hours=2))
        )
    conn.commit()
    return hour


def test_expired_partitions_dropped_in_groups_with_exact_evidence(conn, s3):
    s.empty_shop(conn)
    expired_hours = 2 * DROPS_PER_TRANSACTION + 3  # two full groups and a partial one
    with conn.cursor() as cur:
        # the hours that end 24 h or more before NOW (fully expired), oldest first
        hours = [(NOW - timedelta(hours=h)).replace(minute=0) for h in range(24 + expired_hours, 24, -1)]
        cur.execute(
            "SELECT governance.ensure_hourly_partitions('shop.visits', %s, %s)", (hours[0], NOW + timedelta(hours=2))
        )
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
        cur.execute(
            "SELECT step, (counts->>'deleted')::int, (counts->>'partitions_dropped')::int, xmin::text "
            "FROM governance.evidence WHERE run_id = %s AND kind = 'sweep_batch' AND step LIKE 'drop %%'",
            (RUN,),
        )
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


def test_estimated_partition_counts_are_recorded_as_estimates_never_as_deleted(conn, s3):
    """partition_counts="estimated" (a knob, bench/README.md): a dropped partition's rows come from
    pg_class.reltuples and are recorded as rows_estimated; a partition never analysed (reltuples -1)
    is still counted exactly. Either way the partitions go and nothing due is left (RET-1)."""
    s.empty_shop(conn)
    with conn.cursor() as cur:
        hours = [(NOW - timedelta(hours=h)).replace(minute=0) for h in (28, 27, 26)]
        cur.execute(
            "SELECT governance.ensure_hourly_partitions('shop.visits', %s, %s)", (hours[0], NOW + timedelta(hours=2))
        )
        for n, start in zip((3, 5, 2), hours, strict=True):
            for i in range(n):
                s.visit(cur, start + timedelta(minutes=1 + i))
        names = ["visits_p" + start.strftime("%Y%m%d%H") for start in hours]
    conn.commit()
    with conn.cursor() as cur:  # the first two analysed (small tables: every row sampled), the third never
        cur.execute(f"ANALYZE shop.{names[0]}")
        cur.execute(f"ANALYZE shop.{names[1]}")
        cur.execute("SELECT relname, reltuples FROM pg_class WHERE relname = ANY(%s)", (names,))
        assert dict(cur.fetchall()) == {names[0]: 3, names[1]: 5, names[2]: -1}
    conn.commit()

    result = sweep_rule(conn, s3, load_policy(), "visit-data", NOW, RUN + "-estimated", partition_counts="estimated")

    empty = "visits_p" + (NOW - timedelta(hours=25)).replace(minute=0).strftime("%Y%m%d%H")  # also expired
    assert result.partitions_dropped == 4
    assert (result.rows_estimated, result.deleted) == (3 + 5, 2)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT step, counts, details->>'count' FROM governance.evidence WHERE run_id = %s "
            "AND kind = 'sweep_batch' ORDER BY step",
            (RUN + "-estimated",),
        )
        entries = {step.removeprefix("drop "): (counts, how) for step, counts, how in cur.fetchall()}
        cur.execute(
            "SELECT counts FROM governance.evidence WHERE run_id = %s AND kind = 'sweep_rule'", (RUN + "-estimated",)
        )
        summary = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM pg_class WHERE relname = ANY(%s)", (names,))
        left = cur.fetchone()[0]
    conn.rollback()
    assert entries == {
        names[0]: ({"rows_estimated": 3, "partitions_dropped": 1}, "estimated (pg_class.reltuples)"),
        names[1]: ({"rows_estimated": 5, "partitions_dropped": 1}, "estimated (pg_class.reltuples)"),
        names[2]: ({"deleted": 2, "partitions_dropped": 1}, "exact"),
        empty: ({"deleted": 0, "partitions_dropped": 1}, "exact"),  # never analysed either
    }
    assert summary["rows_estimated"] == 8 and summary["deleted"] == 2 and summary["partitions_dropped"] == 4
    assert left == 0


def test_an_unknown_partition_count_mode_is_refused_before_anything_runs(conn, s3):
    import pytest

    with pytest.raises(ValueError, match="partition_counts must be one of exact, estimated, got 'guess'"):
        sweep_rule(conn, s3, load_policy(), "visit-data", NOW, RUN + "-bad", partition_counts="guess")


def test_block_batches_skip_ahead_over_pages_with_nothing_due(conn, s3):
    """RET-1, block-range batches: after a batch that found nothing, a read-only probe jumps to the
    next page with a due row, so a stretch of pages with nothing due costs one statement, not one
    transaction per batch. Every due row still goes, nothing else does."""
    hour = cutoff_partition(conn)
    due_at = hour + timedelta(minutes=1)  # the cut-off is hour + 30 min: the rows at + 31 min are not due
    with conn.cursor() as cur:
        partition = "visits_p" + hour.strftime("%Y%m%d%H")
        # physical order in the partition: due rows, a long stretch of rows not due yet, due rows again
        due = [s.visit(cur, due_at) for _ in range(150)]
        kept = [s.visit(cur, hour + timedelta(minutes=31)) for _ in range(3000)]
        due += [s.visit(cur, due_at) for _ in range(150)]
        cur.execute(f"SELECT pg_relation_size('shop.{partition}') / 8192")
        pages = cur.fetchone()[0]
    conn.commit()
    assert pages >= 20  # the stretch of rows not due spans many one-page batches

    result = sweep_rule(conn, s3, load_policy(), "visit-data", NOW, RUN + "-probe", batch_pages=1)

    with conn.cursor() as cur:
        cur.execute(f"SELECT visit_id FROM shop.{partition}")
        left = {row[0] for row in cur.fetchall()}
    conn.rollback()
    assert result.deleted == len(due) and left == set(kept)
    assert result.probes >= 1
    assert result.batches < pages  # without the probe: one transaction per page (batch_pages=1)


def test_a_rerun_that_finds_new_rows_in_a_recorded_range_records_them_under_step_n(conn, s3):
    """Evidence is idempotent per (run, rule, step); rows that became due in a range this run already
    recorded (a retry of the run) are recorded under step#2, #3..., never dropped or merged (RET-1)."""
    due_at = cutoff_partition(conn) + timedelta(minutes=1)  # the cut-off's partition: block batches
    run = RUN + "-step-n"
    deleted = []
    for n in (3, 2, 1):
        with conn.cursor() as cur:
            for _ in range(n):
                s.visit(cur, due_at)
        conn.commit()
        deleted.append(sweep_rule(conn, s3, load_policy(), "visit-data", NOW, run).deleted)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT step, (counts->>'deleted')::int FROM governance.evidence WHERE run_id = %s "
            "AND kind = 'sweep_batch' ORDER BY entry_id",
            (run,),
        )
        steps = cur.fetchall()
        cur.execute("SELECT count(*) FROM governance.verify_evidence()")
        problems = cur.fetchone()[0]
    conn.rollback()
    first = steps[0][0]
    assert first.startswith("visits_p") and "blocks 0-" in first
    assert steps == [(first, 3), (first + "#2", 2), (first + "#3", 1)]
    assert deleted == [3, 2, 1] and problems == 0
