"""Counting a rule's due rows in short transactions: a clock view with a ``chunk`` column chunk by
chunk (include/sql/clocks/README.md; RET-3), and how many chunks a due set is computed, verified or
planned in; a column clock on a plain table slice by slice of its heap pages."""

from __future__ import annotations

import math
import time

from psycopg2.extensions import connection, cursor

from governance.db import transaction
from governance.sweep.kept import count_kept
from governance.sweep.options import Options
from governance.sweep.pacing import next_size
from governance.sweep.selection import FROM_PAGE, IN_PAGES, Selection, page_bounds
from governance.sweep.shards import table_pages
from governance.sweep.target import Target

MAX_CHUNKS = 256  # a chunked due set is computed in at most this many transactions
# A verification chunk counts, it neither joins nor writes due rows (none are left): per row about
# half the work of a compute chunk, so its chunks hold twice the rows.
VERIFY_CHUNK_FACTOR = 2
ROWS_PER_PAGE_GUESS = 60.0  # a table never analysed: rows per heap page assumed
# A column clock's count over a plain table: heap pages in the first slice (32 MiB), and at most
# in any slice (1 GiB); the slices between follow ``pacing.next_size``.
FIRST_SLICE_PAGES = 4_096
MOST_SLICE_PAGES = 131_072


def chunk_count(
    conn: connection, target: Target, opts: Options, *, removed: int = 0, per_chunk: int | None = None
) -> int:
    """How many chunks a due set is computed, verified or planned in: 1 unless the clock views have
    a ``chunk`` column; else ``opts.chunks``, or one per ``per_chunk`` (default ``chunk_rows``) rows
    of the table (its statistics, or its size where it was never analysed) less the ``removed`` rows
    a sweep has already anonymised or deleted (they are no longer in the view), at most MAX_CHUNKS.
    Ends its (catalogue-only) transaction."""
    if not target.chunked:
        return 1
    if opts.chunks:
        return max(1, min(MAX_CHUNKS, opts.chunks))
    with transaction(conn) as cur:
        cur.execute(
            "SELECT coalesce(sum(CASE WHEN c.reltuples >= 0 THEN c.reltuples ELSE "
            "pg_relation_size(c.oid) / current_setting('block_size')::int * %s END), 0) "
            "FROM pg_class c WHERE c.oid = %s::regclass AND c.relkind = 'r' "
            "OR c.oid IN (SELECT relid FROM pg_partition_tree(%s::regclass) WHERE isleaf)",
            (ROWS_PER_PAGE_GUESS, target.table, target.table),
        )
        row = cur.fetchone()
        rows = max(0.0, float(row[0] if row else 0) - removed)
    return max(1, min(MAX_CHUNKS, math.ceil(rows / max(1, per_chunk or opts.chunk_rows))))


def count_due(
    conn: connection, sel: Selection, opts: Options, *, removed: int = 0, read_only: bool = False
) -> tuple[int, int]:
    """(due and not held, due but held) of a selection, chunk by chunk for a clock view with a
    ``chunk`` column (RET-3), each chunk its own short transaction (READ ONLY and rolled back with
    ``read_only``, as a plan's): a record is in one chunk, so the sums are the counts. Chunks hold
    VERIFY_CHUNK_FACTOR x ``chunk_rows`` rows (a count neither joins nor writes); a column clock on
    a plain table in slices of its pages (``count_in_pages``); one transaction for other clocks; a
    clock kept per group counts from its table (``count_kept``). A shard's selection counts its own
    rows (its share of the chunks, its pages)."""
    if sel.target.kept is not None:
        return count_kept(conn, sel, read_only=read_only)
    if sel.target.direct_clock is not None and not sel.target.partitioned:
        return count_in_pages(conn, sel, read_only=read_only)
    chunks = sel.chunks_of(
        chunk_count(conn, sel.target, opts, removed=removed, per_chunk=VERIFY_CHUNK_FACTOR * opts.chunk_rows)
    )
    due = held = 0
    for chunk in range(chunks):
        with transaction(conn, read_only=read_only) as cur:
            cur.execute(sel.counts(chunked=sel.chunked(chunks)), {**sel.params, **sel.chunk_params(chunk, chunks)})
            row = cur.fetchone()
        chunk_due, chunk_held = row if row else (0, 0)
        due, held = due + chunk_due, held + chunk_held
    return due, held


def count_in_pages(conn: connection, sel: Selection, *, read_only: bool = False) -> tuple[int, int]:
    """(due and not held, due but held) of a column clock on a plain table, counted slice by slice
    of its heap pages (TID range scans; a blocks shard's pages only), each slice its own
    transaction sized from the last one's time (``pacing.next_size``): the count after a sweep of a
    large table is a series of short reads, not one scan of the whole table that holds back
    vacuum's horizon for seconds. The last slice runs to the end of the table (pages added since).
    A row an UPDATE moves into a page already counted is not counted again, and one it moves out of
    a page not yet counted not at all: the audit's count, one statement, is the independent check."""
    lo, hi = sel.page_range()
    end = table_pages(conn, sel.target)
    if hi is not None:
        end = min(end, hi)
    due = held = 0
    start, size = lo, FIRST_SLICE_PAGES
    while True:
        last = start + size >= end
        slice_hi = hi if last else start + size
        statement = sel.counts(pages=FROM_PAGE if slice_hi is None else IN_PAGES)
        began = time.perf_counter()
        with transaction(conn, read_only=read_only) as cur:
            cur.execute(statement, {**sel.params, **page_bounds(start, slice_hi)})
            counted = cur.fetchone()
        slice_due, slice_held = counted if counted else (0, 0)
        due, held = due + slice_due, held + slice_held
        if last:
            return due, held
        start += size
        size = next_size(size, MOST_SLICE_PAGES, time.perf_counter() - began)


def purging_counts(cur: cursor, sel: Selection) -> tuple[int, int]:
    """(to finish, held) of the 'purging' rows of the rule: a held tombstone stays (RET-8)."""
    cur.execute(sel.purging_counts(), sel.params)
    row = cur.fetchone()
    total, free = row if row else (0, 0)
    return int(free), int(total) - int(free)
