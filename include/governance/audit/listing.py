"""The object-store listing of an audit run (CAT-5, RET-9): every object, copied into the scratch schema.

Each store of the data map that has objects is listed on a second connection in a thread of its
own, concurrently with the predicates (on S3 the listing is bound by round trips, the predicates by
PostgreSQL: they overlap). Keys never leave the database: they go by COPY, 10,000 at a time, so
memory stays flat. The check joins the listing only once it is complete.
"""

from __future__ import annotations

import csv
import io
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from psycopg2 import sql
from psycopg2.extensions import cursor

from governance.audit.redaction import safe_error
from governance.audit.scratch import Scratch
from governance.db import connect, transaction
from governance.errors import AuditError
from governance.policy import ObjectStoreLink, Policy, Rule, Store
from governance.windows import as_utc

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

COPY_BATCH = 10_000


@dataclass
class ListedStore:
    """One store of the data map with objects: where they are listed and which rules govern it."""

    store: Store
    link: ObjectStoreLink
    rules: list[Rule]
    table_name: str  # scratch table of the listing
    listed: int = 0
    category: str = ""  # the data map's category of the store


def listed_stores(policy: Policy) -> list[ListedStore]:
    """Every store with objects, each with its own listing table in the scratch schema."""
    stores: list[ListedStore] = []
    for category in policy.categories:
        for store in category.stores:
            if store.objects is not None:
                rules = list(policy.rules_by_table.get(store.table, []))
                stores.append(ListedStore(store, store.objects, rules, f"objects_{len(stores)}", category=category.id))
    return stores


def iter_objects(s3: S3Client, bucket: str, prefix: str) -> Iterator[tuple[str, str, datetime]]:
    """(bucket, key, last modified) of every object under a prefix, page by page."""
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            yield bucket, item["Key"], item["LastModified"]


def copy_objects(
    cur: cursor,
    table: sql.Composable,
    objects: Iterator[tuple[str, str, datetime]],
    batch: int = COPY_BATCH,
    stop: threading.Event | None = None,
) -> int:
    """COPY (bucket, key, last_modified) into a scratch table, ``batch`` at a time; returns how many."""
    listed = 0
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    pending = 0
    copy = sql.SQL("COPY {} (bucket, object_key, last_modified) FROM STDIN WITH (FORMAT csv)").format(table)

    def flush() -> None:
        buffer.seek(0)
        cur.copy_expert(copy, buffer)
        buffer.seek(0)
        buffer.truncate()

    for bucket, key, modified in objects:
        writer.writerow((bucket, key, as_utc(modified).isoformat()))
        listed += 1
        pending += 1
        if pending >= batch:
            flush()
            pending = 0
        if stop is not None and listed % 1_000 == 0 and stop.is_set():
            return listed
    if pending:
        flush()
    return listed


class Listing(threading.Thread):
    """Lists every store on its own connection; ``result()`` waits and re-raises its error."""

    def __init__(self, db_url: str, s3: S3Client, scratch: Scratch, stores: list[ListedStore]):
        super().__init__(name="governance-audit-listing", daemon=True)
        self.db_url, self.s3, self.scratch, self.stores = db_url, s3, scratch, stores
        self.error: BaseException | None = None
        self.seconds = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        start = time.perf_counter()
        conn = None
        try:
            conn = connect(self.db_url, application_name="governance-audit-listing")
            with transaction(conn) as cur:
                self._list(cur)
        except BaseException as exc:  # re-raised by the audit's thread
            self.error = exc
        finally:
            if conn is not None:
                conn.close()
            self.seconds = time.perf_counter() - start

    def _list(self, cur: cursor) -> None:
        for item in self.stores:
            for bucket in item.link.buckets:
                objects = iter_objects(self.s3, bucket, item.link.prefix)
                item.listed += copy_objects(cur, self.scratch.table(item.table_name), objects, stop=self.stop)
                if self.stop.is_set():
                    return

    def result(self) -> None:
        self.join()
        if self.error is not None:
            error = self.error
            if isinstance(error, Exception) and not isinstance(error, (AuditError, RuntimeError)):
                raise AuditError(
                    f"listing the object store failed: {type(error).__name__}: {safe_error(str(error))}"
                ) from None
            raise error

    def cancel(self) -> None:
        """Stop a listing still under way (the audit failed) and wait for its thread."""
        if self.is_alive():
            self.stop.set()
            self.join()
