"""Airflow on the CeleryExecutor on one machine: the scheduler, the DAG processor, the API server,
optionally the triggerer, and N Celery workers, against Redis (the broker) and PostgreSQL (the
metadata database, which also holds Celery's results).

Used by ``scripts/devservices.py airflow-celery`` (``make airflow-celery``) and by the Celery test
(tests/integration/test_celery_executor.py). Every component runs in a process group of its own;
``stop_processes`` ends each group and every descendant (Airflow's task processes make groups of
their own), SIGTERM first, SIGKILL after a grace period, so nothing is left behind.

Each worker is ``airflow celery worker -H workerN@<host>`` with ``GOVERNANCE_WORKER_NAME`` the same
and ``[core] hostname_callable`` = ``governance_airflow.hostname.worker_hostname``: a task instance's
``hostname`` names the worker that ran it. Each worker serves its logs on a port of its own.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
METADATA_DATABASE = "airflow"
STOP_GRACE_SECONDS = 30.0


class StackError(RuntimeError):
    """The stack cannot start; the message says what to do."""


# --- the services it needs ---------------------------------------------------------------------


def check_redis(broker_url: str) -> None:
    """StackError naming how to start Redis when nothing answers PING at ``broker_url``."""
    import redis

    try:
        redis.Redis.from_url(broker_url, socket_timeout=3, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        raise StackError(
            f"Redis does not answer at {broker_url} ({type(exc).__name__}). The CeleryExecutor needs it as its "
            "broker: start it with `redis-server --daemonize yes` (install it with `sudo apt install redis-server`, "
            "or `brew install redis`), or give yours: `make airflow-celery CELERY_BROKER_URL=redis://HOST:6379/0`."
        ) from None


def redis_answers(broker_url: str) -> bool:
    try:
        check_redis(broker_url)
    except StackError:
        return False
    return True


def database_url(server_url: str, name: str) -> str:
    """A libpq URL/DSN for database ``name`` on the server of ``server_url``."""
    from psycopg2.extensions import make_dsn, parse_dsn

    params = parse_dsn(server_url)
    params["dbname"] = name
    return make_dsn(**params)


def ensure_database(server_url: str, name: str, *, fresh: bool = False) -> str:
    """Create database ``name`` on the server of ``server_url`` when missing (dropped first when
    ``fresh``); returns its libpq DSN."""
    import psycopg2
    from psycopg2 import sql

    admin = psycopg2.connect(database_url(server_url, "postgres"))
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            if fresh:
                cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg2.errors.InsufficientPrivilege:
        raise StackError(
            f"cannot create the Airflow metadata database {name!r}: the login has no CREATEDB; create it once "
            f"(CREATE DATABASE {name}) or grant CREATEDB"
        ) from None
    finally:
        admin.close()
    return database_url(server_url, name)


def sqlalchemy_url(dsn: str, driver: str = "postgresql+psycopg2") -> str:
    """The SQLAlchemy URL for a libpq URL/DSN (a unix-socket host goes into the query string)."""
    from psycopg2.extensions import parse_dsn
    from sqlalchemy.engine import URL

    params = parse_dsn(dsn)
    host = params.pop("host", None)
    query: dict[str, str] = {}
    if host and host.startswith("/"):
        query["host"] = host
        host = None
    port = params.pop("port", None)
    url = URL.create(
        driver,
        username=params.pop("user", None),
        password=params.pop("password", None) or None,
        host=host,
        port=int(port) if port else None,
        database=params.pop("dbname", None),
        query={**query, **params},
    )
    return url.render_as_string(hide_password=False)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- configuration -------------------------------------------------------------------------------


@dataclass
class StackConfig:
    """What differs between ``make airflow-celery`` and the test."""

    home: Path  # AIRFLOW_HOME
    log_dir: Path  # one <component>.log each
    metadata_dsn: str  # libpq; also Celery's result backend
    broker_url: str
    api_port: int
    base_env: dict[str, str]  # the governance connections and the services' settings
    workers: int = 2
    concurrency: int = 2
    parallelism: int = 4
    triggerer: bool = True
    secrets: dict[str, str] = field(default_factory=dict)  # jwt_secret, secret_key, fernet_key
    extra: dict[str, str] = field(default_factory=dict)  # more AIRFLOW__* settings

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"


def new_secrets() -> dict[str, str]:
    from cryptography.fernet import Fernet

    return {
        "jwt_secret": secrets.token_urlsafe(48),  # 64 characters: HS512 wants no fewer
        "secret_key": secrets.token_urlsafe(32),
        "fernet_key": Fernet.generate_key().decode(),
    }


def stack_env(cfg: StackConfig) -> dict[str, str]:
    """The environment every component shares (the workers add their name and log port)."""
    keys = cfg.secrets or new_secrets()
    cfg.secrets = keys
    env = dict(os.environ)
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        env.pop(proxy, None)
    env.update(cfg.base_env)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bin_dir, *[p for p in env.get("PATH", "").split(os.pathsep) if p != bin_dir]])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "include"), os.environ.get("PYTHONPATH")) if p)
    metadata = sqlalchemy_url(cfg.metadata_dsn)
    env.update(
        {
            "AIRFLOW_HOME": str(cfg.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(cfg.parallelism),
            "AIRFLOW__CORE__FERNET_KEY": keys["fernet_key"],
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "governance_airflow.hostname.worker_hostname",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{cfg.api_url}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata,
            "AIRFLOW__CELERY__BROKER_URL": cfg.broker_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{metadata}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(cfg.concurrency),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(cfg.api_port),
            "AIRFLOW__API__BASE_URL": cfg.api_url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": keys["secret_key"],
            "AIRFLOW__API_AUTH__JWT_SECRET": keys["jwt_secret"],
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(cfg.home / "logs"),
        }
    )
    env.update(cfg.extra)
    return env


def worker_name(number: int) -> str:
    """The Celery node name of worker ``number`` (``-H``), also its task instances' ``hostname``."""
    return f"worker{number}@{socket.gethostname()}"


