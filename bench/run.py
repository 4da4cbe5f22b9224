"""Benchmarks of the retention platform: every figure a ratio against a baseline timed in the same run.

    python bench/run.py [--scale X] [--requests-scale Y] [--only NAME,...] [--keep] [--io-load N] [--cpu-load M]

Scale 1.0 is the size of the issues (4,000,000 visits, 1,000,000 orders, 20,000 objects, 100,000
customers through Airflow, one person's export among 1,000,000 customers). ``--scale`` sizes the
sweeps' measurements; the request and report measurements (``REQUESTS``) follow it up to 1 and
stay at their issues' sizes above it unless ``--requests-scale`` says otherwise. Prints a table and
writes bench/results/latest.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from datetime import UTC, datetime, timedelta
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results" / "latest.json"

# name -> (module, datasets it needs prepared). The order is the order of the run.
MEASUREMENTS = {
    "audit": ("audit_bench", ("visits", "orders", "objects")),
    "visits": ("visits", ("visits",)),
    "orders": ("orders", ("orders",)),
    "objects": ("objects", ("objects",)),
    "memory": ("memory", ()),
    "airflow": ("airflow_bench", ()),
    "exports": ("exports", ()),  # its own database: a shop of 1,000,000 customers
    "processing": ("processing", ()),  # its own database: 1,000,000 newsletter subscriptions (#11)
    "notices": ("notices", ()),  # TP-5 (#12): 10,000 recipient notices to a local webhook
    "erasure": ("erasure", ()),  # ERA-1: one person's erasure, its own database (export_shop's shop)
    "erasure_replay": ("erasure_replay", ()),  # its own database: a restored shop of 1,000,000 customers
    "audience": ("audience", ()),  # its own database: 1,000,000 accounts, consents, notices (#11)
    "page": ("page", ()),  # its own database: the Governance page over 1,000,000 evidence entries (#13)
    "tuning": ("tuning", ()),  # opt-in: not part of the default run
    "shards": ("shards", ()),  # opt-in (#14): sharded sweeps against unsharded, databases of its own
}
# The request and report measurements (#10-#13): their figures are per request, per export or per
# page, and their growth with the shop was measured at ten times on 2026-12-03 (bench/README.md,
# "Scale 1 and scale 10 side by side"). ``--requests-scale`` sizes them; #14's ``--scale`` is the
# sweeps' data (visits, orders, objects), the audit over it, a sweep's memory and the DAG's run.
REQUESTS = ("exports", "processing", "notices", "erasure", "erasure_replay", "audience", "page")
OPT_IN = ("tuning", "shards")  # not part of the default run (it would pass 15 minutes)
DEFAULT = [name for name in MEASUREMENTS if name not in OPT_IN]
DATASETS = {"visits": "visits", "orders": "orders", "objects": "objects"}


def _ensure_venv() -> None:
    """Re-run under the project's virtualenv when started with a Python that lacks the project."""
    try:
        import governance  # noqa: F401
    except ImportError:
        venv_python = ROOT / ".venv" / "bin" / "python"
        if venv_python.exists() and Path(sys.executable).resolve() != venv_python.resolve():
            os.execv(str(venv_python), [str(venv_python), *sys.argv])
        raise


def _environment() -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        os.environ.pop(name, None)
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "eu-north-1")
    # TP-5: the orders the sweep anonymises are notified to the recipients that opted in (pseudonyms)
    os.environ.setdefault("GOVERNANCE_RECIPIENT_PSEUDONYM_KEY", "bench-recipient-pseudonym-key-0123456789abcdef")


