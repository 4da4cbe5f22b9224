"""Our code, called through the agreed interfaces (governance.sweep, governance.audit; docs/architecture.md), timed and watched.

Kept in one place so that a change of signature in the sweep engine, the audit or the generator
is adapted here once. When a module does not exist yet, ``available()`` says so and the
measurements still time their baselines.
"""

from __future__ import annotations

import importlib
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from harness import Check, Context, TransactionMonitor, checkpoint


def module(name: str):
    try:
        return importlib.import_module(f"governance.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"governance.{name}":
            return None
        raise


def function(module_name: str, name: str):
    """``governance.<module_name>.<name>``, or None while that module or function does not exist yet."""
    mod = module(module_name)
    return getattr(mod, name, None) if mod is not None else None


def run_id(label: str) -> str:
    return f"bench-{label}-{uuid.uuid4().hex[:8]}"


def as_dict(result: Any) -> dict:
    if result is None:
        return {}
    if hasattr(result, "to_dict"):
        return result.to_dict()
    if isinstance(result, dict):
        return result
    return dict(vars(result))


@dataclass
class Timed:
    seconds: float | None
    result: dict = field(default_factory=dict)
    longest_transaction_s: float | None = None  # observed from pg_stat_activity
    transactions: int = 0
    error: str | None = None


def sweep_rule(ctx: Context, rule_id: str, label: str, *, s3=None, session: dict | None = None, **kwargs: Any) -> Timed:
    """One rule through ``governance.sweep.sweep_rule`` on a fresh connection, watched by the monitor.

    ``session``: PostgreSQL settings for that connection (e.g. {"work_mem": "64MB"}), for tuning.
    """
    sweep_rule_ = function("sweep", "sweep_rule")
    if sweep_rule_ is None:
        return Timed(None, error="governance.sweep.sweep_rule does not exist yet")
    conn = ctx.connect("governance-bench-sweep")
    s3 = s3 if s3 is not None else ctx.s3()
    for name, value in (session or {}).items():
        with conn.cursor() as cur:
            cur.execute("SELECT set_config(%s, %s, false)", (name, value))
        conn.commit()
    checkpoint(conn)
    try:
        with TransactionMonitor(ctx.db_url, conn.get_backend_pid()) as monitor:
            start = time.perf_counter()
            result = sweep_rule_(conn, s3, ctx.policy, rule_id, ctx.now, run_id(label), **kwargs)
            seconds = time.perf_counter() - start
        return Timed(seconds, as_dict(result), monitor.longest_s, monitor.transactions)
    finally:
        conn.rollback()
        conn.close()


def run_audit(ctx: Context, conn, s3) -> Timed:
    run_audit_ = function("audit", "run_audit")
    if run_audit_ is None:
        return Timed(None, error="governance.audit.run_audit does not exist yet")
    start = time.perf_counter()
    report = run_audit_(conn, s3, ctx.policy, ctx.now, run_id("audit"), db_url=ctx.db_url, record=True)
    seconds = time.perf_counter() - start
    data = report.to_json() if hasattr(report, "to_json") else as_dict(report)
    data["phase_seconds"] = dict(getattr(report, "seconds", {}) or {})
    return Timed(seconds, data)


def longest_transaction_check(name: str, title: str, timed: Timed, counts: dict) -> Check:
    """Target: the longest single transaction of the sweep under 1 s.

    The figure is the longest transaction of any kind the sweep's backend had open, as seen in
    pg_stat_activity (sampled every 50 ms), or the engine's own longest batch if that is longer.
    The longest write batch (what holds row locks the shop could wait on) is shown beside it.
    """
    if timed.seconds is None:
        return Check(name, title, None, {}, None, "seconds", "< 1 s", None, counts, [], {"ratio_display": "-"})
    batch = timed.result.get("max_batch_seconds")
    values = [v for v in (timed.longest_transaction_s, batch) if v is not None]
    longest = max(values) if values else None
    note = (
        f"longest transaction seen in pg_stat_activity {timed.longest_transaction_s:.3f} s "
        f"({timed.transactions} transactions sampled); longest write batch (engine) {batch} s "
        f"in {timed.result.get('batches')} batches"
    )
    return Check(
        name,
        title,
        longest,
        {},
        None,
        "seconds",
        "< 1 s",
        None if longest is None else longest < 1.0,
        {**counts, "longest_write_batch_s": batch},
        [note],
        {"ratio_display": "-"},
    )
