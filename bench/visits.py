"""RET-1, expiring visits: our sweep against a single DELETE (+ its VACUUM) and row-at-a-time deletes.

Data: ``rows`` visits (default 4,000,000) spread evenly over the 48 hours before ``now``, so half
have expired (last activity + 24 h). Four identical copies (generated once into shop.visits, the
others copied from it row for row; builders.build_visits):

- ``shop.visits``, hourly range partitions as in production: our sweep (drops whole expired
  partitions, batch-deletes the one partition the cut-off falls into);
- ``bench.visits_part2``, partitioned the same way: our sweep with ``partition_counts="estimated"``,
  after it is swapped in as ``shop.visits``;
- ``bench.visits_flat``, unpartitioned, same primary key: our sweep again, after it is swapped in
  as ``shop.visits`` (the engine's batched delete on a table that is not partitioned);
- ``bench.visits_single``, unpartitioned: the baselines. First row-at-a-time deletes on an evenly
  spread sample (one DELETE by key and one COMMIT per row, the way a loop over ids does it),
  extrapolated to all expired rows; then one single DELETE of the rest (the floor), then the
  VACUUM that DELETE makes necessary.
"""

from __future__ import annotations

import time

from builders import build_visits, visit_cutoff
from harness import Check, Context, at_least, at_most, checkpoint, ratio
from ours import longest_transaction_check, sweep_rule

RULE = "visit-data"


