"""One person's stores read for an export (#10: ACC-1, POR-1), each table once where it fits.

The export writes a table twice (its JSON file, then its CSV file). ``StoreRows`` reads the
person's rows of a store with one plain query bounded to ``BUFFER_ROWS`` + 1 rows (one round trip,
like a hand-written query); when they fit, they are kept and the second pass replays them from
memory, then lets them go. A store with more of the person's rows than the bound is streamed
instead, by a server-side cursor, once per pass (memory stays bounded: at most one table's
``BUFFER_ROWS`` rows are held at a time, and the bounded first query is dropped before the
stream starts). Every pass is read in the caller's REPEATABLE READ ``snapshot``, so both passes
see the same rows.

``person_tables`` describes every store's columns in one catalog query; ``PersonTable.count``
is what the last complete pass read (the export's counts, without a separate ``count_records``);
``read_objects`` lists the person's objects from the rows already read where it can.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from psycopg2 import sql
from psycopg2.extensions import cursor

from governance.errors import ExportFailed
from governance.person.columns import Column
from governance.person.records import (
    ObjectRef,
    columns_of,
    person_stores,
    read_store,
    selection,
    store_objects,
)
from governance.person.subject import Subject
from governance.policy import Category, Policy, Store

# A table's rows of one person kept in memory for its second file. A usual person has a few to a
# few hundred rows per table (bench/README.md, "Exports (#10)": 21 in all on average); 10,000 rows
# of the shop's widest table (uploads, ~10 columns) are a few MiB of Python objects.
BUFFER_ROWS = 10_000


@dataclass(eq=False)
class StoreRows:
    """The person's rows of ``store`` (every column, key order), iterable again and again: the
    first ``iter()`` sends one bounded query and keeps the rows if they fit in ``buffer_rows``; the
    next replays them (and releases them). Beyond the bound every ``iter()`` streams a new
    server-side cursor. ``count``: the rows of the last complete pass; ``queries``: statements sent.
    When the store has ``objects:``, a complete bounded read also keeps its object references."""

    cur: cursor
    policy: Policy
    subject: Subject
    store: Store
    columns: list[Column]
    buffer_rows: int = BUFFER_ROWS
    count: int | None = None
    queries: int = 0
    objects: list[ObjectRef] | None = field(default=None, repr=False)
    _buffer: list[tuple[Any, ...]] | None = field(default=None, repr=False)
    _large: bool = False

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        if self._buffer is not None:
            buffer, self._buffer = self._buffer, None
            return self._counted(iter(buffer))
        if self._large:
            return self._counted(self._stream())
        return self._first()

    def _first(self) -> Iterator[tuple[Any, ...]]:
        rows = self._bounded()
        if len(rows) > self.buffer_rows:
            del rows  # over the bound: stream from the start instead
            self._large = True
            yield from self._counted(self._stream())
            return
        self.objects = self._object_refs(rows)
        self._buffer = rows
        yield from rows
        self.count = len(rows)

    def _bounded(self) -> list[tuple[Any, ...]]:
        """One round trip: at most ``buffer_rows`` + 1 rows. The LIMIT plans the selection for
        ``buffer_rows`` + 1 of the estimated rows, i.e. for all of them unless PostgreSQL expects more
        (``snapshot`` plans cursors for all their rows for the same reason: a plan for the first few
        may walk a whole table in key order; a CTE fence against it cost ~0.5 ms per person)."""
        query = selection(self.policy, self.store) + sql.SQL(" LIMIT {n}").format(n=sql.Literal(self.buffer_rows + 1))
        self.queries += 1
        with self.cur.connection.cursor() as plain:
            plain.execute(query, self.subject.params())
            return plain.fetchall()

    def _stream(self) -> Iterator[tuple[Any, ...]]:
        self.queries += 1
        yield from read_store(self.cur, self.policy, self.subject, self.store)

    def _counted(self, rows: Iterator[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
        count = 0
        for row in rows:
            count += 1
            yield row
        if self.count is not None and count != self.count:
            raise ExportFailed(
                f"table {self.store.table}: {self.count} row(s) in one pass but {count} in the next; read them in "
                "one REPEATABLE READ snapshot, then run the export again"
            )
        self.count = count

    def _object_refs(self, rows: list[tuple[Any, ...]]) -> list[ObjectRef] | None:
        """The objects of ``rows`` as ``store_objects`` lists them (key order, bucket and key set)."""
        link = self.store.objects
        if link is None:
            return None
        names = [c.name for c in self.columns]
        key, bucket, object_key = (names.index(n) for n in (self.store.key, link.bucket_column, link.key_column))
        return [
            ObjectRef(self.store.table, str(row[key]), str(row[bucket]), str(row[object_key]))
            for row in rows
            if row[bucket] is not None and row[object_key] is not None
        ]


@dataclass(frozen=True)
class PersonTable:
    """One store of the person: its category, its columns and its rows (read as the export reads)."""

    category: Category
    store: Store
    columns: list[Column]
    rows: StoreRows

    @property
    def table(self) -> str:
        return self.store.table


def person_tables(
    cur: cursor, policy: Policy, subject: Subject, *, buffer_rows: int = BUFFER_ROWS
) -> list[PersonTable]:
    """Every store of ``person_stores`` (data-map order) with its columns (one catalog query) and
    its rows, not read yet: they are read when the export iterates them."""
    stores = person_stores(policy)
    described = columns_of(cur, [store for _, store in stores])
    return [
        PersonTable(
            category,
            store,
            described[store.table],
            StoreRows(cur, policy, subject, store, described[store.table], buffer_rows=buffer_rows),
        )
        for category, store in stores
    ]


def read_counts(tables: list[PersonTable]) -> dict[str, int]:
    """Table -> the person's records read in it (as ``count_records`` counts them), once every table
    has been read through; a table not read yet is an error of the caller."""
    unread = [t.table for t in tables if t.rows.count is None]
    if unread:
        raise RuntimeError(f"tables not read yet, so not counted: {unread}")
    return {t.table: int(t.rows.count or 0) for t in tables}


def read_objects(cur: cursor, policy: Policy, subject: Subject, tables: list[PersonTable]) -> Iterator[ObjectRef]:
    """The person's objects, as ``person_objects`` lists them: from the rows already read of a store
    with ``objects:`` when they fit in its buffer, else (streamed, or not read yet) by a query."""
    for table in tables:
        if table.store.objects is None:
            continue
        if table.rows.objects is not None:
            yield from table.rows.objects
        else:
            yield from store_objects(cur, policy, subject, table.store)
