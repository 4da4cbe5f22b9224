"""Loading the synthetic shop: COPY into PostgreSQL, objects into S3, and the ``SeedReport``.

``seed(conn, s3, policy, now, customers=N, seed=S)`` checks the guard (``guard``), empties the shop,
its legal holds, its requests and the uploads and exports prefixes, then loads what the generator
yields. Rows go in with COPY chunk by chunk while a producer thread generates the next chunk;
objects are written by a thread pool; sequences are moved past the generated ids. The rows are one
transaction on ``conn`` (committed on success, rolled back on failure). Every ``shop.uploads`` row
has its object under the store's prefix (CAT-5) and nothing else is there except ``orphan_objects``
deliberate orphans; every ``governance.request_exports`` row has its archive under the exports
prefix (RET-9); ``objects=False`` writes neither uploads, exports nor objects and never touches S3.
"""

from __future__ import annotations

import io
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import psycopg2.errors
from psycopg2 import sql
from psycopg2.extensions import connection, cursor

from governance.objectstore import ensure_bucket, iter_keys
from governance.policy import Policy
from governance.windows import as_utc
from governance_dev import guard, reference
from governance_dev.generator import Generator
from governance_dev.requests import export_payload, exports_location
from governance_dev.rows import Batch
from governance_dev.scenarios import HoldSpec
from governance_dev.tables import COLUMNS, HOLDS_TABLE, ID_COLUMNS, REQUEST_TABLES
from governance_dev.vocabulary import jpeg_payload, text_payload

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

SNAPSHOT_LIMIT = 20_000  # above this the snapshot is kept only when asked (memory)
PUT_THREADS = 16
SEED_ACTOR = "seed"


@dataclass
class SeedReport:
    """What ``seed`` loaded. ``objects`` counts every object written to the bucket, orphans included."""

    rows: dict[str, int]
    objects: int
    seconds: float
    expected_overdue: dict[str, int] | None = None
    expected_oldest_overdue_seconds: dict[str, int] | None = None
    snapshot: reference.Snapshot | None = None
    orphan_objects: int = 0
    bucket: str = ""
    export_objects: int = 0  # export archives written to the exports bucket (ACC-1, POR-1)
    exports_bucket: str = ""

    def summary(self) -> str:
        """A short human summary: counts and time only, never personal data."""
        width = max(len(t) for t in self.rows)
        lines = [f"  {table:<{width}}  {count:>12,}" for table, count in self.rows.items()]
        lines.append(
            f"  {'objects in ' + self.bucket:<{width}}  {self.objects:>12,}"
            + (f"  ({self.orphan_objects} without a row)" if self.orphan_objects else "")
        )
        if self.exports_bucket:
            lines.append(f"  {'objects in ' + self.exports_bucket:<{width}}  {self.export_objects:>12,}")
        lines.append(f"  seeded in {self.seconds:.1f} s")
        if self.expected_overdue is not None:
            lines.append(
                "  overdue per the reference: "
                + ", ".join(f"{rule}={count}" for rule, count in self.expected_overdue.items())
            )
        return "\n".join(lines)


class _Objects:
    """Writes objects from a thread pool; ``written`` counts what was submitted to the uploads
    bucket, ``exports_written`` to the exports bucket."""

    def __init__(self, s3: S3Client, bucket: str, seed: int, exports_bucket: str | None = None):
        self.s3, self.bucket, self.seed, self.exports_bucket = s3, bucket, seed, exports_bucket
        self.pool = ThreadPoolExecutor(max_workers=PUT_THREADS, thread_name_prefix="seed-put")
        self.futures: list[Future[Any]] = []
        self.written = 0
        self.exports_written = 0

    def put(self, key: str, upload_id: int, kind: str) -> None:
        self.futures.append(self.pool.submit(self._put, key, upload_id, kind))
        self.written += 1

    def put_export(self, key: str, export_id: int) -> None:
        """An export archive (ACC-1, POR-1), server-side encrypted as the exports are."""
        if self.exports_bucket is None:
            raise ValueError("the generator wrote an export archive, but the seed has no exports bucket")
        body = export_payload(export_id, self.seed)
        self.futures.append(
            self.pool.submit(
                self.s3.put_object,
                Bucket=self.exports_bucket,
                Key=key,
                Body=body,
                ContentType="application/zip",
                ServerSideEncryption="AES256",
            )
        )
        self.exports_written += 1

    def _put(self, key: str, upload_id: int, kind: str) -> None:
        if kind == "photo":
            body, content_type = jpeg_payload(upload_id, self.seed), "image/jpeg"
        else:
            body, content_type = text_payload(upload_id, self.seed), "text/plain; charset=utf-8"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)

    def wait(self) -> None:
        for future in self.futures:
            future.result()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _shop_tables(cur: cursor) -> list[str]:
    cur.execute("""
        SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'shop' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
        ORDER BY c.relname""")
    return [name for (name,) in cur.fetchall()]


