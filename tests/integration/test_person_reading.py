"""One person's stores read for an export, each table once where it fits (#10: ACC-1, POR-1; the
bench target: the database part within 2x of one hand-written query per table), against a real
PostgreSQL and moto's S3 server.

The shop and its people (Kari, Per, Ola) are test_person_records.py's; every table is compared
with its hand-written query there. A table that fits in the buffer is read by one statement and
replayed for the second file; a table with more of the person's rows than the bound is read
again, by a server-side cursor, on each pass, and still exports exactly the same files.
"""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime
from typing import Any

import psycopg2
import psycopg2.extensions
import pytest

from governance.errors import PolicyError
from governance.exports import Summary, TableExport, write_export
from governance.person import records as person_records
from governance.person.reading import BUFFER_ROWS, person_tables, read_counts, read_objects
from governance.person.records import columns, columns_of, count_records, person_objects, person_stores, snapshot
from tests.integration.test_person_records import (  # noqa: F401 - shop is a fixture
    EXPECTED_SQL,
    KARI,
    PER,
    POLICY,
    expected_rows,
    shop,
    subject_of,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("shop")]

EXPORTS = "governance-exports"
CREATED = datetime(2026, 3, 1, 12, tzinfo=UTC)


class CountingCursor(psycopg2.extensions.cursor):
    """A real cursor that counts the statements it sends."""

    sent = 0

    def execute(self, query: Any, vars: Any = None) -> None:  # noqa: A002 - psycopg2's own name
        type(self).sent += 1
        super().execute(query, vars)


@pytest.mark.parametrize("email", [KARI, PER])
def test_a_table_that_fits_is_read_by_one_statement_and_replayed(conn, email):
    subject = subject_of(conn, email=email)
    with snapshot(conn) as cur:
        tables = person_tables(cur, POLICY, subject)
        assert [t.table for t in tables] == list(EXPECTED_SQL)
        for table in tables:
            expected = expected_rows(cur, table.table, subject)
            assert list(table.rows) == expected, table.table  # the JSON pass
            assert list(table.rows) == expected, table.table  # the CSV pass, from memory
            assert table.rows.queries == 1 and table.rows.count == len(expected), table.table
        assert read_counts(tables) == count_records(cur, POLICY, subject)
        assert sum(read_counts(tables).values()) > 5


@pytest.mark.parametrize("bound", [1, 2])
def test_a_table_over_the_bound_is_read_again_on_each_pass_and_exactly(conn, monkeypatch, bound):
    """Per has 3 order lines and 2 orders: over a bound of 1 or 2, each pass streams them again
    (two rows per FETCH, so the last batch is short); a table at the bound (2 orders) still fits."""
    monkeypatch.setattr(person_records, "ITERSIZE", 2)
    subject = subject_of(conn, email=PER)
    with snapshot(conn) as cur:
        tables = person_tables(cur, POLICY, subject, buffer_rows=bound)
        for table in tables:
            expected = expected_rows(cur, table.table, subject)
            assert list(table.rows) == expected == list(table.rows), table.table
            over = len(expected) > bound
            # over the bound: the bounded statement, then a stream per pass; else one statement
            assert table.rows.queries == (3 if over else 1), (table.table, len(expected))
            assert table.rows.count == len(expected)
        read = read_counts(tables)
        assert read == count_records(cur, POLICY, subject)
        assert read["shop.order_lines"] == 3 > bound and read["shop.orders"] == 2 >= bound


def test_objects_come_from_the_rows_read_or_from_a_query(conn):
    """The same objects as ``person_objects``: from a pass's rows, from a query before any pass,
    and from a query when the uploads were over the bound (streamed, not kept)."""
    for email in (KARI, PER):
        subject = subject_of(conn, email=email)
        with snapshot(conn) as cur:
            listed = list(person_objects(cur, POLICY, subject))
            assert listed
            for bound in (BUFFER_ROWS, 1):
                tables = person_tables(cur, POLICY, subject, buffer_rows=bound)
                assert list(read_objects(cur, POLICY, subject, tables)) == listed  # nothing read yet
                for table in tables:
                    for _ in table.rows:
                        pass
                uploads = next(t for t in tables if t.table == "shop.uploads")
                assert (uploads.rows.objects is None) == (len(listed) > bound)
                assert list(read_objects(cur, POLICY, subject, tables)) == listed


