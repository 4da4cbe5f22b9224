"""retention_sweep and retention_audit on Airflow's CeleryExecutor (#14 item 1): the scheduler, the
DAG processor, the API server and two Celery workers (scripts/celery_stack.py, as `make
airflow-celery` starts them) against Redis and a fresh PostgreSQL metadata database.

Both DAGs are triggered through the REST API with the same "now" (RET-10) and run by the scheduler
on the workers. The test checks that tasks ran on both workers (``task_instance.hostname``), that the
Deadline Alert of retention_sweep is registered and its deadline cleared by the successful run, that
the audit passes, and that the effect equals the in-process sweep (``governance.sweep.sweep``) of an
identically seeded second shop: the same per-rule evidence totals (kind 'sweep_rule'), the same rows
left in every shop table (RET-1..RET-9, RET-8 holds included) and the same objects left (CAT-5).

Skipped, with the reason, when Redis does not answer at 127.0.0.1:6379 (GOVERNANCE_TEST_REDIS_URL). Cron schedules are off in
this stack (``[scheduler] use_job_schedule = False``): an unpaused DAG would otherwise also run for
the wall clock's latest tick, sweeping the fixed-"now" shop at today's date.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from governance.db import connect
from governance.policy import load_policy
from governance_dev.loader import seed
from tests.integration import sweep_support as s
from tests.integration.api_server import postgres_conn_json

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import celery_stack  # noqa: E402  (a script beside the project, not a package)

# The Redis server (its databases 1..15: the test takes an empty one); GOVERNANCE_TEST_REDIS_URL for another.
REDIS = os.environ.get("GOVERNANCE_TEST_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CUSTOMERS, SEED = 100, 14  # the generator's minimum
RUN_TIMEOUT = 900.0  # seconds per DAG run; 2 shared cores
SHOP_TABLES = {  # table -> key column
    "shop.accounts": "account_id",
    "shop.calendar_events": "event_id",
    "shop.saved_products": "saved_product_id",
    "shop.orders": "order_id",
    "shop.order_lines": "order_line_id",
    "shop.uploads": "upload_id",
    "shop.newsletter_subscriptions": "subscription_id",
    "shop.contact_messages": "message_id",
    "shop.cookie_preferences": "preference_id",
    "shop.visits": "visit_id",
    "governance.request_contacts": None,
    "governance.request_exports": None,
}

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.celery,
    pytest.mark.skipif(
        not celery_stack.redis_answers(f"{REDIS}/0"),
        reason=f"no Redis at {REDIS} (the Celery broker): start one with `redis-server --daemonize yes`",
    ),
]


def _free_redis_db() -> int:
    """A Redis database number of our own (an empty one), flushed at the end."""
    import redis

    for number in range(15, 0, -1):
        if redis.Redis.from_url(f"{REDIS}/{number}").dbsize() == 0:
            return number
    pytest.skip(f"no empty Redis database at {REDIS}/1..15")


def _smtp_sink() -> tuple[object, int]:
    from aiosmtpd.controller import Controller

    class Discard:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
            return "250 OK"

    port = celery_stack.free_port()
    controller = Controller(Discard(), hostname="127.0.0.1", port=port)
    controller.start()
    return controller, port


@pytest.fixture(scope="module")
def stack(tmp_path_factory, make_database, db_url, s3_endpoint):
    """The Celery stack over the module's shop database and the session's moto server."""
    import redis

    home = tmp_path_factory.mktemp("celery-airflow")
    password = secrets.token_urlsafe(12)
    (home / "passwords.json").write_text(json.dumps({"admin": password}))
    broker = f"{REDIS}/{_free_redis_db()}"
    controller, smtp_port = _smtp_sink()
    s3_conn = {"endpoint_url": s3_endpoint, "region_name": "eu-north-1"}
    cfg = celery_stack.StackConfig(
        home=home,
        log_dir=home / "components",
        metadata_dsn=make_database(apply=False),  # a fresh metadata database
        broker_url=broker,
        api_port=celery_stack.free_port(),
        base_env={
            "AIRFLOW_CONN_GOVERNANCE_DB": postgres_conn_json(db_url),
            "AIRFLOW_CONN_GOVERNANCE_S3": json.dumps(
                {"conn_type": "aws", "login": "testing", "password": "testing", "extra": s3_conn}
            ),
            "AIRFLOW_CONN_GOVERNANCE_SMTP": json.dumps(
                {
                    "conn_type": "smtp",
                    "host": "127.0.0.1",
                    "port": smtp_port,
                    "extra": {"disable_ssl": True, "disable_tls": True, "timeout": 10, "retry_limit": 0},
                }
            ),
        },
        workers=2,
        concurrency=1,  # one task per worker at a time: with two in flight, both workers have one
        parallelism=2,
        triggerer=False,
        extra={
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        },
    )
    cfg.log_dir.mkdir()
    started = time.monotonic()
    running = celery_stack.start(cfg)
    try:
        running.wait_ready(timeout=300)
        print(f"celery stack ready in {time.monotonic() - started:.0f} s")
        yield running, password
    finally:
        running.stop(grace=10)  # the runs are over: nothing to wait for
        controller.stop()
        redis.Redis.from_url(broker).flushdb()
    assert not _leftovers(running), "processes of the stack outlived its teardown"


def _leftovers(running) -> list[int]:
    import psutil

    return [p.pid for p in psutil.process_iter(["environ"]) if _ours(p, running.cfg.home)]


def _ours(process, home: Path) -> bool:
    try:
        return (process.info.get("environ") or {}).get("AIRFLOW_HOME") == str(home)
    except Exception:
        return False


class Api:
    def __init__(self, url: str, password: str):
        self.url = url
        response = requests.post(f"{url}/auth/token", json={"username": "admin", "password": password}, timeout=30)
        assert response.status_code == 201, response.text
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def call(self, method: str, path: str, **kw) -> dict:
        response = self.session.request(method, f"{self.url}/api/v2{path}", timeout=60, **kw)
        assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text[:500]}"
        return response.json()

    def wait_for_dag(self, dag_id: str, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.session.get(f"{self.url}/api/v2/dags/{dag_id}", timeout=30).status_code == 200:
                return
            time.sleep(2)
        raise AssertionError(f"the DAG processor did not register {dag_id} within {timeout:.0f} s")

    def trigger(self, dag_id: str, run_id: str) -> None:
        self.call("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        instant = NOW.isoformat()
        self.call(
            "POST",
            f"/dags/{dag_id}/dagRuns",
            json={
                "dag_run_id": run_id,
                "logical_date": instant,
                "data_interval_start": instant,
                "data_interval_end": instant,
                "conf": {},
            },
        )

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100})[
            "task_instances"
        ]

    def wait_for_run(self, dag_id: str, run_id: str, home: Path, on_poll=None) -> dict:
        deadline = time.monotonic() + RUN_TIMEOUT
        while time.monotonic() < deadline:
            if on_poll:
                on_poll()
            run = self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
            if run["state"] in ("success", "failed"):
                break
            time.sleep(3)
        tis = self.task_instances(dag_id, run_id)
        states = {f"{ti['task_id']}[{ti['map_index']}]": ti["state"] for ti in tis}
        assert run["state"] == "success", (
            f"{dag_id} run {run_id} is {run['state']}: {states}\n{_log_tails(home, dag_id, run_id, tis)}"
        )
        return {"run": run, "task_instances": tis}


def _log_tails(home: Path, dag_id: str, run_id: str, tis: list[dict]) -> str:
    """The last lines of every unsuccessful task's log files (ids and counts only, by the house rules)."""
    out = []
    folder = home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
    for ti in tis:
        if ti["state"] == "success":
            continue
        for path in sorted(folder.glob(f"task_id={ti['task_id']}/**/*.log")):
            out.append(
                f"--- {path.relative_to(folder)}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-25:])
            )
    return "\n".join(out) or f"(no task logs under {folder})"