def _row_at_a_time(conn, table: str, expired: int, sample: int) -> tuple[float, int]:
    """Delete ``sample`` expired rows one by one, each in its own transaction; returns (seconds, rows)."""
    step = max(1, expired // sample)
    ids = list(range(1, expired + 1, step))[:sample]
    with conn.cursor() as cur:
        cur.execute(f"SELECT visit_id, last_activity_at FROM {table} WHERE visit_id = ANY(%s)", (ids,))
        keys = cur.fetchall()
    conn.commit()
    checkpoint(conn)
    start = time.perf_counter()
    with conn.cursor() as cur:
        for visit_id, clock in keys:
            cur.execute(f"DELETE FROM {table} WHERE visit_id = %s AND last_activity_at = %s", (visit_id, clock))
            conn.commit()
    return time.perf_counter() - start, len(keys)


def _swap_in_flat(conn, flat: str) -> None:
    """Make ``bench.<flat>`` (unpartitioned, or partitioned: its partitions stay in schema bench) the
    table the policy names, shop.visits (its clock is the column last_activity_at: no view)."""
    with conn.cursor() as cur:
        cur.execute("DROP TABLE shop.visits CASCADE")  # also drops its sequence
        cur.execute(f"ALTER TABLE bench.{flat} SET SCHEMA shop")
        cur.execute(f"ALTER TABLE shop.{flat} RENAME TO visits")
        cur.execute("CREATE SEQUENCE shop.visits_visit_id_seq OWNED BY shop.visits.visit_id")
        cur.execute("SELECT setval('shop.visits_visit_id_seq', (SELECT max(visit_id) FROM shop.visits))")
        cur.execute("ALTER TABLE shop.visits ALTER COLUMN visit_id SET DEFAULT nextval('shop.visits_visit_id_seq')")
    conn.commit()


def _remaining(conn, cutoff) -> tuple[int, int]:
    with conn.cursor() as cur:
        cur.execute("SELECT count(*), count(*) FILTER (WHERE last_activity_at <= %s) FROM shop.visits", (cutoff,))
        total, expired = cur.fetchone()
    conn.commit()
    return total, expired


def prepare(ctx: Context) -> dict:
    rows = ctx.size(4_000_000, 20_000)
    conn = ctx.connect()
    ctx.log(f"visits: generating {rows:,} rows, then 3 copies (1 partitioned, 2 unpartitioned)")
    info = build_visits(
        ctx, conn, rows, flat_copies=("visits_flat", "visits_single"), partitioned_copies=("visits_part2",)
    )
    conn.close()
    return info


def run(ctx: Context, info: dict) -> list[Check]:
    conn = ctx.connect()
    rows, expired, cutoff = info["rows"], info["expired"], visit_cutoff(ctx.now)
    counts = {"rows": rows, "expired": expired, "hourly_partitions": info["partitions"]}
    notes: list[str] = []

    # Baseline: row at a time, on a sample, extrapolated.
    sample = min(expired, ctx.sample(2_000, 200))
    ctx.log(f"visits: row-at-a-time baseline on a sample of {sample:,} rows")
    t_sample, sampled = _row_at_a_time(conn, "bench.visits_single", expired, sample)
    row_at_a_time = t_sample / sampled * expired
    notes.append(
        f"row-at-a-time: {sampled:,} rows deleted one per transaction in {t_sample:.2f} s "
        f"({t_sample / sampled * 1000:.2f} ms/row), extrapolated to {expired:,} rows (the id query not counted)"
    )

    # Baseline: one single DELETE (the floor), then the VACUUM it makes necessary.
    ctx.log("visits: single DELETE + VACUUM baseline")
    checkpoint(conn)
    start = time.perf_counter()
    with conn.cursor() as cur:
        cur.execute("DELETE FROM bench.visits_single WHERE last_activity_at <= %s", (cutoff,))
        single_deleted = cur.rowcount
    conn.commit()
    t_delete = time.perf_counter() - start
    checkpoint(conn)
    conn.autocommit = True
    start = time.perf_counter()
    with conn.cursor() as cur:
        cur.execute("VACUUM bench.visits_single")
    t_vacuum = time.perf_counter() - start
    conn.autocommit = False
    notes.append(f"single DELETE removed {single_deleted:,} rows (the sample already gone); VACUUM {t_vacuum:.2f} s")

    want = rows - expired

    def checked(title: str, label: str, table: str | None = None, **kwargs):
        """Our sweep (on ``bench.<table>`` swapped in as shop.visits, if given), counted only if it
        left nothing expired and everything else."""
        ctx.log(f"visits: our sweep on {title}")
        if table:
            _swap_in_flat(conn, table)
        timed = sweep_rule(ctx, RULE, label, **kwargs)
        if timed.seconds is not None:
            total, left = _remaining(conn, cutoff)
            if left or total != want:
                notes.append(
                    f"SWEEP ON {title.upper()} WRONG: {left:,} expired rows left, {total:,} rows (want {want:,})"
                )
                timed.seconds = None
        return timed

    part = checked("the partitioned table", "visits-partitioned")
    # A partitioned copy with partition_counts="estimated" (a knob: the rows of a dropped partition
    # from pg_class.reltuples, recorded as rows_estimated, no read).
    part_est = checked(
        "a partitioned copy, partition counts estimated",
        "visits-partitioned-estimated",
        "visits_part2",
        partition_counts="estimated",
    )
    # The unpartitioned copy: block-range batches.
    flat = checked("the unpartitioned copy", "visits-unpartitioned", "visits_flat")
    conn.close()

    baselines = {
        "single_delete": t_delete,
        "single_delete_plus_vacuum": t_delete + t_vacuum,
        "row_at_a_time_extrapolated": row_at_a_time,
    }
    for timed in (part, part_est, flat):
        if timed.error:
            notes.append(timed.error)
    checks = []
    r = ratio(flat.seconds, t_delete)
    checks.append(
        Check(
            "visits.batched_vs_single_delete",
            "RET-1 batched delete (unpartitioned) / single DELETE",
            flat.seconds,
            baselines,
            r,
            "ours/baseline",
            "<= 1.3",
            at_most(r, 1.3),
            counts,
            notes,
            {"sweep": flat.result},
        )
    )
    r = ratio(t_delete + t_vacuum, part.seconds)
    checks.append(
        Check(
            "visits.partitioned_vs_delete_vacuum",
            "RET-1 partitioned sweep, speed-up vs DELETE + VACUUM",
            part.seconds,
            {"single_delete_plus_vacuum": t_delete + t_vacuum},
            r,
            "baseline/ours",
            ">= 10",
            at_least(r, 10),
            counts,
            [],
            {"sweep": part.result},
        )
    )
    r = ratio(t_delete + t_vacuum, part_est.seconds)
    checks.append(
        Check(
            "visits.partitioned_estimated_vs_delete_vacuum",
            "RET-1 partitioned sweep, estimated counts, speed-up vs DELETE + VACUUM",
            part_est.seconds,
            {"single_delete_plus_vacuum": t_delete + t_vacuum},
            r,
            "baseline/ours",
            ">= 10",
            at_least(r, 10),
            counts,
            ["partition_counts='estimated': a dropped partition's rows from pg_class.reltuples (rows_estimated)"],
            {"sweep": part_est.result},
        )
    )
    r = ratio(row_at_a_time, part.seconds)
    checks.append(
        Check(
            "visits.partitioned_vs_row_at_a_time",
            "RET-1 partitioned sweep, speed-up vs row-at-a-time (extrap.)",
            part.seconds,
            {"row_at_a_time_extrapolated": row_at_a_time},
            r,
            "baseline/ours",
            ">= 100",
            at_least(r, 100),
            counts,
            ["row-at-a-time extrapolated from a sample"],
        )
    )
    r = ratio(row_at_a_time, flat.seconds)
    checks.append(
        Check(
            "visits.batched_vs_row_at_a_time",
            "RET-1 batched delete, speed-up vs row-at-a-time (extrap.)",
            flat.seconds,
            {"row_at_a_time_extrapolated": row_at_a_time},
            r,
            "baseline/ours",
            ">= 100",
            at_least(r, 100),
            counts,
            ["row-at-a-time extrapolated from a sample"],
        )
    )
    checks.append(
        longest_transaction_check(
            "visits.longest_transaction_partitioned", "RET-1 partitioned sweep: longest transaction", part, counts
        )
    )
    checks.append(
        longest_transaction_check(
            "visits.longest_transaction_batched", "RET-1 batched delete: longest transaction", flat, counts
        )
    )
    return checks