def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": memory_gib,
        "os": platform.platform(),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def code_version() -> dict:
    """The commit measured, and whether the engine's files differ from it in the work tree."""
    import subprocess

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "uncommitted_in_include": git("status", "--porcelain", "--", "include").splitlines(),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scale",
        type=float,
        default=float(os.environ.get("SCALE") or 1.0),
        help="size multiplier; 1.0 = the issue's sizes (default: $SCALE or 1.0)",
    )
    parser.add_argument(
        "--requests-scale",
        type=float,
        default=None,
        metavar="X",
        help=f"size multiplier of the request and report measurements ({', '.join(REQUESTS)}); "
        "default: --scale up to 1, and 1 (their issues' sizes) above it",
    )
    parser.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(MEASUREMENTS)}")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database (for debugging)")
    parser.add_argument(
        "--io-load",
        type=int,
        default=0,
        metavar="N",
        help="run N disk writers (write, fsync, read back) beside the measurements, not the set-up (bench/io_load.py)",
    )
    parser.add_argument(
        "--cpu-load", type=int, default=0, metavar="M", help="and M busy loops on the CPU (bench/io_load.py)"
    )
    parser.add_argument(
        "--throttle-disk",
        type=float,
        default=0,
        metavar="MIBPS",
        help="cap the PostgreSQL server's disk reads and writes at MIBPS MiB/s for the measurements, "
        "not the set-up (root; bench/disk_throttle.py)",
    )
    parser.add_argument("--output", default=str(RESULTS), help="where to write the JSON (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.scale <= 0:
        parser.error("--scale must be positive")
    if args.requests_scale is None:
        args.requests_scale = min(args.scale, 1.0)
    elif args.requests_scale <= 0:
        parser.error("--requests-scale must be positive")
    selected = [n.strip() for n in args.only.split(",") if n.strip()] or DEFAULT
    unknown = [n for n in selected if n not in MEASUREMENTS]
    if unknown:
        parser.error(f"unknown measurement(s) {', '.join(unknown)}; choose from {', '.join(MEASUREMENTS)}")
    args.selected = [n for n in MEASUREMENTS if n in selected]
    return args


def context_for(ctx, name: str, requests_scale: float):
    """The context a measurement runs in: the run's, or for a request measurement the same one
    sized by ``requests_scale`` (its set-up times and log are the run's)."""
    import dataclasses

    if name in REQUESTS and requests_scale != ctx.scale:
        return dataclasses.replace(ctx, scale=requests_scale)
    return ctx


def prepare(ctx, selected: list[str], requests_scale: float) -> dict:
    """The set-up before any measurement: the data sets (``prepare_data``) and, on a second thread
    beside them, the shop template of the measurements that copy it (a module's ``SHOP``, see
    bench/shop_template.py): the data sets' generators each keep one core busy, which leaves the
    other to the template. Nothing is timed until both are done. The seconds the two overlapped are
    kept (``ctx.overlapped``) so that the set-up's total is its wall time."""
    import importlib
    from concurrent.futures import ThreadPoolExecutor

    import shop_template
    from harness import checkpoint

    modules = [importlib.import_module(MEASUREMENTS[n][0]) for n in selected]
    sizes = sorted(
        {
            context_for(ctx, n, requests_scale).size(*m.SHOP)
            for n, m in zip(selected, modules, strict=True)
            if hasattr(m, "SHOP")
        }
    )
    before, start = ctx.setup_seconds(), time.perf_counter()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="shop-template") as beside:
        templates = beside.submit(shop_template.build_beside, ctx, sizes)
        try:
            prepared = prepare_data(ctx, selected)
        finally:
            templates.result()
    if prepared:
        conn = ctx.connect()
        with ctx.setup_phase("checkpoint"):  # once, after both: nothing timed pays for their writes
            checkpoint(conn)
        conn.close()
    ctx.overlapped += max(0.0, (ctx.setup_seconds() - before) - (time.perf_counter() - start))
    return prepared


def prepare_data(ctx, selected: list[str]) -> dict:
    """Build the data sets the selected measurements need (set-up, timed per phase); ``prepare``
    checkpoints after them."""
    import importlib

    from harness import analyze_all

    needed = [d for d in DATASETS if any(d in MEASUREMENTS[n][1] for n in selected)]
    prepared: dict = {}
    for dataset in needed:
        with ctx.setup_phase(dataset):
            prepared[dataset] = importlib.import_module(DATASETS[dataset]).prepare(ctx)
    if prepared:
        conn = ctx.connect()
        with ctx.setup_phase("analyze the database"):
            analyze_all(conn)
        conn.close()
    return prepared


def run_measurement(ctx, name: str, prepared: dict) -> tuple[list, object]:
    """One measurement's checks (and its details, if it gives any); a failure becomes a failed check."""
    import importlib

    from harness import Check

    mod = importlib.import_module(MEASUREMENTS[name][0])
    try:
        if name in DATASETS:
            result = mod.run(ctx, prepared[name])
        elif name == "audit":
            result = mod.run(ctx, prepared)
        else:
            result = mod.run(ctx)
    except Exception as exc:  # one broken measurement must not hide the others
        traceback.print_exc()
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        failed = Check(f"{name}.error", f"{name}: FAILED", None, {}, None, "-", "runs", False)
        failed.notes.append(f"{type(exc).__name__}: {first_line}")
        return [failed], None
    return result if isinstance(result, tuple) else (result, None)