def test_counts_of_tables_not_read_are_refused(conn):
    with snapshot(conn) as cur:
        tables = person_tables(cur, POLICY, subject_of(conn, email=PER))
        with pytest.raises(RuntimeError, match="not read yet"):
            read_counts(tables)


def test_columns_of_every_store_in_one_catalog_query_and_never_stale(conn):
    stores = [store for _, store in person_stores(POLICY)]
    with snapshot(conn) as cur:
        one_by_one = {store.table: columns(cur, store) for store in stores}
    conn.cursor_factory = CountingCursor
    try:
        with snapshot(conn) as cur:
            before = CountingCursor.sent
            described = columns_of(cur, stores)
            assert CountingCursor.sent - before == 1
    finally:
        conn.cursor_factory = psycopg2.extensions.cursor
    assert described == one_by_one and list(described) == [store.table for store in stores]
    # No cache: a column added (in a transaction rolled back) is described at once.
    with conn.cursor() as cur:
        cur.execute("ALTER TABLE shop.order_lines ADD COLUMN gift_note varchar(40)")
        added = columns_of(cur, [POLICY.store("shop.order_lines")])["shop.order_lines"]
    conn.rollback()
    assert added[-1].name == "gift_note" and added[-1].type_name == "character varying(40)"
    missing = POLICY.store("shop.orders").model_copy(update={"table": "shop.no_such_table"})
    with conn.cursor() as cur, pytest.raises(PolicyError, match="shop.no_such_table"):
        columns_of(cur, [stores[0], missing])
    conn.rollback()


def export_tables(s3, conn, subject, key: str, bound: int) -> tuple[Any, dict[str, int], dict[str, int]]:
    """Per's tables exported through ``write_export`` with ``bound``: the result, the counts the
    summary was made from, and the rows read."""
    seen: dict[str, int] = {}

    def summary(rows: dict[str, int]) -> Summary:
        seen.update(rows)
        return Summary.from_policy(POLICY)

    with snapshot(conn) as cur:
        tables = person_tables(cur, POLICY, subject, buffer_rows=bound)
        result = write_export(
            s3,
            bucket=EXPORTS,
            key=key,
            tables=[TableExport(t.table, t.category.id, t.store.key, t.columns, t.rows) for t in tables],
            objects=[],
            summary=summary,
            package_name="request-7",
            created_at=CREATED,
        )
        return result, seen, read_counts(tables)


def test_an_export_over_the_bound_has_the_same_files_as_one_within_it(conn, s3):
    s3.create_bucket(Bucket=EXPORTS, CreateBucketConfiguration={"LocationConstraint": "eu-north-1"})
    subject = subject_of(conn, email=PER)
    buffered, seen, read = export_tables(s3, conn, subject, "exports/a.zip", BUFFER_ROWS)
    streamed, seen_streamed, read_streamed = export_tables(s3, conn, subject, "exports/b.zip", 1)
    data = {path: digest for path, digest in buffered.manifest.items() if path.startswith("data/")}
    assert len(data) == 2 * len(EXPECTED_SQL)
    assert data == {path: d for path, d in streamed.manifest.items() if path.startswith("data/")}
    with snapshot(conn) as cur:
        counted = count_records(cur, POLICY, subject)
    assert buffered.rows == streamed.rows == seen == seen_streamed == read == read_streamed == counted
    body = s3.get_object(Bucket=EXPORTS, Key="exports/b.zip")["Body"].read()
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        lines = archive.read("data/shop.order_lines.csv").decode().splitlines()
        records = archive.read("data/shop.order_lines.json").decode().splitlines()
    assert len(lines) - 1 == counted["shop.order_lines"] == len(records) - 2 == 3
