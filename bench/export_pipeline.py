"""One person's export put together from the library's parts, as the request worker puts it
together (#10: ACC-1, POR-1): in one read-only REPEATABLE READ snapshot, ``resolve_subject``, the
counts (``count_records``), every store's columns and rows (``read_store``: a new server-side
cursor each time a table is iterated, so the archive reads each twice, JSON then CSV) and the
objects (``person_objects``), streamed by ``write_export`` into the exports bucket.

Imports only the library, so that bench/exports.py's memory child can use it without the bench.
"""

from __future__ import annotations

import posixpath
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from governance.exports import ExportResult, ObjectExport, Summary, TableExport, write_export
from governance.person.records import columns, count_records, person_objects, person_stores, read_store, snapshot
from governance.person.subject import Subject, resolve_subject


class StoreRows:
    """A store's rows of one person; each ``iter()`` opens a new server-side cursor."""

    def __init__(self, cur: Any, policy: Any, subject: Subject, store: Any) -> None:
        self.cur, self.policy, self.subject, self.store = cur, policy, subject, store

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return read_store(self.cur, self.policy, self.subject, self.store)


def tables(cur: Any, policy: Any, subject: Subject) -> list[TableExport]:
    """Every store's table of the person, in data-map order (the export's ``tables``)."""
    return [
        TableExport(store.table, category.id, store.key, columns(cur, store), StoreRows(cur, policy, subject, store))
        for category, store in person_stores(policy)
    ]


def objects(cur: Any, policy: Any, subject: Subject) -> Iterator[ObjectExport]:
    """The person's objects as archive members, streamed (the export's ``objects``)."""
    for ref in person_objects(cur, policy, subject):
        yield ObjectExport(f"files/{ref.table}/{ref.record_key}/{posixpath.basename(ref.key)}", ref.bucket, ref.key)


PHASES = ("snapshot_and_resolve", "count", "columns", "first_pass", "second_pass", "objects")


def database_part(conn: Any, policy: Any, account_id: int | None, email: str | None, keep: bool = False) -> dict:
    """Everything the export asks of the database, with the rows drained instead of archived, in
    the export's order: the subject, the counts, then per store its columns and its rows twice,
    then the object list. Returns rows per table, the seconds per phase (``PHASES``), and with
    ``keep`` the first pass's rows and the object keys (to check them against the baseline)."""
    seconds = dict.fromkeys(PHASES, 0.0)
    read: dict[str, Any] = {}
    mark = time.perf_counter()

    def lap(phase: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        seconds[phase] += now - mark
        mark = now

    with snapshot(conn) as cur:
        subject = resolve_subject(cur, policy, account_id=account_id, email=email)
        lap("snapshot_and_resolve")
        counts = count_records(cur, policy, subject)
        lap("count")
        for category, store in person_stores(policy):
            table = TableExport(
                store.table, category.id, store.key, columns(cur, store), StoreRows(cur, policy, subject, store)
            )
            lap("columns")
            first = list(table.rows) if keep else sum(1 for _ in table.rows)
            lap("first_pass")
            second = sum(1 for _ in table.rows)
            lap("second_pass")
            size = len(first) if isinstance(first, list) else first
            if size != second or size != counts[table.table]:
                raise RuntimeError(f"{table.table}: {size} then {second} rows, counted {counts[table.table]}")
            read[table.table] = first
        found = [item.key for item in objects(cur, policy, subject)]
        lap("objects")
    return {"rows": read, "objects": found if keep else len(found), "counts": counts, "seconds": seconds}


def export(
    conn: Any,
    s3: Any,
    policy: Any,
    account_id: int | None,
    email: str | None,
    *,
    bucket: str,
    key: str,
    created_at: datetime,
) -> tuple[ExportResult, dict[str, int]]:
    """The whole export of one person into ``bucket``/``key``; returns the result and the counts."""
    with snapshot(conn) as cur:
        subject = resolve_subject(cur, policy, account_id=account_id, email=email)
        counts = count_records(cur, policy, subject)
        result = write_export(
            s3,
            bucket=bucket,
            key=key,
            tables=tables(cur, policy, subject),
            objects=objects(cur, policy, subject),
            summary=Summary.from_policy(policy),
            package_name=posixpath.basename(key).removesuffix(".zip"),
            created_at=created_at,
        )
    return result, counts