def _copy(cur: cursor, table: str, lines: list[str]) -> None:
    if not lines:
        return
    schema, name = table.split(".")
    data = io.BytesIO(("\n".join(lines) + "\n").encode("utf-8"))
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(schema, name), sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS[table])
    )
    cur.copy_expert(statement.as_string(cur), data, size=1 << 20)


def _empty_prefix(s3: S3Client, bucket: str, prefix: str) -> None:
    keys = list(iter_keys(s3, bucket, prefix))
    for start in range(0, len(keys), 1000):
        s3.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[start : start + 1000]], "Quiet": True}
        )


def _produce(gen: Generator, out: queue.Queue[Any], stop: threading.Event) -> None:
    """The producer thread: generate chunks ahead of the COPYs; gives up when the consumer stops."""

    def hand_over(item: Any) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    try:
        for batch in gen.batches():
            if not hand_over(batch):
                return
        hand_over(None)
    except BaseException as exc:  # handed to the consumer, which re-raises it
        hand_over(exc)


def _empty_shop(cur: cursor, tables: list[str], now: datetime) -> bool:
    """Empty the shop, its holds and its requests, make the visits' partitions; True when FK
    triggers are off."""
    cur.execute("SET LOCAL synchronous_commit = off")
    cur.execute(
        sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(
            sql.SQL(", ").join(
                [sql.Identifier("shop", t) for t in tables]
                + [sql.Identifier(*t.split(".", 1)) for t in (HOLDS_TABLE, *REQUEST_TABLES)]
            )
        )
    )
    cur.execute(
        "SELECT governance.ensure_hourly_partitions('shop.visits'::regclass, %s, %s)",
        (now - timedelta(days=4), now + timedelta(days=2)),
    )
    # Foreign keys are satisfied by construction; skipping their per-row triggers during the
    # bulk load needs superuser, so it is tried and quietly not done otherwise.
    cur.execute("SAVEPOINT seed_replica")
    try:
        cur.execute("SET LOCAL session_replication_role = replica")
        cur.execute("RELEASE SAVEPOINT seed_replica")
        return True
    except psycopg2.errors.InsufficientPrivilege:  # not a superuser: load with the triggers
        cur.execute("ROLLBACK TO SAVEPOINT seed_replica")
        return False


