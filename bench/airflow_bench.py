"""The whole DAG through Airflow: ``airflow dags test retention_sweep`` on a seeded shop.

The shop is made by ``governance_dev.loader.seed`` (default 100,000 customers) in a database of its own,
with its objects on the run's moto server. Airflow runs in a throw-away AIRFLOW_HOME with SQLite
metadata (``airflow db migrate`` first, not timed), its connections ``governance_db`` and
``governance_s3`` pointed at those two by environment variables.

Reported: the wall time of the ``airflow dags test`` command, each task's duration as Airflow
recorded it (read from the metadata database after the run: the bench may read it, tasks never
do), and Airflow's own share: the wall time not spent inside any task (CLI start-up, DAG parsing,
scheduling the tasks one by one, writing state).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import services
from harness import Check, Context, analyze_all

DAG_ID = "retention_sweep"
ROOT = Path(__file__).resolve().parent.parent
LOG = ROOT / "bench" / "results" / "airflow_dags_test.log"  # the command's whole output (ignored by git)


def airflow_env(home: Path, db_url: str, s3_url: str) -> dict[str, str]:
    from psycopg2.extensions import parse_dsn

    env = services.proxy_free_env()
    for key in list(env):
        if key.startswith("AIRFLOW_CONN_") or key.startswith("AIRFLOW__"):
            del env[key]
    params = parse_dsn(db_url)
    db_conn = {
        "conn_type": "postgres",
        "host": params.get("host", "127.0.0.1"),
        "port": int(params.get("port", 5432)),
        "login": params.get("user", "postgres"),
        "schema": params["dbname"],
    }
    if params.get("password"):
        db_conn["password"] = params["password"]
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "AIRFLOW_CONN_GOVERNANCE_DB": json.dumps(db_conn),
            "AIRFLOW_CONN_GOVERNANCE_S3": json.dumps(
                {
                    "conn_type": "aws",
                    "login": env.get("AWS_ACCESS_KEY_ID", "testing"),
                    "password": env.get("AWS_SECRET_ACCESS_KEY", "testing"),
                    "extra": {"endpoint_url": s3_url, "region_name": env.get("AWS_DEFAULT_REGION", "eu-north-1")},
                }
            ),
        }
    )
    # Airflow 3.3.2's `dags test` crashes closing a successful run of a DAG with a Deadline Alert
    # ('dict' object has no attribute 'hex'); the DAG turns its alert off for this (dags/retention_sweep.py).
    env["GOVERNANCE_SWEEP_DEADLINE_MINUTES"] = "0"
    env.pop("GOVERNANCE_DB_URL", None)
    env.pop("GOVERNANCE_S3_ENDPOINT_URL", None)
    return env


def airflow_bin() -> str:
    return shutil.which("airflow", path=str(Path(sys.executable).parent)) or "airflow"


def task_durations(home: Path) -> tuple[list[dict], dict]:
    """Per-task rows and the DAG run's own start/end, from the SQLite metadata database."""
    db = sqlite3.connect(home / "airflow.db")
    db.row_factory = sqlite3.Row
    tasks = [
        dict(r)
        for r in db.execute(
            "SELECT task_id, map_index, state, start_date, end_date, duration, try_number FROM task_instance "
            "WHERE dag_id = ? ORDER BY start_date",
            (DAG_ID,),
        )
    ]
    run = db.execute(
        "SELECT state, start_date, end_date FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (DAG_ID,)
    ).fetchone()
    db.close()
    return tasks, dict(run) if run else {}