def shop_state(conn) -> dict[str, object]:
    """Per table: how many rows are left and which keys; the orders anonymised (RET-8)."""
    out: dict[str, object] = {}
    with conn.cursor() as cur:
        for table, key in SHOP_TABLES.items():
            if key:
                cur.execute(
                    f"SELECT count(*), md5(coalesce(string_agg({key}::text, ',' ORDER BY {key}), '')) FROM {table}"
                )
            else:
                cur.execute(f"SELECT count(*), '' FROM {table}")
            out[table] = cur.fetchone()
        cur.execute("SELECT array_agg(order_id ORDER BY order_id) FROM shop.orders WHERE anonymised_at IS NOT NULL")
        out["anonymised orders"] = cur.fetchone()[0]
    conn.rollback()
    return out


def objects_left(s3, policy) -> dict[str, set[str]]:
    return {bucket: s.object_keys(s3, bucket) for bucket in (policy.object_store.uploads_bucket, "governance-exports")}


def reference_run(make_database, s3, policy) -> dict[str, object]:
    """The in-process sweep of an identically seeded shop: what the Celery run must equal."""
    from governance.sweep import sweep

    conn = connect(make_database())
    try:
        report = seed(conn, s3, policy, NOW, customers=CUSTOMERS, seed=SEED)
        sweep(conn, s3, policy, NOW, "reference")
        with conn.cursor() as cur:
            summaries = s.latest_summaries(cur, "reference")
        conn.rollback()
        return {
            "seeded": report.rows,
            "summaries": summaries,
            "shop": shop_state(conn),
            "objects": objects_left(s3, policy),
        }
    finally:
        conn.close()