def _load_batches(cur: cursor, gen: Generator, objects: _Objects | None) -> None:
    """COPY each chunk as the producer thread hands it over; submit its objects."""
    batches: queue.Queue[Batch | BaseException | None] = queue.Queue(maxsize=2)
    stop = threading.Event()
    producer = threading.Thread(target=_produce, args=(gen, batches, stop), name="seed-generate", daemon=True)
    producer.start()
    try:
        while (item := batches.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            for table in COLUMNS:
                _copy(cur, table, item.lines[table])
            if objects is not None:
                for key, upload_id, kind in item.objects:
                    objects.put(key, upload_id, kind)
                for key, export_id in item.exports:
                    objects.put_export(key, export_id)
    except BaseException:
        stop.set()
        raise
    producer.join()


def _move_sequences(cur: cursor) -> None:
    for table, column in ID_COLUMNS.items():
        schema, name = table.split(".")
        cur.execute(
            sql.SQL(
                "SELECT setval(pg_get_serial_sequence(%s, %s), GREATEST(max({c}), 1), max({c}) IS NOT NULL) FROM {t}"
            ).format(c=sql.Identifier(column), t=sql.Identifier(schema, name)),
            (table, column),
        )


def _insert_holds(cur: cursor, holds: list[HoldSpec]) -> list[dict[str, Any]]:
    """Insert the holds; the pseudonym is computed by the database, as every other hold's is."""
    rows = []
    for h in holds:
        cur.execute(
            """
            INSERT INTO governance.legal_holds (scope, table_name, record_key, account_id, email_sha256,
                                                reason, set_by, set_at, ends_at, lifted_at, lifted_by)
            VALUES (%s, %s, %s, %s, CASE WHEN %s::text IS NULL THEN NULL ELSE governance.email_pseudonym(%s) END,
                    %s, %s, %s, %s, %s, %s)
            RETURNING hold_id, scope, rule_id, table_name, record_key, account_id, email_sha256, set_at, ends_at,
                      lifted_at""",
            (
                h.scope,
                h.table_name,
                h.record_key,
                h.account_id,
                h.email,
                h.email,
                h.reason,
                SEED_ACTOR,
                h.set_at,
                h.ends_at,
                h.lifted_at,
                SEED_ACTOR if h.lifted_at else None,
            ),
        )
        names = [d[0] for d in cur.description or ()]
        rows.append(dict(zip(names, cur.fetchone() or (), strict=True)))
    return rows


@dataclass(frozen=True)
class _Target:
    """Where the seed writes: the database connection and, with objects, the bucket's prefix."""

    conn: connection
    s3: S3Client | None
    bucket: str
    prefix: str
    force: bool
    exports: tuple[str, str] | None = None  # the exports bucket and prefix (ACC-1, POR-1), with objects


def ensure_store_buckets(s3: S3Client, policy: Policy) -> list[str]:
    """Make every bucket the data map keeps objects in (the uploads, the request exports), in the
    client's region, as the seed does; a development and test helper (production creates its
    buckets itself, inside the EEA, SEC-3). Returns their names."""
    names = list(dict.fromkeys(b for c in policy.categories for s in c.stores if s.objects for b in s.objects.buckets))
    for bucket in names:
        ensure_bucket(s3, bucket)
    return names


def _claim(s3: S3Client, bucket: str, prefix: str, *, force: bool) -> None:
    """The bucket made (in the client's region), the prefix checked, claimed and emptied."""
    ensure_bucket(s3, bucket)
    guard.check_prefix(s3, bucket, prefix, force=force)
    guard.claim_prefix(s3, bucket, prefix)
    _empty_prefix(s3, bucket, prefix)


def _load(target: _Target, gen: Generator, orphan_objects: int) -> tuple[int, list[dict[str, Any]], int]:
    """The guarded load, one transaction: returns (objects written to the uploads bucket, the hold
    rows as inserted, export archives written to the exports bucket)."""
    conn, s3 = target.conn, target.s3
    exports_bucket = target.exports[0] if target.exports else None
    objects = _Objects(s3, target.bucket, gen.seed, exports_bucket) if s3 is not None else None
    try:
        with conn.cursor() as cur:
            tables = _shop_tables(cur)
            owned = [f"shop.{t}" for t in tables] + [HOLDS_TABLE, *REQUEST_TABLES]
            guard.check_database(conn, cur, owned, force=target.force)
            if s3 is not None:
                for bucket, prefix in [(target.bucket, target.prefix), *([target.exports] if target.exports else [])]:
                    _claim(s3, bucket, prefix, force=target.force)
            replica = _empty_shop(cur, tables, gen.now)
            _load_batches(cur, gen, objects)
            if replica:
                cur.execute("SET LOCAL session_replication_role = DEFAULT")
            # The RET-3 clock kept per customer: its triggers did not fire in replica mode (ADR 0011).
            cur.execute("SELECT governance.rebuild_customer_last_order()")
            _move_sequences(cur)
            hold_rows = _insert_holds(cur, gen.holds)
            if objects is not None:
                last_id = gen.next_id("shop.uploads")
                for n in range(orphan_objects):  # a leftover object whose row is gone: an id no row has
                    objects.put(f"{target.prefix}guest/{last_id + n}.jpg", last_id + n, "photo")
                objects.wait()
            guard.mark_database(cur, as_of=gen.now, customers=gen.customers, seed=gen.seed)
            analysed = [sql.Identifier("shop", t) for t in tables] + [
                sql.Identifier(*t.split(".")) for t in REQUEST_TABLES
            ]
            cur.execute(sql.SQL("ANALYZE {}").format(sql.SQL(", ").join(analysed)))
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        if objects is not None:
            objects.close()
    return (objects.written if objects is not None else 0), hold_rows, (objects.exports_written if objects else 0)


def seed(
    conn: connection,
    s3: S3Client | None,
    policy: Policy,
    now: datetime,
    *,
    customers: int = 500,
    seed: int = 42,
    objects: bool = True,
    max_objects: int | None = None,
    orphan_objects: int = 0,
    holds: bool = True,
    keep_snapshot: bool | None = None,
    force: bool = False,
) -> SeedReport:
    """Empty the shop (and its legal holds) and load a deterministic synthetic one; see the module doc.

    ``objects=False`` loads no uploads (rows or objects) and does not touch S3. ``keep_snapshot``:
    None keeps the reference snapshot up to ``SNAPSHOT_LIMIT`` customers. A database or prefix
    holding data the seed did not write is refused (``guard.SeedRefused``) unless ``force``.
    """
    started = time.monotonic()
    now = as_utc(now)
    store = policy.store("shop.uploads")
    prefix = store.objects.prefix if store.objects else "uploads/"
    bucket = policy.object_store.uploads_bucket
    if objects and s3 is None:
        raise ValueError("seed(objects=True) needs an S3 client; pass objects=False to load without uploads")
    gen = Generator(
        policy,
        now,
        customers=customers,
        seed=seed,
        uploads=objects,
        max_uploads=max_objects,
        keep_snapshot=customers <= SNAPSHOT_LIMIT if keep_snapshot is None else keep_snapshot,
        holds=holds,
        bucket=bucket,
        prefix=prefix,
    )
    exports = exports_location(policy) if objects else None
    target = _Target(conn, s3 if objects else None, bucket, prefix, force, exports)
    written, hold_rows, exports_written = _load(target, gen, orphan_objects if objects else 0)
    rows = dict(gen.counts)
    rows[HOLDS_TABLE] = len(hold_rows)
    report = SeedReport(
        rows=rows,
        objects=written,
        seconds=0.0,
        orphan_objects=orphan_objects if objects else 0,
        bucket=bucket,
        export_objects=exports_written,
        exports_bucket=exports[0] if exports else "",
    )
    if gen.snapshot is not None:
        gen.snapshot.legal_holds = hold_rows
        found = reference.overdue(gen.snapshot, policy, now)
        report.snapshot = gen.snapshot
        report.expected_overdue = {rule: len(records) for rule, records in found.items()}
        report.expected_oldest_overdue_seconds = {
            rule: max(records.values(), default=0) for rule, records in found.items()
        }
    report.seconds = time.monotonic() - started
    return report


def personal_values(conn: connection) -> set[str]:
    """Every distinct e-mail, first/last name, street, phone number and IP address now in the shop.

    For leak scans: none of these may appear in logs, XComs, evidence or notifications. Values
    shorter than 4 characters are left out (too common as substrings to scan for); the generator
    uses none.
    """
    query = """
        SELECT v FROM (
            SELECT email AS v FROM shop.accounts
            UNION SELECT first_name FROM shop.accounts UNION SELECT last_name FROM shop.accounts
            UNION SELECT email FROM shop.orders UNION SELECT btrim(email) FROM shop.orders
            UNION SELECT first_name FROM shop.orders UNION SELECT last_name FROM shop.orders
            UNION SELECT phone FROM shop.orders
            UNION SELECT delivery_street FROM shop.orders UNION SELECT billing_street FROM shop.orders
            UNION SELECT email FROM shop.newsletter_subscriptions UNION SELECT btrim(email) FROM shop.newsletter_subscriptions
            UNION SELECT first_name FROM shop.newsletter_subscriptions
            UNION SELECT last_name FROM shop.newsletter_subscriptions
            UNION SELECT email FROM shop.contact_messages UNION SELECT btrim(email) FROM shop.contact_messages
            UNION SELECT name FROM shop.contact_messages
            UNION SELECT host(ip_address) FROM shop.visits
            UNION SELECT reply_to FROM governance.request_contacts UNION SELECT btrim(reply_to) FROM governance.request_contacts
            UNION SELECT subject_email FROM governance.request_contacts
        ) values_ WHERE v IS NOT NULL AND length(btrim(v)) >= 4"""
    with conn.cursor() as cur:
        cur.execute(query)
        return {v for (v,) in cur.fetchall()}
