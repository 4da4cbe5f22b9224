"""Tuning knobs, measured: batch size, work_mem and partition width (opt-in: ``--only tuning``).

Not part of the default run (it repeats sweeps many times); its figures are what chose the
defaults documented in bench/README.md. Every variant starts from the same freshly loaded,
settled table, and is compared with the set-based floor measured on that same table.

- **blocks batch size** (``batch_size``; the engine turns it into a number of heap pages per
  TID-range batch): the unpartitioned visits table, against one single DELETE.
- **work batch size x work_mem** (the anonymisation of orders: one pass computes the due set into a
  temporary table, then batches by TID): against one set-based UPDATE.
- **chunks of a window clock** (``chunk_rows``, RET-3: the orders' per-customer clock is computed
  in ceil(rows / chunk_rows) transactions; ``chunks=1`` is the one pass): the longest transaction
  against the sweep's total, on the same orders, against one set-based UPDATE.
- **partition width** (1 h, 6 h, 24 h): the partitioned visits table; wider partitions mean fewer
  drops but more rows to delete one batch at a time in the partition the cut-off falls into.
"""

from __future__ import annotations

import time
from datetime import timedelta

from builders import VISIT_SPAN, build_orders, build_visits, load_orders, load_visits, visit_cutoff
from harness import Check, Context, analyze_all, checkpoint, settle
from orders import DUE_SQL, _set_list
from ours import sweep_rule
from visits import _swap_in_flat

BLOCK_BATCHES = (2_000, 10_000, 50_000, 200_000)
ORDER_VARIANTS = ((2_000, "4MB"), (10_000, "4MB"), (50_000, "4MB"), (10_000, "64MB"), (50_000, "64MB"))
WIDTHS_HOURS = (1, 6, 24)
CHUNK_VARIANTS = (1, 4, 6, 8, 12)  # N at 1,000,000 orders; chunk_rows = ceil(rows / N), 1 = one pass


def _timed_statement(conn, statement: str, params=None) -> float:
    checkpoint(conn)
    start = time.perf_counter()
    with conn.cursor() as cur:
        cur.execute(statement, params)
    conn.commit()
    return time.perf_counter() - start


def _knob(name: str, title: str, timed, baseline: dict, counts: dict, knob: dict) -> Check:
    base = next(iter(baseline.values()))
    r = None if timed.seconds is None or not base else timed.seconds / base
    res = timed.result
    note = (
        f"{res.get('batches')} batches, longest {res.get('max_batch_seconds')} s; "
        f"strategy {res.get('strategy')}; partitions dropped {res.get('partitions_dropped')}"
    )
    if timed.error:
        note = timed.error
    return Check(
        name,
        title,
        timed.seconds,
        baseline,
        r,
        "ours/baseline",
        "knob",
        None,
        {**counts, **knob},
        [note],
        {"sweep": res},
    )


def _reload_flat_visits(ctx: Context, conn, rows: int) -> None:
    with conn.cursor() as cur:
        cur.execute("TRUNCATE shop.visits")
    conn.commit()
    load_visits(conn, "shop.visits", rows, ctx.now)
    settle(conn, "shop.visits")


def _reload_orders(ctx: Context, conn, rows: int) -> None:
    with conn.cursor() as cur:
        cur.execute("TRUNCATE shop.orders CASCADE")
    conn.commit()
    load_orders(conn, "shop.orders", rows, ctx.now)
    settle(conn, "shop.orders")


def _fresh(ctx: Context, conn) -> None:
    """The shop as the schema makes it, empty (other measurements may have run in this database)."""
    from governance.db import apply_schema

    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS shop.visits CASCADE")
        cur.execute("TRUNCATE shop.accounts, shop.orders, shop.uploads CASCADE")
    conn.commit()
    apply_schema(conn, ctx.policy)


