"""The services a benchmark run needs: a PostgreSQL server with a scratch database, and an S3 endpoint.

PostgreSQL: GOVERNANCE_DB_URL (any database on the server; the run creates ``bench_<timestamp>``
next to it), else postgresql://postgres@127.0.0.1:5432/postgres if it answers, else an embedded
pgserver. The scratch database is dropped at the end of the run, whatever happens.

S3: moto's server in a child process on a loopback port (real HTTP, real boto3 requests), stopped
at the end by its process id. The child is bench/s3_server.py: moto's own WSGI application as
``python -m moto.server`` serves it, plus one set-up route that loads many objects at once
(``load_objects``); nothing timed goes through that route.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import make_dsn, parse_dsn

LOCAL_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
S3_SERVER = Path(__file__).resolve().parent / "s3_server.py"


def with_database(url: str, name: str) -> str:
    params = parse_dsn(url)
    params["dbname"] = name
    return make_dsn(**params)


def _answers(url: str) -> bool:
    try:
        psycopg2.connect(url, connect_timeout=3).close()
        return True
    except psycopg2.OperationalError:
        return False


@contextmanager
def postgres_server():
    """Yield (admin_url, description) of a PostgreSQL server we may create databases on."""
    url = os.environ.get("GOVERNANCE_DB_URL")
    if url:
        yield url, "GOVERNANCE_DB_URL"
        return
    if _answers(LOCAL_URL):
        yield LOCAL_URL, "local server on 127.0.0.1:5432"
        return
    import pgserver

    data_dir = Path(tempfile.mkdtemp(prefix="governance-bench-pg-"))
    server = pgserver.get_server(data_dir, cleanup_mode="delete")
    try:
        yield server.get_uri(), f"embedded pgserver in {data_dir}"
    finally:
        server.cleanup()


def admin(url: str):
    conn = psycopg2.connect(url)
    conn.autocommit = True
    return conn


@contextmanager
def scratch_database(admin_url: str, suffix: str = "", keep: bool = False):
    """A fresh database ``bench_<UTC timestamp>[_suffix]``; dropped (WITH FORCE) on the way out unless ``keep``."""
    name = "bench_" + datetime.now(UTC).strftime("%Y%m%d_%H%M%S") + (f"_{suffix}" if suffix else "")
    conn = admin(admin_url)
    with conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    conn.close()
    try:
        yield with_database(admin_url, name), name
    finally:
        if keep:
            print(f"kept scratch database {name}; drop it with DROP DATABASE {name} WITH (FORCE)", file=sys.stderr)
        else:
            drop_database(admin_url, name)


def clone_database(admin_url: str, template: str, name: str) -> str:
    """A copy of a database made by PostgreSQL's file-level TEMPLATE copy (no other session may be on it):
    ``STRATEGY FILE_COPY`` (a checkpoint, then the files copied), not the WAL-logged copy of every block."""
    conn = admin(admin_url)
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
    conn.close()
    return with_database(admin_url, name)


def drop_database(admin_url: str, name: str) -> None:
    conn = admin(admin_url)
    with conn.cursor() as cur:
        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    conn.close()


def server_facts(url: str) -> dict:
    conn = psycopg2.connect(url)
    with conn.cursor() as cur:
        cur.execute("SHOW server_version")
        version = cur.fetchone()[0]
        cur.execute(
            "SELECT name, current_setting(name) FROM pg_settings WHERE name IN "
            "('shared_buffers', 'work_mem', 'maintenance_work_mem', 'max_wal_size', 'synchronous_commit', "
            "'autovacuum', 'max_parallel_workers_per_gather') ORDER BY name"
        )
        settings = dict(cur.fetchall())
    conn.close()
    return {"server_version": version, "settings": settings}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proxy_free_env() -> dict:
    env = os.environ.copy()
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        env.pop(name, None)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


@contextmanager
def moto_server():
    """moto's S3-compatible server (bench/s3_server.py) on a free loopback port; yields its URL."""
    import requests

    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="governance-bench-moto-", suffix=".log", delete=False)
    proc = subprocess.Popen(
        [sys.executable, str(S3_SERVER), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=proxy_free_env(),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"{url}/moto-api/", timeout=2)
                break
            except requests.RequestException:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not start on {url}; see {log.name}") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        os.unlink(log.name)


def reset_moto(url: str) -> None:
    import requests

    requests.post(f"{url}/moto-api/reset", timeout=30).raise_for_status()


def load_objects(
    url: str, bucket: str, keys: list[str], body: bytes, per_request: int = 50_000, content_type: str | None = None
) -> None:
    """Set-up only: put ``keys`` (each holding ``body``, with ``content_type`` if given) into ``bucket``
    (which must exist) through the server's bulk route, which writes straight into moto's backend
    (bench/s3_server.py)."""
    import base64

    import requests

    encoded = base64.b64encode(body).decode()
    for first in range(0, len(keys), per_request):
        chunk = keys[first : first + per_request]
        answer = requests.post(
            f"{url}/bench-api/put-objects",
            json={"bucket": bucket, "keys": chunk, "body": encoded, "content_type": content_type},
            timeout=600,
        )
        answer.raise_for_status()
        if answer.json().get("put") != len(chunk):
            raise RuntimeError(f"bulk load into {bucket} put {answer.json()} of {len(chunk)} objects")
