"""TP-5 for RET-3/RET-8: what telling the recipients of retention ends costs the orders sweep.

Standalone (not part of ``run.py``): ``python bench/retention_notices.py [--orders N] [--rounds R]``.
A scratch database on the local server (``GOVERNANCE_DB_URL`` or 127.0.0.1:5432) holds N orders of
N/4 guest customers, four each; odd customers are due (half the orders). The ``order-records``
sweep runs on identical data, reloaded each time, with the shop's policy (the carrier and the
financial partner told: pre-read, post-check and one notice per recipient and batch in each batch's
transaction) and with nobody told, alternating, R rounds; the best of each is compared.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2
from psycopg2 import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))

from orders import without_retention_notices  # noqa: E402

from governance.db import apply_schema, connect  # noqa: E402
from governance.policy import load_policy  # noqa: E402
from governance.sweep import sweep_rule  # noqa: E402

NOW = datetime(2026, 11, 2, 12, tzinfo=UTC)
LOAD = (
    "INSERT INTO shop.orders (email, first_name, last_name, delivery_street, total_amount, placed_at) "
    "SELECT 'c' || (i / 4) || '@example.invalid', 'Kari', 'Nordmann', 'Storgata 1', 10, "
    "CASE WHEN mod(i / 4, 2) = 1 THEN %(due)s ELSE %(kept)s END FROM generate_series(0, %(n)s - 1) i"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("GOVERNANCE_RECIPIENT_PSEUDONYM_KEY", "bench-recipient-pseudonym-key-0123456789abcdef")
    admin_url = os.environ.get("GOVERNANCE_DB_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    told = load_policy()
    policies = {"told": told, "nobody": without_retention_notices(told)}
    name = f"gov_bench_notices_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(admin_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    params = psycopg2.extensions.parse_dsn(admin_url)
    conn = connect(psycopg2.extensions.make_dsn(**{**params, "dbname": name}))
    try:
        apply_schema(conn, told)
        best: dict[str, float] = {}
        for round_ in range(args.rounds):
            for label, policy in policies.items():
                with conn.cursor() as cur:
                    cur.execute("TRUNCATE shop.orders CASCADE; DELETE FROM governance.recipient_outbox")
                    cur.execute(
                        LOAD, {"due": NOW - timedelta(days=1100), "kept": NOW - timedelta(days=30), "n": args.orders}
                    )
                    cur.execute("ANALYZE shop.orders")
                conn.commit()
                start = time.perf_counter()
                result = sweep_rule(conn, None, policy, "order-records", NOW, f"bench-{label}-{round_}")
                seconds = time.perf_counter() - start
                best[label] = min(best.get(label, seconds), seconds)
                with conn.cursor() as cur:
                    cur.execute(
                        "SELECT count(*), coalesce(sum(cardinality(order_ids)), 0) FROM governance.recipient_outbox"
                    )
                    notices, named = cur.fetchone()
                conn.commit()
                print(f"{label:7} round {round_}: {result.anonymised:,} anonymised in {result.batches} batches, "
                      f"{notices} notices naming {named:,} orders, {seconds:.2f} s", flush=True)  # fmt: skip
        print(f"best: told {best['told']:.2f} s, nobody {best['nobody']:.2f} s: {best['told'] / best['nobody']:.2f}x")
    finally:
        conn.close()
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
