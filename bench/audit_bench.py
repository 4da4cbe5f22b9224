"""Auditing: the full ``run_audit`` against the same predicates run as bare SQL counts.

Runs on the large data of the other measurements before any sweep (4,000,000 visits, 1,000,000
orders and 20,000 uploads at scale 1, half of each overdue). The baseline runs every audit
predicate file of the policy (include/sql/audit/*.sql) once, wrapped in
``SELECT rule_id, count(*), max(overdue_seconds) ... GROUP BY rule_id``: the least any audit
must do. Each contender runs twice, interleaved (bare, ours, bare, ours), and the faster of its
two runs counts, so neither profits from the other warming the cache.
"""

from __future__ import annotations

import time

from harness import Check, Context, at_most, ratio
from ours import run_audit


def audit_params(ctx: Context) -> dict:
    params = {"now": ctx.now}
    for rule in ctx.policy.rules:
        params["window__" + rule.id.replace("-", "_")] = str(ctx.policy.window(rule))
    return params


def bare_sql(ctx: Context, conn) -> tuple[float, dict[str, int]]:
    from governance.policy import SQL_DIR

    files = list(dict.fromkeys(rule.audit for rule in ctx.policy.rules))
    params = audit_params(ctx)
    counts: dict[str, int] = {}
    start = time.perf_counter()
    with conn.cursor() as cur:
        for name in files:
            predicate = (SQL_DIR / name).read_text().strip().rstrip(";")
            cur.execute(
                f"SELECT rule_id, count(*), max(overdue_seconds) FROM ({predicate}\n) q GROUP BY rule_id", params
            )
            for rule_id, count, _oldest in cur.fetchall():
                counts[rule_id] = count
    conn.commit()
    return time.perf_counter() - start, counts


def run(ctx: Context, prepared: dict) -> list[Check]:
    conn = ctx.connect("governance-bench-audit")
    s3 = ctx.s3()
    bare_times, ours_times, notes = [], [], []
    ours_counts: dict[str, int] = {}
    bare_counts: dict[str, int] = {}
    error = None
    for attempt in range(2):
        ctx.log(f"audit: bare SQL counts, run {attempt + 1}")
        seconds, bare_counts = bare_sql(ctx, conn)
        bare_times.append(seconds)
        ctx.log(f"audit: run_audit, run {attempt + 1}")
        timed = run_audit(ctx, conn, s3)
        if timed.seconds is None:
            error = timed.error
            break
        ours_times.append(timed.seconds)
        ours_counts = {r["rule"]: r["overdue"] for r in timed.result.get("rules", [])}
    conn.close()
    if error:
        notes.append(error)
    else:
        differ = {
            r.id: (ours_counts.get(r.id, 0), bare_counts.get(r.id, 0))
            for r in ctx.policy.rules
            if ours_counts.get(r.id, 0) != bare_counts.get(r.id, 0)
        }
        if differ:
            notes.append(f"COUNTS DIFFER (audit, bare SQL): {differ}")
            ours_times = []
    ours = min(ours_times) if ours_times else None
    bare = min(bare_times)
    r = ratio(ours, bare)
    counts = {"overdue_by_rule": bare_counts}
    for name, info in prepared.items():
        counts[name] = {k: v for k, v in info.items() if isinstance(v, int)}
    return [
        Check(
            "audit.full_vs_bare_sql",
            "Audit (run_audit) / bare SQL counts",
            ours,
            {"bare_sql_counts": bare},
            r,
            "ours/baseline",
            "<= 1.5",
            at_most(r, 1.5),
            counts,
            notes + [f"runs: ours {[round(t, 2) for t in ours_times]}, bare {[round(t, 2) for t in bare_times]}"],
        )
    ]
