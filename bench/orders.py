"""RET-3 / RET-8, anonymising orders: our sweep against one set-based UPDATE and row-at-a-time updates.

Data: ``rows`` orders (default 1,000,000) of ``rows / 4`` customers, four orders each; one customer
in five orders as a guest (the customer is then the trimmed, lower-cased e-mail address). Odd
customers are due (last order more than 2 years ago), so half the orders are; even customers have
old orders too, which must stay, since the clock is the customer's last order (RET-10).

Two identical copies (generated once into shop.orders, copied from it row for row): ``shop.orders``
for our sweep (the ``order-records`` rule) and ``bench.orders_single`` for the baselines: first
row-at-a-time updates of an evenly spread sample (one UPDATE by key and one COMMIT per order),
extrapolated; then one set-based UPDATE of the rest with the same predicate as the clock view and
the same SET list as the policy's masking strategies.

Ours reads the RET-3 clock kept per customer (governance.customer_last_order, ADR 0011), kept by
statement triggers on shop.orders; what those triggers cost the shop's inserts is measured last:
orders inserted one per transaction, and in one multi-row statement, into shop.orders (with the
triggers) and into bench.orders_single (the same columns and indexes, no trigger), alternating.
"""

from __future__ import annotations

import time
from dataclasses import replace

from builders import build_orders
from harness import Check, Context, at_least, at_most, checkpoint, ratio
from ours import longest_transaction_check, sweep_rule

RULE = "order-records"

DUE_SQL = """
SELECT order_id FROM (
    SELECT o.order_id,
           max(o.placed_at) OVER (PARTITION BY o.account_id,
                                  CASE WHEN o.account_id IS NULL THEN lower(btrim(o.email)) END) AS clock
    FROM {table} o
    WHERE o.anonymised_at IS NULL
) c
WHERE (c.clock AT TIME ZONE 'UTC' + %s::interval) AT TIME ZONE 'UTC' <= %s
"""


def without_retention_notices(policy):
    """The policy with no recipient told of retention ends (``notify.retention_ended`` off)."""
    recipients = [
        r.model_copy(update={"notify": r.notify.model_copy(update={"retention_ended": False})}) if r.notify else r
        for r in policy.recipients
    ]
    return policy.model_copy(update={"recipients": recipients})


def _set_list(ctx: Context) -> tuple[str, list]:
    """The SET list of the policy's anonymise action: each column's masking strategy, and the marker."""
    action = ctx.policy.rule(RULE).action
    parts, params = [], []
    for column, strategy in action.columns.items():
        expression, values = strategy.sql_value()
        parts.append(f"{column} = {expression}")
        params.extend(values)
    parts.append(f"{action.marker_column} = %s")
    params.append(ctx.now)
    return ", ".join(parts), params


def prepare(ctx: Context) -> dict:
    rows = ctx.size(1_000_000, 8_000)
    conn = ctx.connect()
    ctx.log(f"orders: generating {rows:,} orders, then 1 copy")
    info = build_orders(ctx, conn, rows, copies=("orders_single",))
    conn.close()
    return info


def run(ctx: Context, info: dict) -> list[Check]:
    rows, due = info["rows"], info["due"]
    window = str(ctx.policy.window(ctx.policy.rule(RULE)))
    set_list, set_params = _set_list(ctx)
    conn = ctx.connect()
    counts = {"rows": rows, "due": due, "customers": info["customers"]}
    notes: list[str] = []

    # Baseline: row at a time on a sample of the due orders, each in its own transaction.
    with conn.cursor() as cur:
        cur.execute(DUE_SQL.format(table="bench.orders_single") + " ORDER BY order_id", (window, ctx.now))
        due_ids = [r[0] for r in cur.fetchall()]
    conn.commit()
    if len(due_ids) != due:
        notes.append(f"DATA: {len(due_ids):,} orders due by the baseline predicate, {due:,} expected")
    sample = min(len(due_ids), ctx.sample(2_000, 200))
    step = max(1, len(due_ids) // max(1, sample))
    sample_ids = due_ids[::step][:sample]
    ctx.log(f"orders: row-at-a-time baseline on a sample of {len(sample_ids):,} orders")
    checkpoint(conn)
    start = time.perf_counter()
    with conn.cursor() as cur:
        for order_id in sample_ids:
            cur.execute(f"UPDATE bench.orders_single SET {set_list} WHERE order_id = %s", (*set_params, order_id))
            conn.commit()
    t_sample = time.perf_counter() - start
    row_at_a_time = t_sample / len(sample_ids) * due
    notes.append(
        f"row-at-a-time: {len(sample_ids):,} orders updated one per transaction in {t_sample:.2f} s "
        f"({t_sample / len(sample_ids) * 1000:.2f} ms/order), extrapolated to {due:,} (the id query not counted)"
    )

    # Baseline: one set-based UPDATE of the rest (the floor).
    ctx.log("orders: single UPDATE baseline")
    checkpoint(conn)
    start = time.perf_counter()
    with conn.cursor() as cur:
        cur.execute(
            f"UPDATE bench.orders_single o SET {set_list} "
            f"FROM ({DUE_SQL.format(table='bench.orders_single')}) d WHERE o.order_id = d.order_id",
            (*set_params, window, ctx.now),
        )
        updated = cur.rowcount
    conn.commit()
    t_update = time.perf_counter() - start
    notes.append(f"single UPDATE anonymised {updated:,} orders (the sample already done)")

    # Ours.
    ctx.log("orders: our sweep")
    # The baselines tell no recipient: ours neither here (the shop's policy tells two of the orders
    # it anonymises, TP-5; that cost is measured apart, bench/README.md "Retention-end notices").
    ours = sweep_rule(replace(ctx, policy=without_retention_notices(ctx.policy)), RULE, "orders")
    if ours.seconds is not None:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FILTER (WHERE anonymised_at IS NOT NULL), "
                "count(*) FILTER (WHERE anonymised_at IS NULL AND email IS NULL) FROM shop.orders"
            )
            done, broken = cur.fetchone()
        conn.commit()
        if done != due or broken:
            notes.append(f"SWEEP WRONG: {done:,} orders anonymised, {due:,} due")
            ours.seconds = None
    elif ours.error:
        notes.append(ours.error)
    inserts = insert_overhead(ctx, conn, info["customers"])
    conn.close()

    baselines = {"single_update": t_update, "row_at_a_time_extrapolated": row_at_a_time}
    r1 = ratio(ours.seconds, t_update)
    r2 = ratio(row_at_a_time, ours.seconds)
    return [
        Check(
            "orders.sweep_vs_single_update",
            "RET-3 anonymise / single UPDATE",
            ours.seconds,
            baselines,
            r1,
            "ours/baseline",
            "<= 1.3",
            at_most(r1, 1.3),
            counts,
            notes,
            {"sweep": ours.result},
        ),
        Check(
            "orders.sweep_vs_row_at_a_time",
            "RET-3 anonymise, speed-up vs row-at-a-time (extrap.)",
            ours.seconds,
            {"row_at_a_time_extrapolated": row_at_a_time},
            r2,
            "baseline/ours",
            ">= 100",
            at_least(r2, 100),
            counts,
            ["row-at-a-time extrapolated from a sample"],
        ),
        longest_transaction_check("orders.longest_transaction", "RET-3 anonymise: longest transaction", ours, counts),
        inserts,
    ]


