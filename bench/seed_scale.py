"""How long the generator takes to load a million customers (the issue: "minutes, not hours").

Creates a scratch database next to GOVERNANCE_DB_URL (default postgresql://postgres@127.0.0.1:5432/postgres),
starts moto's S3 server in a child process, applies the schema, seeds, and prints the wall time and
the rows per table. The scratch database is dropped at the end unless --keep is given.

    .venv/bin/python bench/seed_scale.py                      # 1,000,000 customers, 10,000 objects
    .venv/bin/python bench/seed_scale.py --customers 100000 --max-objects 2000
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import UTC, datetime

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import make_dsn, parse_dsn

from governance.db import apply_schema, connect
from governance.objectstore import iter_keys, make_client
from governance.policy import load_policy
from governance.settings import DB_URL_ENV, resolve
from governance.windows import parse_instant
from governance_dev.loader import seed

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def moto_server():
    """moto's S3 server in a child process on a loopback port; stopped by its own process id."""
    import requests

    env = os.environ.copy()
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        env.pop(name, None)
    env["NO_PROXY"] = "127.0.0.1,localhost"
    port = _free_port()
    log = tempfile.NamedTemporaryFile(prefix="seed-scale-moto-", suffix=".log", delete=False)
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
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


@contextmanager
def scratch_database(server_url: str, keep: bool):
    name = "seed_scale_" + datetime.now(UTC).strftime("%Y%m%d_%H%M%S")
    admin = psycopg2.connect(server_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    admin.close()
    params = parse_dsn(server_url)
    params["dbname"] = name
    try:
        yield make_dsn(**params), name
    finally:
        if not keep:
            admin = psycopg2.connect(server_url)
            admin.autocommit = True
            with admin.cursor() as cur:
                cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            admin.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--max-objects", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--now", default="2026-11-25T12:00:00Z")
    parser.add_argument(
        "--db-url",
        default=os.environ.get(DB_URL_ENV) or DEFAULT_SERVER,
        help="a database on the server to create the scratch database on",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args(argv)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    policy = load_policy()
    now = parse_instant(args.now)

    with moto_server() as s3_url, scratch_database(args.db_url, args.keep) as (url, name):
        s3 = make_client(resolve(None, s3_url))
        conn = connect(url)
        try:
            apply_schema(conn, policy)
            started = time.monotonic()
            report = seed(conn, s3, policy, now, customers=args.customers, seed=args.seed, max_objects=args.max_objects)
            wall = time.monotonic() - started
            with conn.cursor() as cur:
                cur.execute("SELECT pg_size_pretty(pg_database_size(current_database()))")
                size = cur.fetchone()[0]
            conn.rollback()
        finally:
            conn.close()
        in_bucket = sum(1 for _ in iter_keys(s3, policy.object_store.uploads_bucket, "uploads/"))

    total = sum(report.rows.values())
    print(f"seeded {args.customers:,} customers (seed {args.seed}, now {now.isoformat()}) into {name}")
    print(f"cores: {os.cpu_count()}; database size after load: {size}")
    print(report.summary())
    print(f"  objects listed in the bucket: {in_bucket:,} (upload rows: {report.rows['shop.uploads']:,})")
    print(f"wall time: {wall:.1f} s ({wall / 60:.1f} min); {total:,} rows, {total / wall:,.0f} rows/s")
    return 0 if in_bucket == report.rows["shop.uploads"] else 1


if __name__ == "__main__":
    sys.exit(main())
