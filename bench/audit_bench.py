"""Auditing: the full ``run_audit`` against the same predicates run as bare SQL counts.

Runs on the large data of the other measurements before any sweep (4,000,000 visits, 1,000,000
orders and 20,000 uploads at scale 1, half of each overdue). Baselines, the least any audit must do:

- bare SQL: every audit predicate file of the policy (include/sql/audit/*.sql) once, wrapped in
  ``SELECT rule_id, count(*) FILTER (WHERE NOT held), max(overdue_seconds) FILTER (WHERE NOT held)
  ... GROUP BY rule_id``, and every rights check of include/sql/audit/rights/ once as ``SELECT
  count(*)`` (its markers rendered, JIT off, as the audit runs them; the audience check's
  temporary tables declared empty: reading the stored audience files is the audit's own extra).
  Until 2026-12-03 the rights checks were left out of the floor; they cost little on the bench's
  shop until the reconciliation of the kept RET-3 clock (#14, ~1.3 s at 1,000,000 orders) came;
- bare listing: one paginated ``ListObjectsV2`` over the object store's prefix (the object-store
  check cannot do less; on moto it costs about 0.27 ms per key, real S3 far less).

Two checks: the full audit against the bare SQL alone (the issue's target, literally) and against
the bare SQL plus the bare listing (both floors). Each contender runs twice, interleaved (bare,
ours, bare, ours), and the faster of its two runs counts, so neither profits from the other warming
the cache. The audit's own phase times (``report.seconds``) are printed beside.
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
                f"SELECT rule_id, count(*) FILTER (WHERE NOT held), max(overdue_seconds) FILTER (WHERE NOT held) "
                f"FROM ({predicate}\n) q GROUP BY rule_id",
                params,
            )
            for rule_id, count, _oldest in cur.fetchall():
                counts[rule_id] = count
        _bare_rights_checks(ctx, cur)
    conn.commit()
    return time.perf_counter() - start, counts


def _bare_rights_checks(ctx: Context, cur) -> None:
    """Each rights check once, counted (``governance.audit.rights``, without the findings tables)."""
    from governance.audit import audit_parameters
    from governance.audit.rendering import render_markers
    from governance.audit.rights import declare_temporaries, load_checks

    checks = load_checks()
    params = audit_parameters(ctx.policy, ctx.now)
    cur.execute("SET LOCAL jit = off")
    declare_temporaries(cur, checks)
    for check in checks:
        rendered = cur.mogrify(render_markers(cur, ctx.policy, check.file, check.text), params).decode()
        cur.execute(f"SELECT count(*) FROM ({rendered}\n) q")
        cur.fetchall()


def bare_listing(ctx: Context, s3) -> tuple[float, int]:
    """One paginated ListObjectsV2 over every object store of the policy: the listing's floor."""
    from governance.objectstore import iter_keys

    stores = [store.objects for category in ctx.policy.categories for store in category.stores if store.objects]
    start = time.perf_counter()
    listed = sum(1 for link in stores for bucket in link.buckets for _ in iter_keys(s3, bucket, link.prefix))
    return time.perf_counter() - start, listed


def run(ctx: Context, prepared: dict) -> list[Check]:
    conn = ctx.connect("governance-bench-audit")
    s3 = ctx.s3()
    bare_times, listing_times, ours_times, notes = [], [], [], []
    ours_counts: dict[str, int] = {}
    bare_counts: dict[str, int] = {}
    phases: dict[str, float] = {}
    listed = 0
    error = None
    for attempt in range(2):
        ctx.log(f"audit: bare SQL counts, run {attempt + 1}")
        seconds, bare_counts = bare_sql(ctx, conn)
        bare_times.append(seconds)
        ctx.log(f"audit: bare listing, run {attempt + 1}")
        seconds, listed = bare_listing(ctx, s3)
        listing_times.append(seconds)
        ctx.log(f"audit: run_audit, run {attempt + 1}")
        timed = run_audit(ctx, conn, s3)
        if timed.seconds is None:
            error = timed.error
            break
        if not ours_times or timed.seconds < min(ours_times):
            phases = timed.result.get("phase_seconds", {})
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
    listing = min(listing_times)
    floors = bare + listing
    counts = {"overdue_by_rule": bare_counts, "objects_listed": listed}
    for name, info in prepared.items():
        counts[name] = {k: v for k, v in info.items() if isinstance(v, int)}
    runs = (
        f"runs: ours {[round(t, 2) for t in ours_times]}, bare SQL {[round(t, 2) for t in bare_times]}, "
        f"bare listing {[round(t, 2) for t in listing_times]}"
    )
    phase_note = "audit phases (fastest run, s): " + ", ".join(f"{k} {v}" for k, v in phases.items())
    listing_note = (
        f"the bare listing of {listed:,} objects alone is {listing / bare:.2f}x the bare SQL; the audit "
        "lists them concurrently with its predicates"
    )
    r_sql, r_floors = ratio(ours, bare), ratio(ours, floors)
    return [
        Check(
            "audit.full_vs_bare_sql",
            "Audit (run_audit) / bare SQL counts",
            ours,
            {"bare_sql_counts": bare},
            r_sql,
            "ours/baseline",
            "<= 1.5",
            at_most(r_sql, 1.5),
            counts,
            notes + [runs, phase_note, listing_note],
        ),
        Check(
            "audit.full_vs_bare_sql_and_listing",
            "Audit (run_audit) / bare SQL counts + bare object listing",
            ours,
            {"bare_sql_counts": bare, "bare_listing": listing, "sum": floors},
            r_floors,
            "ours/baseline",
            "<= 1.5",
            at_most(r_floors, 1.5),
            counts,
            list(notes),
        ),
    ]
