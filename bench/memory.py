"""Memory: the peak resident set of a sweep at 1 x and 4 x the rows must be flat (within 10 %).

Each sweep runs in a child Python process (``python -c``) that does what the CLI and the DAG do:
import the library, connect, and sweep the rules ``visit-data`` (hourly partitions: drops whole
ones, batch-deletes the one the cut-off falls into), ``order-records`` (anonymises half the
orders in batches) and ``guest-uploads`` (purges objects and rows). Its peak RSS is the child's
own high-water mark, VmHWM of /proc/self/status read as it ends (not ru_maxrss: Linux carries the
parent's resident set at fork across exec into it). PostgreSQL's backend memory is not ours and is not counted. A third child that imports and connects but sweeps nothing
gives the floor every Python process pays.

Sizes at scale 1: 250,000 visits, 125,000 orders and 1,000 objects (1 x), four times that (4 x).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time

import services
from builders import build_orders, build_uploads, build_visits
from harness import Check, Context, analyze_all, checkpoint

RULES = ["visit-data", "order-records", "guest-uploads"]

CHILD = r"""
import json, resource, sys, time
from datetime import datetime
args = json.loads(sys.argv[1])
from governance.db import connect
from governance.objectstore import make_client
from governance.policy import load_policy
from governance.settings import resolve
policy = load_policy()
conn = connect(args["db_url"])
s3 = make_client(resolve(None, args["s3_url"]))
results = []
start = time.perf_counter()
if args["rules"]:
    from governance.sweep import sweep
    results = [r.to_dict() if hasattr(r, "to_dict") else r
               for r in sweep(conn, s3, policy, datetime.fromisoformat(args["now"]), args["run_id"],
                              rule_ids=args["rules"])]
conn.close()
# VmHWM: this process's peak resident set since its exec (ru_maxrss would also count the parent's
# pages at fork time, which Linux carries across exec).
hwm_kib = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"seconds": time.perf_counter() - start, "results": results, "vmhwm_kib": hwm_kib}, default=str))
"""


def child_peak(ctx: Context, db_url: str, rules: list[str], label: str) -> tuple[float, dict]:
    """Run the child; returns (peak RSS in MiB, its JSON output)."""
    args = {
        "db_url": db_url,
        "s3_url": ctx.s3_url,
        "now": ctx.now.isoformat(),
        "rules": rules,
        "run_id": f"bench-memory-{label}",
    }
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, json.dumps(args)], stdout=out, stderr=err, env=services.proxy_free_env()
        )
        proc.wait()
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"memory child ({label}) failed: {err.read().decode()[-2000:]}")
        data = json.loads(out.read().decode().strip().splitlines()[-1])
    return data["vmhwm_kib"] / 1024, data


def run(ctx: Context) -> list[Check]:
    from governance.db import apply_schema, connect
    from governance.sweep import sweep  # noqa: F401  (fail early, before building anything, if missing)

    peaks: dict[str, float] = {}
    seconds: dict[str, float] = {}
    counts: dict[str, dict] = {}
    idle = None
    for multiplier in (1, 4):
        label = f"{multiplier}x"
        with services.scratch_database(ctx.admin_url, suffix=f"mem{multiplier}") as (db_url, _name):
            conn = connect(db_url)
            apply_schema(conn, ctx.policy)
            sub = Context(
                scale=ctx.scale,
                admin_url=ctx.admin_url,
                db_url=db_url,
                db_name=_name,
                s3_url=ctx.s3_url,
                now=ctx.now,
                policy=ctx.policy,
            )
            with ctx.setup_phase(f"memory data {label}"):
                services.reset_moto(ctx.s3_url)
                visits = build_visits(sub, conn, ctx.size(250_000, 2_000) * multiplier)
                orders = build_orders(sub, conn, ctx.size(125_000, 1_000) * multiplier)
                uploads = build_uploads(sub, conn, sub.s3(), ctx.size(1_000, 100) * multiplier)
                analyze_all(conn)
                checkpoint(conn)
                conn.close()
            counts[label] = {
                "visits": visits["rows"],
                "visits_expired": visits["expired"],
                "orders": orders["rows"],
                "orders_due": orders["due"],
                "objects": uploads["objects"],
            }
            if idle is None:
                idle, _ = child_peak(ctx, db_url, [], "idle")
            ctx.log(f"memory: sweep at {label} in a child process")
            start = time.perf_counter()
            peaks[label], out = child_peak(ctx, db_url, RULES, label)
            seconds[label] = time.perf_counter() - start
            counts[label]["swept"] = {
                r.get("rule"): r.get("deleted", 0) + r.get("anonymised", 0) + r.get("objects_purged", 0)
                for r in out["results"]
            }
    growth = peaks["4x"] / peaks["1x"]
    met = growth <= 1.10
    return [
        Check(
            "memory.peak_rss_4x_vs_1x",
            "Peak RSS of a sweep, 4x rows / 1x rows",
            seconds["4x"],
            {"sweep_1x": seconds["1x"]},
            growth,
            "peak_rss_4x/peak_rss_1x",
            "<= 1.10",
            met,
            {
                **counts,
                "peak_rss_mib": {k: round(v, 1) for k, v in peaks.items()},
                "idle_process_rss_mib": round(idle, 1),
            },
            [
                f"peak RSS {peaks['1x']:.1f} MiB at 1x, {peaks['4x']:.1f} MiB at 4x; a process that only imports and "
                f"connects: {idle:.1f} MiB"
            ],
            {"ours_display": f"{peaks['4x']:.1f} MiB", "baseline_display": f"1x {peaks['1x']:.1f} MiB"},
        )
    ]
