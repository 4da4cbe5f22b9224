"""One person's export put together from the library's parts, as the request worker puts it
together (#10: ACC-1, POR-1): in one read-only REPEATABLE READ snapshot, ``resolve_subject``, every
store's columns (one catalog query) and rows (``person_tables``: each table read by one bounded
query and replayed from memory for its CSV file; over ``BUFFER_ROWS`` rows, streamed again), the
objects from the rows already read (``read_objects``), streamed by ``write_export`` into the
exports bucket; the counts are the rows read (``read_counts``, no ``count_records``).

Imports only the library, so that bench/exports.py's memory child can use it without the bench.
"""

from __future__ import annotations

import posixpath
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from governance.exports import ExportResult, ObjectExport, Summary, TableExport, write_export
from governance.person.reading import PersonTable, person_tables, read_counts, read_objects
from governance.person.records import snapshot
from governance.person.subject import Subject, resolve_subject


def tables(found: list[PersonTable]) -> list[TableExport]:
    """Every store's table of the person, in data-map order (the export's ``tables``)."""
    return [TableExport(t.table, t.category.id, t.store.key, t.columns, t.rows) for t in found]


def objects(cur: Any, policy: Any, subject: Subject, found: list[PersonTable]) -> Iterator[ObjectExport]:
    """The person's objects as archive members, streamed (the export's ``objects``)."""
    for ref in read_objects(cur, policy, subject, found):
        yield ObjectExport(f"files/{ref.table}/{ref.record_key}/{posixpath.basename(ref.key)}", ref.bucket, ref.key)


PHASES = ("snapshot_and_resolve", "columns", "first_pass", "second_pass", "objects")


def database_part(conn: Any, policy: Any, account_id: int | None, email: str | None, keep: bool = False) -> dict:
    """Everything the export asks of the database, with the rows drained instead of archived, in
    the export's order: the subject, every store's columns, then per store its rows twice (the
    second time from memory when they fit), then the object list. Returns rows per table, the
    seconds per phase (``PHASES``), and with ``keep`` the first pass's rows and the object keys
    (to check them against the baseline)."""
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
        found = person_tables(cur, policy, subject)
        lap("columns")
        for table in tables(found):
            first = list(table.rows) if keep else sum(1 for _ in table.rows)
            lap("first_pass")
            second = sum(1 for _ in table.rows)
            lap("second_pass")
            size = len(first) if isinstance(first, list) else first
            if size != second:
                raise RuntimeError(f"{table.table}: {size} then {second} rows")
            read[table.table] = first
        listed = [item.key for item in objects(cur, policy, subject, found)]
        lap("objects")
        counts = read_counts(found)
    return {"rows": read, "objects": listed if keep else len(listed), "counts": counts, "seconds": seconds}


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
    """The whole export of one person into ``bucket``/``key``; returns the result and the counts
    (the rows written per table, ``ExportResult.rows``)."""
    with snapshot(conn) as cur:
        subject = resolve_subject(cur, policy, account_id=account_id, email=email)
        found = person_tables(cur, policy, subject)
        result = write_export(
            s3,
            bucket=bucket,
            key=key,
            tables=tables(found),
            objects=objects(cur, policy, subject, found),
            summary=Summary.from_policy(policy),
            package_name=posixpath.basename(key).removesuffix(".zip"),
            created_at=created_at,
        )
    return result, result.rows
