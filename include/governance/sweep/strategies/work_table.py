"""The ``work`` strategy's due set: the due, unheld rows of a rule computed into a temporary table
of (relation, ctid, key), in (relation, ctid) order: one read-only pass, or one short transaction
per chunk of the records for a clock view with a ``chunk`` column (RET-3)."""

from __future__ import annotations

import logging

from psycopg2 import sql

from governance.db import transaction
from governance.sweep.counting import chunk_count
from governance.sweep.runner import BatchRunner

log = logging.getLogger(__name__)

WORK_TABLE = "governance_sweep_work"
WORK = sql.Identifier(WORK_TABLE)
_RUNS = sql.Identifier(WORK_TABLE + "_runs")


def compute(runner: BatchRunner) -> tuple[int, int]:
    """Fill the work table; returns (rows, heap pages of the work table).

    One pass writes the table in (rel, tid) order; chunks are appended as they come and the table
    is then put in that order (``order``): slices of its pages are ranges of the heap either way."""
    conn, t, sel, opts = runner.conn, runner.target, runner.sel, runner.opts
    chunks = sel.chunks_of(chunk_count(conn, t, opts))  # a chunks shard: its share of the chunks
    columns = sql.SQL("t.tableoid AS rel, t.ctid AS tid, t.{} AS rec").format(sql.Identifier(t.key))
    rows = 0
    for chunk in range(chunks):
        due = sql.SQL("SELECT * FROM ({}) c").format(
            sel.candidates(lambda _: columns, not_held=True, chunked=sel.chunked(chunks))
        )
        params = {**sel.params, **sel.chunk_params(chunk, chunks)}
        with transaction(conn, statement_timeout=opts.compute_timeout) as cur:
            if chunk == 0:
                cur.execute(sql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(WORK))
            if chunks == 1:
                cur.execute(sql.SQL("CREATE TEMP TABLE {} AS {} ORDER BY rel, tid").format(WORK, due), params)
            else:
                if chunk == 0:  # the columns' types, then every chunk alike (ordered by ``order``)
                    cur.execute(sql.SQL("CREATE TEMP TABLE {} AS {} WITH NO DATA").format(WORK, due), params)
                cur.execute(sql.SQL("INSERT INTO pg_temp.{} {}").format(WORK, due), params)
            rows += cur.rowcount
    if chunks > 1 and rows:
        order(runner)
    log.info("rule %s: %d row(s) due and not held, computed in %d chunk(s)", t.rule.id, rows, chunks)
    [(pages,)] = runner.read(
        sql.SQL("SELECT pg_relation_size({}) / current_setting('block_size')::int").format(
            sql.Literal(f"pg_temp.{WORK_TABLE}")
        )
    )
    return rows, int(pages)


def order(runner: BatchRunner) -> None:
    """Put the chunked work table in (rel, tid) order: one sort of the work table alone (three
    narrow columns), never of the rule's table.

    Why the order: slices are ranges of the work table's pages, so ordered, each slice is a
    range of the heap, each heap page is written by one batch, a slice mostly spans one
    partition, and its evidence step names a tid range no other step overlaps. Unordered, the
    N chunks' runs would make every batch touch pages all over the table (N visits per page)."""
    with transaction(runner.conn, statement_timeout=runner.opts.compute_timeout) as cur:
        cur.execute(sql.SQL("ALTER TABLE pg_temp.{} RENAME TO {}").format(WORK, _RUNS))
        cur.execute(sql.SQL("CREATE TEMP TABLE {} AS SELECT * FROM pg_temp.{} ORDER BY rel, tid").format(WORK, _RUNS))
        cur.execute(sql.SQL("DROP TABLE pg_temp.{}").format(_RUNS))


def drop(runner: BatchRunner) -> None:
    """Drop the work table (after a rollback of whatever failed)."""
    runner.conn.rollback()
    with transaction(runner.conn) as cur:
        cur.execute(sql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(WORK))