INSERT_SQL = """
INSERT INTO {table} (account_id, email, first_name, last_name, payment_method, total_amount, placed_at)
SELECT CASE WHEN n %% 5 = 0 THEN NULL ELSE 1 + 5 * (n %% %(cycle)s) END,
       CASE WHEN n %% 5 = 0 THEN 'New' || n || '@Example.com' ELSE 'customer' || (1 + 5 * (n %% %(cycle)s)) || '@example.com' END,
       'First', 'Last', 'card', 100, %(now)s
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS n
"""


def insert_overhead(ctx: Context, conn, customers: int) -> Check:
    """Orders inserted with the kept clock's triggers (shop.orders) and without (bench.orders_single):
    one per transaction (a shop's checkout), then one multi-row statement; the tables alternate
    by blocks so that both see the same load. Four in five orders are an existing account's (an
    upsert of its row: customers 1, 6, 11, ... have accounts), one in five a new guest's (a new row)."""
    cycle = max(1, customers // 5)
    single = ctx.sample(4_000, 400)
    block = max(1, single // 8)
    bulk = ctx.sample(100_000, 5_000)
    tables = {"with": "shop.orders", "without": "bench.orders_single"}
    seconds = {"with": 0.0, "without": 0.0}
    first = 10_000_000
    with conn.cursor() as cur:
        for b in range(0, single, block):
            order = ("with", "without") if (b // block) % 2 == 0 else ("without", "with")
            for side in order:
                start = time.perf_counter()
                for n in range(first + b, first + b + block):
                    cur.execute(
                        INSERT_SQL.format(table=tables[side]),
                        {"cycle": cycle, "now": ctx.now, "first": n, "last": n},
                    )
                    conn.commit()
                seconds[side] += time.perf_counter() - start
        bulk_seconds = {}
        for side in ("without", "with"):
            start = time.perf_counter()
            cur.execute(
                INSERT_SQL.format(table=tables[side]),
                {"cycle": cycle, "now": ctx.now, "first": 2 * first, "last": 2 * first + bulk - 1},
            )
            conn.commit()
            bulk_seconds[side] = time.perf_counter() - start
    per_with, per_without = seconds["with"] / single * 1000, seconds["without"] / single * 1000
    r = ratio(seconds["with"], seconds["without"])
    notes = [
        f"{single:,} orders one per transaction: {per_with:.3f} ms/order with the triggers, {per_without:.3f} "
        f"without; one statement of {bulk:,} orders: {bulk_seconds['with']:.2f} s with, "
        f"{bulk_seconds['without']:.2f} s without ({ratio(bulk_seconds['with'], bulk_seconds['without']) or 0:.2f}x)"
    ]
    return Check(
        "orders.insert_overhead",
        "RET-3 kept clock: an order's insert with / without the triggers",
        seconds["with"],
        {
            "without_triggers": seconds["without"],
            "bulk_with": bulk_seconds["with"],
            "bulk_without": bulk_seconds["without"],
        },
        r,
        "ours/baseline",
        "reported",
        True,
        {"orders_one_per_transaction": single, "orders_in_one_statement": bulk},
        notes,
    )