def blocks_batch_size(ctx: Context) -> list[Check]:
    rows = ctx.size(4_000_000, 20_000)
    conn = ctx.connect()
    _fresh(ctx, conn)
    ctx.log(f"tuning: blocks batch size on {rows:,} unpartitioned visits")
    info = build_visits(ctx, conn, rows, flat_copies=("visits_flat",))
    _swap_in_flat(conn, "visits_flat")
    analyze_all(conn)
    t_delete = _timed_statement(conn, "DELETE FROM shop.visits WHERE last_activity_at <= %s", (visit_cutoff(ctx.now),))
    counts = {"rows": rows, "expired": info["expired"]}
    checks = []
    for batch in BLOCK_BATCHES:
        _reload_flat_visits(ctx, conn, rows)
        timed = sweep_rule(ctx, "visit-data", f"tune-blocks-{batch}", batch_size=batch)
        checks.append(
            _knob(
                f"tuning.blocks_batch_{batch}",
                f"knob: blocks batch_size={batch:,} / single DELETE",
                timed,
                {"single_delete": t_delete},
                counts,
                {"batch_size": batch},
            )
        )
    conn.close()
    return checks


def orders_batch_and_work_mem(ctx: Context) -> list[Check]:
    rows = ctx.size(1_000_000, 8_000)
    conn = ctx.connect()
    ctx.log(f"tuning: anonymise batch size x work_mem on {rows:,} orders")
    info = build_orders(ctx, conn, rows)
    analyze_all(conn)
    window = str(ctx.policy.window(ctx.policy.rule("order-records")))
    set_list, set_params = _set_list(ctx)
    t_update = _timed_statement(
        conn,
        f"UPDATE shop.orders o SET {set_list} FROM ({DUE_SQL.format(table='shop.orders')}) d WHERE o.order_id = d.order_id",
        (*set_params, window, ctx.now),
    )
    counts = {"rows": rows, "due": info["due"]}
    checks = []
    for batch, work_mem in ORDER_VARIANTS:
        _reload_orders(ctx, conn, rows)
        timed = sweep_rule(
            ctx, "order-records", f"tune-orders-{batch}-{work_mem}", batch_size=batch, session={"work_mem": work_mem}
        )
        checks.append(
            _knob(
                f"tuning.orders_batch_{batch}_work_mem_{work_mem}",
                f"knob: anonymise batch_size={batch:,}, work_mem={work_mem} / single UPDATE",
                timed,
                {"single_update_work_mem_4MB": t_update},
                counts,
                {"batch_size": batch, "work_mem": work_mem},
            )
        )
    conn.close()
    return checks


