"""How long the generator takes to load a million customers (the issue: "minutes, not hours").

Creates a scratch database next to GOVERNANCE_DB_URL (default postgresql://postgres@127.0.0.1:5432/postgres),
starts the bench's moto S3 server in a child process (both from bench/services.py), applies the
schema, seeds, and prints the wall time and the rows per table. The scratch database is dropped at the end unless --keep is given.

    .venv/bin/python bench/seed_scale.py                      # 1,000,000 customers, 10,000 objects
    .venv/bin/python bench/seed_scale.py --customers 100000 --max-objects 2000
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import services

from governance.db import apply_schema, connect
from governance.objectstore import iter_keys, make_client
from governance.policy import load_policy
from governance.settings import DB_URL_ENV, resolve
from governance.windows import parse_instant
from governance_dev.loader import seed

DEFAULT_SERVER = services.LOCAL_URL


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

    with (
        services.moto_server() as s3_url,
        services.scratch_database(args.db_url, "seed_scale", args.keep) as (url, name),
    ):
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