def _deadline_rows(metadata_dsn: str, run_id: str) -> int:
    import psycopg2

    with psycopg2.connect(metadata_dsn) as meta, meta.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM deadline d JOIN dag_run r ON r.id = d.dagrun_id "
            "WHERE r.dag_id = 'retention_sweep' AND r.run_id = %s",
            (run_id,),
        )
        count = int(cur.fetchone()[0])
    meta.close()
    return count


def test_sweep_and_audit_run_on_both_celery_workers_and_equal_the_in_process_sweep(
    stack, make_database, db_url, s3_url, s3
):
    running, password = stack
    policy = load_policy()
    expected = reference_run(make_database, s3, policy)
    requests.post(f"{s3_url}/moto-api/reset", timeout=10).raise_for_status()
    conn = connect(db_url)
    report = seed(conn, s3, policy, NOW, customers=CUSTOMERS, seed=SEED)
    assert report.rows == expected["seeded"]
    due = sum(report.expected_overdue.values())
    assert due > 50, report.expected_overdue

    api = Api(running.cfg.api_url, password)
    api.wait_for_dag("retention_sweep")
    api.wait_for_dag("retention_audit")
    started = time.monotonic()
    deadlines_seen: list[int] = []
    api.trigger("retention_sweep", "celery-sweep")
    sweep_run = api.wait_for_run(
        "retention_sweep",
        "celery-sweep",
        running.cfg.home,
        on_poll=lambda: deadlines_seen.append(_deadline_rows(running.cfg.metadata_dsn, "celery-sweep")),
    )
    swept = time.monotonic()
    api.trigger("retention_audit", "celery-audit")
    audit_run = api.wait_for_run("retention_audit", "celery-audit", running.cfg.home)
    print(f"sweep {swept - started:.0f} s, audit {time.monotonic() - swept:.0f} s on the CeleryExecutor")

    # (a) the scheduler spread the tasks over both workers
    tis = sweep_run["task_instances"] + audit_run["task_instances"]
    hosts = {ti["hostname"] for ti in tis}
    assert hosts == {celery_stack.worker_name(1), celery_stack.worker_name(2)}, hosts
    assert all(ti["state"] == "success" for ti in sweep_run["task_instances"] if ti["task_id"] != "anchor_evidence")

    # the Deadline Alert was registered for the run and cleared when it succeeded
    assert max(deadlines_seen) == 1 and _deadline_rows(running.cfg.metadata_dsn, "celery-sweep") == 0

    # (b) the same effect as the in-process sweep of the same shop at the same "now"
    with conn.cursor() as cur:
        summaries = s.latest_summaries(cur, "retention_sweep/celery-sweep")
    conn.rollback()
    assert summaries == expected["summaries"]
    assert sum(c.get("deleted", 0) + c.get("anonymised", 0) for c in summaries.values()) > 0
    assert shop_state(conn) == expected["shop"]
    assert objects_left(s3, policy) == expected["objects"]
    conn.close()