def orders_chunks(ctx: Context) -> list[Check]:
    """RET-3: the number of chunks the per-customer clock is computed in (``chunk_rows``)."""
    rows = ctx.size(1_000_000, 8_000)
    conn = ctx.connect()
    ctx.log(f"tuning: chunks of the RET-3 due set on {rows:,} orders")
    _fresh(ctx, conn)
    info = build_orders(ctx, conn, rows)
    analyze_all(conn)
    window = str(ctx.policy.window(ctx.policy.rule("order-records")))
    set_list, set_params = _set_list(ctx)
    t_update = _timed_statement(
        conn,
        f"UPDATE shop.orders o SET {set_list} FROM ({DUE_SQL.format(table='shop.orders')}) d WHERE o.order_id = d.order_id",
        (*set_params, window, ctx.now),
    )
    counts = {"rows": rows, "due": info["due"]}
    checks = []
    for n in CHUNK_VARIANTS:
        _reload_orders(ctx, conn, rows)
        knob = {"chunks": 1} if n == 1 else {"chunk_rows": -(-rows // n)}
        timed = sweep_rule(ctx, "order-records", f"tune-chunks-{n}", **knob)
        check = _knob(
            f"tuning.orders_chunks_{n}",
            f"knob: RET-3 due set in {n} chunk(s) / single UPDATE",
            timed,
            {"single_update": t_update},
            counts,
            knob,
        )
        if timed.longest_transaction_s is not None:
            check.notes.append(f"longest transaction {timed.longest_transaction_s:.3f} s (pg_stat_activity)")
            check.counts["longest_transaction_s"] = round(timed.longest_transaction_s, 3)
        checks.append(check)
    conn.close()
    return checks


def _partitioned_visits(ctx: Context, conn, rows: int, width_hours: int) -> int:
    """Recreate shop.visits range-partitioned in ``width_hours`` partitions aligned to UTC midnight."""
    from governance.db import apply_schema

    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS shop.visits CASCADE")
    conn.commit()
    apply_schema(conn, ctx.policy)  # the production definition again (partitioned, default partition)
    width = timedelta(hours=width_hours)
    day = ctx.now.replace(hour=0, minute=0, second=0, microsecond=0)
    start = day - timedelta(days=3)
    made = 0
    with conn.cursor() as cur:
        lower = start
        while lower < ctx.now + timedelta(hours=49):
            upper = lower + width
            if upper > ctx.now - VISIT_SPAN - width:
                name = f"visits_w{width_hours}_{lower:%Y%m%d%H}"
                cur.execute(
                    f"CREATE TABLE shop.{name} PARTITION OF shop.visits FOR VALUES FROM (%s) TO (%s)", (lower, upper)
                )
                made += 1
            lower = upper
    conn.commit()
    load_visits(conn, "shop.visits", rows, ctx.now)
    settle(conn, "shop.visits")
    analyze_all(conn)
    return made


def partition_width(ctx: Context) -> list[Check]:
    rows = ctx.size(4_000_000, 20_000)
    conn = ctx.connect()
    checks = []
    baseline = None
    # No hourly partitions created ahead by the sweep for these runs (they would overlap the wider ones).
    into_hour = ctx.now - ctx.now.replace(minute=0, second=0, microsecond=0)
    no_ahead = {"partitions_behind": timedelta(0), "partitions_ahead": -(into_hour + timedelta(minutes=1))}
    for width in WIDTHS_HOURS:
        ctx.log(f"tuning: partition width {width} h on {rows:,} visits")
        made = _partitioned_visits(ctx, conn, rows, width)
        if baseline is None:
            # The floor on the same rows: DELETE + VACUUM on an unpartitioned copy.
            with conn.cursor() as cur:
                cur.execute("DROP TABLE IF EXISTS bench.visits_floor")
                cur.execute("CREATE SCHEMA IF NOT EXISTS bench")
                cur.execute("CREATE TABLE bench.visits_floor (LIKE shop.visits INCLUDING ALL)")
            conn.commit()
            load_visits(conn, "bench.visits_floor", rows, ctx.now)
            settle(conn, "bench.visits_floor")
            t = _timed_statement(
                conn, "DELETE FROM bench.visits_floor WHERE last_activity_at <= %s", (visit_cutoff(ctx.now),)
            )
            conn.autocommit = True
            start = time.perf_counter()
            with conn.cursor() as cur:
                cur.execute("VACUUM bench.visits_floor")
            t += time.perf_counter() - start
            conn.autocommit = False
            baseline = {"single_delete_plus_vacuum": t}
        timed = sweep_rule(ctx, "visit-data", f"tune-width-{width}", **no_ahead)
        check = _knob(
            f"tuning.partition_width_{width}h",
            f"knob: partition width {width} h / DELETE + VACUUM",
            timed,
            baseline,
            {"rows": rows, "partitions": made},
            {"width_hours": width},
        )
        if timed.seconds:
            row_wise = timed.result.get("deleted", 0)
            check.notes.append(
                f"{timed.result.get('partitions_dropped')} partitions dropped; "
                f"{row_wise:,} rows removed in all (dropped partitions included)"
            )
        checks.append(check)
    conn.close()
    return checks


def run(ctx: Context) -> list[Check]:
    return blocks_batch_size(ctx) + orders_batch_and_work_mem(ctx) + orders_chunks(ctx) + partition_width(ctx)