def components(cfg: StackConfig, env: dict[str, str]) -> dict[str, tuple[list[str], dict[str, str]]]:
    """name -> (argv, environment) of every component."""
    airflow = str(Path(sys.executable).parent / "airflow")
    out: dict[str, tuple[list[str], dict[str, str]]] = {
        "api-server": ([airflow, "api-server"], env),
        "scheduler": ([airflow, "scheduler"], env),
        "dag-processor": ([airflow, "dag-processor"], env),
    }
    if cfg.triggerer:
        out["triggerer"] = ([airflow, "triggerer"], env)
    for number in range(1, cfg.workers + 1):
        worker_env = dict(env)
        worker_env["GOVERNANCE_WORKER_NAME"] = worker_name(number)
        worker_env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] = str(free_port())
        argv = [airflow, "celery", "worker", "-H", worker_name(number), "--concurrency", str(cfg.concurrency)]
        out[f"worker{number}"] = (argv, worker_env)
    return out


# --- running it ----------------------------------------------------------------------------------


def migrate(env: dict[str, str], log_dir: Path) -> None:
    """``airflow db migrate`` on the metadata database (a no-op when it is current)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    airflow = str(Path(sys.executable).parent / "airflow")
    result = subprocess.run(
        [airflow, "db", "migrate"], env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=900
    )
    (log_dir / "migrate.log").write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise StackError(f"airflow db migrate failed; see {log_dir / 'migrate.log'}:\n{result.stderr[-2000:]}")


@dataclass
class Stack:
    cfg: StackConfig
    processes: dict[str, subprocess.Popen[bytes]]

    def log(self, name: str) -> str:
        return (self.cfg.log_dir / f"{name}.log").read_text(errors="replace")

    def exited(self) -> dict[str, int]:
        return {name: p.returncode for name, p in self.processes.items() if p.poll() is not None}

    def pids(self) -> dict[str, dict[str, float]]:
        """name -> {pid, started}: what ``stop_recorded`` needs after this process is gone."""
        import psutil

        out = {}
        for name, process in self.processes.items():
            try:
                out[name] = {"pid": process.pid, "started": psutil.Process(process.pid).create_time()}
            except psutil.NoSuchProcess:
                continue
        return out

    def wait_ready(self, timeout: float = 180.0) -> None:
        """Until the API server answers and every worker answers a Celery ping."""
        deadline = time.monotonic() + timeout
        want = {worker_name(n) for n in range(1, self.cfg.workers + 1)}
        while time.monotonic() < deadline:
            if self.exited():
                name, code = next(iter(self.exited().items()))
                raise StackError(f"{name} exited ({code}) at start:\n{self.log(name)[-3000:]}")
            if _http_ok(f"{self.cfg.api_url}/api/v2/monitor/health") and want <= celery_workers(self.cfg.broker_url):
                return
            time.sleep(1.0)
        raise StackError(f"the stack was not ready within {timeout:.0f} s; logs in {self.cfg.log_dir}")

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        stop_processes({name: p.pid for name, p in self.processes.items()}, grace=grace)
        for process in self.processes.values():
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


def start(cfg: StackConfig, *, migrate_first: bool = True) -> Stack:
    """Migrate the metadata database, then start every component in its own process group."""
    env = stack_env(cfg)
    if migrate_first:
        migrate(env, cfg.log_dir)
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, (argv, component_env) in components(cfg, env).items():
            with (cfg.log_dir / f"{name}.log").open("ab") as log:
                processes[name] = subprocess.Popen(
                    argv,
                    cwd=ROOT,
                    env=component_env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
    except BaseException:
        stop_processes({name: p.pid for name, p in processes.items()})
        raise
    return Stack(cfg, processes)


def celery_workers(broker_url: str) -> set[str]:
    """The names of the Celery workers answering a ping on this broker."""
    from celery import Celery

    app = Celery(broker=broker_url)
    try:
        replies = app.control.inspect(timeout=2.0).ping() or {}
    except Exception:  # the broker not up yet: no worker
        return set()
    finally:
        app.close()
    return set(replies)


def _http_ok(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=3) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def stop_processes(pids: dict[str, int], grace: float = STOP_GRACE_SECONDS) -> list[str]:
    """SIGTERM each leader's process group, wait up to ``grace`` s, then SIGKILL whatever is left
    of the groups and of every descendant seen; returns the names stopped."""
    import psutil

    victims: list[psutil.Process] = []
    stopped = []
    for name, pid in pids.items():
        try:
            leader = psutil.Process(pid)
            victims += [leader, *leader.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        stopped.append(name)
        try:
            os.killpg(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            leader.terminate()
    for process in victims:  # descendants in groups of their own (task processes) did not get it
        try:
            if os.getpgid(process.pid) not in pids.values():
                process.terminate()
        except (ProcessLookupError, psutil.NoSuchProcess):
            pass
    _, alive = psutil.wait_procs(victims, timeout=grace)
    for pid in pids.values():
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    for process in alive:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=10)
    return stopped


def stop_recorded(recorded: dict[str, Any]) -> list[str]:
    """Stop components recorded by ``Stack.pids`` in an earlier process (``make services-down``);
    a pid now used by another process (a different start time) is left alone."""
    import psutil

    pids = {}
    for name, entry in recorded.items():
        try:
            if abs(psutil.Process(int(entry["pid"])).create_time() - float(entry["started"])) < 1.0:
                pids[name] = int(entry["pid"])
        except (psutil.NoSuchProcess, KeyError, TypeError, ValueError):
            continue
    return stop_processes(pids)


def load_or_create_secrets(path: Path) -> dict[str, str]:
    """The stack's keys, kept in ``path`` (0600) so a restart can read what it encrypted."""
    try:
        keys = json.loads(path.read_text())
        if {"jwt_secret", "secret_key", "fernet_key"} <= set(keys):
            return dict(keys)
    except (FileNotFoundError, ValueError):
        pass
    keys = new_secrets()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(keys) + "\n")
    path.chmod(0o600)
    return keys