def report(args, ctx, checks: list, extra: dict, facts: dict, postgres: dict, started_at: datetime, wall: float):
    """Print the table, the notes and the set-up phases; write the JSON."""
    from harness import setup_table, table

    print()
    print(
        f"Benchmarks {started_at:%Y-%m-%d %H:%M} UTC, scale {args.scale:g} (requests {args.requests_scale:g}), "
        f"{facts['cores']} cores ({facts['cpu']}), "
        f"PostgreSQL {postgres['server_version']}, total {wall / 60:.1f} min"
    )
    print(table(checks))
    for c in checks:
        for note in c.notes:
            print(f"  note [{c.name}]: {note}")
    missed = [c for c in checks if c.met is False]
    print(
        f"\n{sum(c.met is True for c in checks)} met, {len(missed)} missed, "
        f"{sum(c.met is None for c in checks)} not measured"
    )
    print(f"\nWhere the time went (load average {facts['load_average_at_start']} -> {facts['load_average_at_end']}):")
    print(setup_table(ctx.setup, wall, ctx.overlapped))

    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "generated_at": started_at.isoformat(),
        "scale": args.scale,
        "requests_scale": args.requests_scale,
        "wall_seconds": round(wall, 1),
        "setup_seconds": {name: round(seconds, 1) for name, seconds in ctx.setup.items()},
        "setup_overlapped_seconds": round(ctx.overlapped, 1),
        "machine": facts,
        "postgres": postgres,
        "now": ctx.now.isoformat(),
        "measurements": [c.to_dict(facts["cores"]) for c in checks],
        "details": extra,
    }
    output.write_text(json.dumps(document, indent=2, default=str) + "\n")
    print(f"wrote {output}")


def main(argv: list[str] | None = None) -> int:
    _ensure_venv()
    _environment()
    args = parse_args(argv)
    sys.path.insert(0, str(BENCH_DIR))

    import services
    import shop_template
    from disk_throttle import throttle_disk
    from harness import Context
    from io_load import io_load

    from governance.db import apply_schema, connect
    from governance.policy import load_policy

    started = time.perf_counter()
    started_at = datetime.now(UTC)
    facts = machine()
    facts["code"] = code_version()
    # Half past the previous hour: the RET-1 cut-off (now - 24 h) falls mid-partition, so the
    # sweep has both whole partitions to drop and one to batch-delete, as it will in production.
    now = started_at.replace(minute=0, second=0, microsecond=0) - timedelta(minutes=30)
    policy = load_policy()
    checks: list = []
    extra: dict = {}

    with services.postgres_server() as (admin_url, pg_where), services.moto_server() as s3_url:
        with services.scratch_database(admin_url, keep=args.keep) as (db_url, db_name):
            conn = connect(db_url)
            apply_schema(conn, policy)
            conn.close()
            ctx = Context(args.scale, admin_url, db_url, db_name, s3_url, now, policy)
            ctx.setup["services (S3 server, database, schema)"] = time.perf_counter() - started
            postgres = {**services.server_facts(db_url), "where": pg_where}
            ctx.log(
                f"scale {args.scale:g} (the request measurements {args.requests_scale:g}), "
                f"measurements {', '.join(args.selected)}; PostgreSQL "
                f"{postgres['server_version']} ({pg_where}); S3 {s3_url}; now {now.isoformat()}"
            )
            prepared = prepare(ctx, args.selected, args.requests_scale)
            facts["io_load_processes"], facts["cpu_load_processes"] = args.io_load, args.cpu_load
            try:
                with (
                    throttle_disk(args.throttle_disk, db_url) as throttled,
                    io_load(args.io_load, args.cpu_load),
                ):
                    if throttled:
                        facts["disk_throttle"] = throttled
                        ctx.log(f"the server's disk capped at {args.throttle_disk:g} MiB/s ({throttled['device']})")
                    measure(ctx, args.selected, prepared, checks, extra, args.requests_scale)
            finally:
                shop_template.drop(ctx)  # the shop shared by exports, erasure and erasure_replay

    wall = time.perf_counter() - started
    facts["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report(args, ctx, checks, extra, facts, postgres, started_at, wall)
    return 0


def measure(ctx, selected: list[str], prepared: dict, checks: list, extra: dict, requests_scale: float) -> None:
    """Run the selected measurements in order, adding their checks and details."""
    for name in selected:
        t0 = time.perf_counter()
        result, details = run_measurement(context_for(ctx, name, requests_scale), name, prepared)
        checks.extend(result)
        if details is not None:
            extra[name] = details
        ctx.log(f"{name}: done in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
