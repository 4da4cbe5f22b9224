"""Data builders: large, realistic tables made in SQL with generate_series (fast), and S3 objects.

Every builder is deterministic for a given size and ``now``. A data set is generated once; the
copies its contenders need are copied from it in physical order, so they get byte-for-byte the
same rows in the same places (checked). Each table starts settled (VACUUM ANALYZE), so no
contender pays for another's hint bits or statistics. Objects are loaded through the bench S3
server's bulk route (services.load_objects), not one HTTP PUT each.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from harness import Context
from services import load_objects

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


VISITS_KEY = "visit_id, last_activity_at"  # shop.visits' primary key (include/sql/schema/010_shop.sql)
VISITS_INDEXES = "SELECT count(*) FROM pg_index WHERE indrelid = 'shop.visits'::regclass"


def build_visits(
    ctx: Context, conn, rows: int, *, flat_copies: tuple[str, ...] = (), partitioned_copies: tuple[str, ...] = ()
) -> dict:
    """shop.visits (hourly partitions, like production) plus unpartitioned and partitioned copies in
    schema bench (a partitioned copy's partitions are bench.<copy>_pYYYYMMDDHH).

    The generator fills shop.visits once; each copy is then a copy of its rows (copy_rows), which
    costs less than generating them again and gives the same rows in the same order."""
    # Steady state: the partitions an hourly sweep keeps ahead (engine default 48 h) exist already.
    span = (ctx.now - VISIT_SPAN - timedelta(hours=1), ctx.now + timedelta(hours=49))
    with conn.cursor() as cur:
        cur.execute("CREATE SCHEMA IF NOT EXISTS bench")
        cur.execute("SELECT governance.ensure_hourly_partitions('shop.visits', %s, %s)", span)
        partitions = cur.fetchone()[0]
        cur.execute(VISITS_INDEXES)
        if cur.fetchone()[0] != 1:
            raise RuntimeError("shop.visits has other indexes than its primary key; build_visits copies only that")
        for copy in flat_copies:
            cur.execute(f"DROP TABLE IF EXISTS bench.{copy}")
            # Same columns, defaults and constraints as shop.visits; its one index, the primary key,
            # is built after the rows are in (copy_rows).
            cur.execute(f"CREATE TABLE bench.{copy} (LIKE shop.visits INCLUDING ALL EXCLUDING INDEXES)")
        for copy in partitioned_copies:
            cur.execute(f"DROP TABLE IF EXISTS bench.{copy}")
            cur.execute(
                f"CREATE TABLE bench.{copy} (LIKE shop.visits INCLUDING ALL EXCLUDING INDEXES) "
                "PARTITION BY RANGE (last_activity_at)"
            )
            cur.execute(f"SELECT governance.ensure_hourly_partitions('bench.{copy}', %s, %s)", span)
    conn.commit()
    flat = [f"bench.{c}" for c in flat_copies]
    parted = ["shop.visits", *(f"bench.{c}" for c in partitioned_copies)]
    with ctx.setup_phase("visits: generate"):
        load_visits(conn, "shop.visits", rows, ctx.now)
    with ctx.setup_phase("visits: copy"):
        copy_rows(ctx, "shop.visits", [*flat, *parted[1:]], primary_key=VISITS_KEY)
    with ctx.setup_phase("visits: settle"):
        settle_tables(ctx, [*parted, *flat])
    with ctx.setup_phase("visits: verify copies"):
        expired = expired_visits(conn, "shop.visits", ctx.now)
        for table in [*flat, *parted[1:]]:
            if expired_visits(conn, table, ctx.now) != expired:
                raise RuntimeError(f"{table} is not a copy of shop.visits")
        same_layout(conn, flat, parted, rows)
    return {"rows": rows, "expired": expired, "partitions": partitions}


def copy_rows(ctx: Context, source: str, targets: list[str], primary_key: str | None = None) -> None:
    """``INSERT INTO target SELECT * FROM source`` for every target, each on a connection of its own,
    up to ``ctx.cores`` at a time. A target gets the source's rows in the order of its sequential
    scan (a partitioned source: partition by partition, in bound order), with synchronized scans
    off, so no copy starts reading mid-table where a concurrent one happens to be.

    With ``primary_key`` (the column list), the targets have no index yet and the key is added
    once the rows are in: one sorted build costs about half of maintaining the index row by row,
    and gives an index of the same size (both fill leaf pages to 90 %)."""

    def copy(target: str) -> None:
        own = ctx.connect("governance-bench-setup")
        try:
            with own.cursor() as cur:
                cur.execute("SET LOCAL synchronize_seqscans = off")
                cur.execute(f"INSERT INTO {target} SELECT * FROM {source}")
                if primary_key:
                    cur.execute(f"ALTER TABLE {target} ADD PRIMARY KEY ({primary_key})")
            own.commit()
        finally:
            own.close()

    if targets:
        with ThreadPoolExecutor(max_workers=max(1, min(ctx.cores, len(targets)))) as pool:
            list(pool.map(copy, targets))


def settle_tables(ctx: Context, tables: list[str]) -> None:
    """``VACUUM (ANALYZE)`` each table, on a connection of its own, up to ``ctx.cores`` at a time.
    Call it only once every load has committed: a write still running in the database would hold
    back the horizon, and VACUUM could not mark the pages all-visible. No CHECKPOINT here (it is
    server-wide, and costly on a busy server): the caller takes one after the whole set-up, before
    anything is timed (run.prepare_data, memory)."""

    def vacuum(table: str) -> None:
        own = ctx.connect("governance-bench-setup")
        try:
            own.autocommit = True
            with own.cursor() as cur:
                cur.execute(f"VACUUM (ANALYZE) {table}")
        finally:
            own.close()

    with ThreadPoolExecutor(max_workers=max(1, min(ctx.cores, len(tables)))) as pool:
        list(pool.map(vacuum, tables))


LAYOUT_SAMPLE = 1_000


def same_layout(conn, flat: list[str], partitioned: list[str], rows: int) -> None:
    """Check, on ``LAYOUT_SAMPLE`` visits spread over the table, that the copies hold each row at the
    same place: the same ctid in every unpartitioned table (and ctids rising with visit_id, the
    generator's order), the same partition and ctid in every partitioned one; and that the primary
    keys of the partitioned ones take the same space (within 1 %)."""
    ids = list(range(1, rows + 1, max(1, rows // LAYOUT_SAMPLE)))

    def places(table: str, partition: bool) -> list[tuple]:
        where = "right(tableoid::regclass::text, 10), " if partition else ""
        with conn.cursor() as cur:
            cur.execute(f"SELECT {where}ctid::text FROM {table} WHERE visit_id = ANY(%s) ORDER BY visit_id", (ids,))
            found = cur.fetchall()
        conn.commit()
        return found

    for tables, partition in ((flat, False), (partitioned, True)):
        layouts = [places(t, partition) for t in tables]
        if any(layout != layouts[0] for layout in layouts[1:]):
            raise RuntimeError(f"the copies {', '.join(tables)} do not hold their rows in the same places")
    if flat:
        blocks = [tuple(int(n) for n in ctid.strip("()").split(",")) for (ctid,) in places(flat[0], False)]
        if blocks != sorted(blocks):
            raise RuntimeError(f"{flat[0]} does not hold its rows in the generator's order")
    # The copies' keys are built by one sort (copy_rows), shop.visits' row by row: with keys that
    # only rise, both fill leaf pages to 90 %. Checked on the partitioned ones, where the key is
    # built both ways: the same pages, give or take a page at a partition's edge.
    with conn.cursor() as cur:
        sizes = []
        for table in partitioned:
            cur.execute(
                "SELECT sum(pg_relation_size(relid)) FROM pg_partition_tree("
                "(SELECT indexrelid FROM pg_index WHERE indrelid = %s::regclass AND indisprimary))",
                (table,),
            )
            sizes.append(int(cur.fetchone()[0]))
    conn.commit()
    if max(sizes, default=0) > 1.01 * min(sizes, default=0):
        raise RuntimeError(f"the primary keys of {', '.join(partitioned)} differ in size by > 1 %: {sizes} bytes")


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
    """shop.orders (with its accounts) plus copies in schema bench with the same indexes; the generator
    fills shop.orders once, each copy is a copy of its rows (copy_rows)."""
    customers = -(-rows // ORDERS_PER_CUSTOMER)
    with conn.cursor() as cur:
        cur.execute("CREATE SCHEMA IF NOT EXISTS bench")
        cur.execute(ACCOUNTS_SQL, {"now": ctx.now, "accounts": customers, "guest_share": GUEST_SHARE})
        for copy in copies:
            cur.execute(f"DROP TABLE IF EXISTS bench.{copy}")
            cur.execute(f"CREATE TABLE bench.{copy} (LIKE shop.orders INCLUDING ALL)")
    conn.commit()
    with ctx.setup_phase("orders: generate"):
        load_orders(conn, "shop.orders", rows, ctx.now)
    with ctx.setup_phase("orders: copy"):
        copy_rows(ctx, "shop.orders", [f"bench.{c}" for c in copies])
    with conn.cursor() as cur:
        cur.execute("SELECT setval('shop.orders_order_id_seq', %s)", (rows,))
        cur.execute("SELECT setval('shop.accounts_account_id_seq', %s)", (customers,))
    conn.commit()
    with ctx.setup_phase("orders: settle"):
        settle_tables(ctx, ["shop.accounts", "shop.orders", *(f"bench.{c}" for c in copies)])
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


def put_objects(s3, bucket: str, keys: list[str]) -> None:
    """Set-up only (not timed): make the bucket over HTTP as the library does, then load the objects
    through the bench S3 server's bulk route, straight into moto's backend (services.load_objects)."""
    from governance.objectstore import ensure_bucket

    ensure_bucket(s3, bucket)
    load_objects(s3.meta.endpoint_url, bucket, keys, OBJECT_BODY)


def build_uploads(ctx: Context, conn, s3, objects: int) -> dict:
    """``objects`` guest uploads 100 days old (RET-5c expired, 90 days) with their objects in the bucket."""
    store = ctx.policy.store("shop.uploads")
    bucket = ctx.policy.object_store.uploads_bucket
    prefix = store.objects.prefix if store.objects else "uploads/"
    with conn.cursor() as cur:
        cur.execute(UPLOADS_SQL, {"bucket": bucket, "prefix": prefix, "now": ctx.now, "rows": objects})
        cur.execute("SELECT setval('shop.uploads_upload_id_seq', %s)", (objects,))
    conn.commit()
    settle_tables(ctx, ["shop.uploads"])
    with ctx.setup_phase("objects: load"):
        put_objects(s3, bucket, object_keys(prefix, objects))
        # the data map's other buckets (the request exports, RET-9): the audit lists every one, empty here
        from governance_dev.loader import ensure_store_buckets

        ensure_store_buckets(s3, ctx.policy)
    return {"objects": objects, "bucket": bucket, "prefix": prefix}