def run(ctx: Context):
    from governance.db import apply_schema, connect
    from governance_dev.loader import seed

    customers = ctx.size(100_000, 500)
    # The DAG decides for its run's data interval end; the shop is seeded for that same instant.
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    notes: list[str] = []
    with services.scratch_database(ctx.admin_url, suffix="airflow") as (db_url, _name):
        conn = connect(db_url)
        apply_schema(conn, ctx.policy)
        services.reset_moto(ctx.s3_url)
        ctx.log(f"airflow: seeding a shop of {customers:,} customers")
        from governance.objectstore import make_client
        from governance.settings import resolve

        # Objects are capped: moto takes ~3.5 ms per PUT, and 100,000 customers upload ~330,000.
        max_objects = ctx.size(5_000, 500)
        with ctx.setup_phase("airflow seed"):
            report = seed(
                conn,
                make_client(resolve(None, ctx.s3_url)),
                ctx.policy,
                now,
                customers=customers,
                max_objects=max_objects,
                keep_snapshot=False,
            )
            analyze_all(conn)  # as autovacuum would; see harness.analyze_all
            conn.close()
        counts = {
            "customers": customers,
            "max_objects": max_objects,
            "rows": report.rows,
            "objects": report.objects,
            "seed_seconds": round(report.seconds, 1),
        }

        home = Path(tempfile.mkdtemp(prefix="governance-bench-airflow-"))
        try:
            env = airflow_env(home, db_url, ctx.s3_url)
            ctx.log("airflow: airflow db migrate (not timed)")
            start = time.perf_counter()
            with ctx.setup_phase("airflow db migrate"):
                migrate = subprocess.run(
                    [airflow_bin(), "db", "migrate"], env=env, capture_output=True, text=True, timeout=900
                )
            if migrate.returncode != 0:
                raise RuntimeError(f"airflow db migrate failed: {migrate.stderr[-2000:]}")
            counts["migrate_seconds"] = round(time.perf_counter() - start, 1)

            ctx.log(f"airflow: airflow dags test {DAG_ID} {now.isoformat()}")
            start = time.perf_counter()
            # A failed task is retried with backoff (minutes); the run is cut off rather than waited for.
            limit = max(600.0, 1800.0 * ctx.scale)
            try:
                test = subprocess.run(
                    [airflow_bin(), "dags", "test", DAG_ID, now.isoformat()],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=limit,
                )
            except subprocess.TimeoutExpired as exc:

                def text(b):
                    return b.decode(errors="replace") if isinstance(b, bytes) else (b or "")

                test = subprocess.CompletedProcess(exc.cmd, -9, text(exc.stdout), text(exc.stderr))
                notes.append(f"airflow dags test cut off after {limit:.0f} s")
            wall = time.perf_counter() - start
            LOG.parent.mkdir(parents=True, exist_ok=True)
            LOG.write_text(test.stdout + "\n" + test.stderr)
            tasks, dag_run = task_durations(home)
        finally:
            kept = os.environ.get("BENCH_KEEP_AIRFLOW_HOME")
            if not kept:
                shutil.rmtree(home, ignore_errors=True)

    in_tasks = sum(t["duration"] or 0.0 for t in tasks)
    succeeded = test.returncode != -9 and bool(tasks) and all(t["state"] == "success" for t in tasks)
    if test.returncode != 0 or not tasks:
        lines = [line for line in (test.stderr or test.stdout).splitlines() if line.strip()]
        last = lines[-1][:300] if lines else ""
        notes.append(f"airflow dags test exited {test.returncode} (last line: {last}); whole output in {LOG.name}")
    per_task = {
        (t["task_id"] if t["map_index"] in (-1, None) else f"{t['task_id']}[{t['map_index']}]"): round(
            t["duration"] or 0.0, 2
        )
        for t in tasks
    }
    overhead = (wall - in_tasks) / wall if wall > 0 else None
    notes.append("per task (s): " + ", ".join(f"{k} {v}" for k, v in per_task.items()))
    notes.append(f"seeded {customers:,} customers in {report.seconds:.0f} s; {report.objects:,} objects")
    return [
        Check(
            "airflow.retention_sweep_dags_test",
            "retention_sweep via airflow dags test: Airflow's share",
            wall,
            {"sum_of_task_durations": in_tasks},
            overhead,
            "(wall - tasks)/wall",
            "all tasks succeed (overhead reported)",
            succeeded,
            {**counts, "tasks": per_task, "dag_run": dag_run, "states": {t["task_id"]: t["state"] for t in tasks}},
            notes,
            {"ratio_display": "-" if overhead is None else f"{overhead:.0%} overhead"},
        )
    ]
