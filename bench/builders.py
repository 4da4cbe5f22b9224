"""Data builders: large, realistic tables made in SQL with generate_series (fast), and S3 objects.

Every builder is deterministic for a given size and ``now``: the contenders of a measurement get
byte-for-byte the same rows, and each copy starts settled (VACUUM ANALYZE), so no contender pays
for another's hint bits or statistics.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from harness import Context, settle

# --- RET-1: visits ---------------------------------------------------------------------------

VISIT_SPAN = timedelta(hours=48)  # rows spread evenly over [now - 48 h, now): with PT24H, half expired

VISIT_ROWS_SQL = """
INSERT INTO {table} (visit_id, session_key, ip_address, country, region, language, basket, started_at, last_activity_at)
SELECT g,
       md5(g::text)::uuid,
       '10.0.0.0'::inet + (g %% 16777216),
       'NO',
       (ARRAY['Oslo', 'Viken', 'Vestland', 'Trøndelag', 'Rogaland'])[1 + g %% 5],
       (ARRAY['nb', 'nn', 'en'])[1 + g %% 3],
       CASE WHEN g %% 4 = 0 THEN '[{{"product": "print", "quantity": 2}}]'::jsonb ELSE '[]'::jsonb END,
       t.at - interval '7 minutes',
       t.at
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g
CROSS JOIN LATERAL (SELECT %(t0)s::timestamptz + make_interval(secs => (g - 1) * %(step)s::float8) AS at) AS t
"""


def visit_cutoff(now: datetime) -> datetime:
    """The last instant whose visits have expired at ``now`` (RET-1: last activity + 24 hours)."""
    return now - timedelta(hours=24)


def expired_visits(conn, table: str, now: datetime) -> int:
    """How many rows of ``table`` have expired at ``now`` (RET-1), counted by PostgreSQL itself:
    the clocks are computed there (float seconds rounded to microseconds), so Python must not guess."""
    with conn.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {table} WHERE last_activity_at <= %s", (visit_cutoff(now),))
        count = cur.fetchone()[0]
    conn.commit()
    return count


def load_visits(conn, table: str, rows: int, now: datetime, chunk: int = 1_000_000) -> None:
    """Insert ``rows`` visits into ``table`` (partitioned or not), in clock order, in chunks."""
    step = VISIT_SPAN.total_seconds() / rows
    t0 = now - VISIT_SPAN
    with conn.cursor() as cur:
        for first in range(1, rows + 1, chunk):
            last = min(rows, first + chunk - 1)
            cur.execute(VISIT_ROWS_SQL.format(table=table), {"first": first, "last": last, "t0": t0, "step": step})
            conn.commit()


def build_visits(
    ctx: Context, conn, rows: int, *, flat_copies: tuple[str, ...] = (), partitioned_copies: tuple[str, ...] = ()
) -> dict:
    """shop.visits (hourly partitions, like production) plus unpartitioned and partitioned copies in
    schema bench (a partitioned copy's partitions are bench.<copy>_pYYYYMMDDHH)."""
    # Steady state: the partitions an hourly sweep keeps ahead (engine default 48 h) exist already.
    span = (ctx.now - VISIT_SPAN - timedelta(hours=1), ctx.now + timedelta(hours=49))
    with conn.cursor() as cur:
        cur.execute("CREATE SCHEMA IF NOT EXISTS bench")
        cur.execute("SELECT governance.ensure_hourly_partitions('shop.visits', %s, %s)", span)
        partitions = cur.fetchone()[0]
        for copy in flat_copies:
            cur.execute(f"DROP TABLE IF EXISTS bench.{copy}")
            # Same columns, defaults, constraints and indexes (the primary key) as shop.visits.
            cur.execute(f"CREATE TABLE bench.{copy} (LIKE shop.visits INCLUDING ALL)")
        for copy in partitioned_copies:
            cur.execute(f"DROP TABLE IF EXISTS bench.{copy}")
            cur.execute(
                f"CREATE TABLE bench.{copy} (LIKE shop.visits INCLUDING ALL) PARTITION BY RANGE (last_activity_at)"
            )
            cur.execute(f"SELECT governance.ensure_hourly_partitions('bench.{copy}', %s, %s)", span)
    conn.commit()
    copies = (*flat_copies, *partitioned_copies)
    load_visits(conn, "shop.visits", rows, ctx.now)
    for copy in copies:
        load_visits(conn, f"bench.{copy}", rows, ctx.now)
    settle(conn, "shop.visits", *(f"bench.{c}" for c in copies))
    expired = expired_visits(conn, "shop.visits", ctx.now)
    for copy in copies:
        if expired_visits(conn, f"bench.{copy}", ctx.now) != expired:
            raise RuntimeError(f"bench.{copy} is not a copy of shop.visits")
    return {"rows": rows, "expired": expired, "partitions": partitions}


# --- RET-3 / RET-8: orders -------------------------------------------------------------------

ORDERS_PER_CUSTOMER = 4
GUEST_SHARE = 5  # one customer in five orders without an account

ACCOUNTS_SQL = """
INSERT INTO shop.accounts (account_id, email, password_hash, first_name, last_name, created_at)
SELECT c, 'customer' || c || '@example.com', md5(c::text), 'First' || c, 'Last' || c,
       %(now)s::timestamptz - interval '6 years'
FROM generate_series(1, %(accounts)s::bigint) AS c
WHERE c %% %(guest_share)s <> 0
"""

# Customer c (1..customers) places orders k = 0..3; k = 0 is the most recent. Odd customers are due
# (their last order is more than 2 years old), even ones are not, although their older orders are:
# the clock is per customer (RET-10), so those must stay. Every fifth customer orders as a guest,
# with the address in varying case and spacing (the customer is the trimmed, lower-cased address).
ORDERS_SQL = """
INSERT INTO {table} (order_id, account_id, email, first_name, last_name, phone, delivery_street,
                     delivery_postal_code, delivery_city, delivery_country, billing_street,
                     billing_postal_code, billing_city, payment_method, card_last4, payment_reference,
                     total_amount, currency, placed_at)
SELECT g,
       CASE WHEN c %% %(guest_share)s = 0 THEN NULL ELSE c END,
       CASE WHEN c %% %(guest_share)s = 0 AND k = 1 THEN ' Customer' || c || '@Example.com'
            ELSE 'customer' || c || '@example.com' END,
       'First' || c, 'Last' || c, '+47 4' || lpad((c %% 10000000)::text, 7, '0'),
       'Storgata ' || (c %% 200), lpad((c %% 10000)::text, 4, '0'), 'Oslo', 'NO',
       'Storgata ' || (c %% 200), lpad((c %% 10000)::text, 4, '0'), 'Oslo',
       'card', lpad((c %% 10000)::text, 4, '0'), 'pay_' || md5(g::text),
       (99 + (g %% 900))::numeric(12, 2), 'NOK',
       CASE WHEN c %% 2 = 1
            THEN %(now)s::timestamptz - interval '2 years 10 days' - make_interval(days => (k * 90 + c %% 300)::int)
            ELSE %(now)s::timestamptz - make_interval(days => (c %% 600 + k * 120)::int)
       END
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g
CROSS JOIN LATERAL (SELECT (g - 1) / {per} + 1 AS c, (g - 1) %% {per} AS k) AS ck
"""


def due_orders(rows: int) -> int:
    """Orders of odd customers (the due ones), counted exactly, the last customer possibly partial."""
    customers = -(-rows // ORDERS_PER_CUSTOMER)
    return sum(min(ORDERS_PER_CUSTOMER, rows - (c - 1) * ORDERS_PER_CUSTOMER) for c in range(1, customers + 1, 2))


def load_orders(conn, table: str, rows: int, now: datetime, chunk: int = 500_000) -> None:
    with conn.cursor() as cur:
        for first in range(1, rows + 1, chunk):
            last = min(rows, first + chunk - 1)
            cur.execute(
                ORDERS_SQL.format(table=table, per=ORDERS_PER_CUSTOMER),
                {"first": first, "last": last, "now": now, "guest_share": GUEST_SHARE},
            )
            conn.commit()


def build_orders(ctx: Context, conn, rows: int, *, copies: tuple[str, ...] = ()) -> dict:
    """shop.orders (with its accounts) plus copies in schema bench with the same indexes."""
    customers = -(-rows // ORDERS_PER_CUSTOMER)
    with conn.cursor() as cur:
        cur.execute("CREATE SCHEMA IF NOT EXISTS bench")
        cur.execute(ACCOUNTS_SQL, {"now": ctx.now, "accounts": customers, "guest_share": GUEST_SHARE})
        for copy in copies:
            cur.execute(f"DROP TABLE IF EXISTS bench.{copy}")
            cur.execute(f"CREATE TABLE bench.{copy} (LIKE shop.orders INCLUDING ALL)")
    conn.commit()
    load_orders(conn, "shop.orders", rows, ctx.now)
    for copy in copies:
        load_orders(conn, f"bench.{copy}", rows, ctx.now)
    with conn.cursor() as cur:
        cur.execute("SELECT setval('shop.orders_order_id_seq', %s)", (rows,))
        cur.execute("SELECT setval('shop.accounts_account_id_seq', %s)", (customers,))
    conn.commit()
    settle(conn, "shop.accounts", "shop.orders", *(f"bench.{c}" for c in copies))
    return {"rows": rows, "due": due_orders(rows), "customers": customers}


# --- CAT-5: uploads and their objects --------------------------------------------------------

UPLOADS_SQL = """
INSERT INTO shop.uploads (upload_id, account_id, kind, bucket, object_key, byte_size, uploaded_at)
SELECT g, NULL, 'photo', %(bucket)s, %(prefix)s || 'guest/' || lpad(g::text, 9, '0') || '.jpg', 64,
       %(now)s::timestamptz - interval '100 days' - make_interval(secs => g)
FROM generate_series(1, %(rows)s::bigint) AS g
"""

OBJECT_BODY = b"\xff\xd8\xff\xe0" + b"0" * 60  # 64 bytes: the size does not change a DeleteObjects call


def object_keys(prefix: str, count: int) -> list[str]:
    return [f"{prefix}guest/{g:09d}.jpg" for g in range(1, count + 1)]


def put_objects(s3, bucket: str, keys: list[str], threads: int = 8) -> None:
    """Upload small objects in parallel (set-up only; not timed)."""
    from governance.objectstore import ensure_bucket

    ensure_bucket(s3, bucket)

    def put(key: str) -> None:
        s3.put_object(Bucket=bucket, Key=key, Body=OBJECT_BODY)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(put, keys))


def build_uploads(ctx: Context, conn, s3, objects: int) -> dict:
    """``objects`` guest uploads 100 days old (RET-5c expired, 90 days) with their objects in the bucket."""
    store = ctx.policy.store("shop.uploads")
    bucket = ctx.policy.object_store.uploads_bucket
    prefix = store.objects.prefix if store.objects else "uploads/"
    with conn.cursor() as cur:
        cur.execute(UPLOADS_SQL, {"bucket": bucket, "prefix": prefix, "now": ctx.now, "rows": objects})
        cur.execute("SELECT setval('shop.uploads_upload_id_seq', %s)", (objects,))
    conn.commit()
    settle(conn, "shop.uploads")
    put_objects(s3, bucket, object_keys(prefix, objects))
    return {"objects": objects, "bucket": bucket, "prefix": prefix}
