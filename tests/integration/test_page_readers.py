"""The Governance page's kept-open read connections (``governance_airflow.api.readers``, #13)
against a real PostgreSQL: reused when idle and alive, replaced when the server ended them or the
Airflow connection now names another database, closed after an error, never more than kept; a
one-statement read runs one statement without a transaction around it, a view of several reads one
snapshot, and neither can write."""

from __future__ import annotations

import psycopg2
import pytest

from governance.db import connect
from governance_airflow.api import readers
from governance_airflow.api.readers import ReadPool, one_snapshot, one_statement

pytestmark = pytest.mark.integration


@pytest.fixture
def pool(db_url):
    current = {"dsn": db_url}
    opened: list = []

    def open_(dsn: str):
        conn = connect(dsn)
        opened.append(conn)
        return conn

    readers = ReadPool(dsn=lambda: current["dsn"], connect=open_, keep=2)
    readers.current, readers.opened = current, opened  # type: ignore[attr-defined]
    yield readers
    readers.close()


def backend_pid(pool: ReadPool) -> int:
    with pool.connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        pid = int(cur.fetchone()[0])
        conn.rollback()
    return pid


def test_an_idle_connection_is_reused(pool):
    assert backend_pid(pool) == backend_pid(pool)
    assert len(pool.opened) == 1


def test_a_connection_the_server_ended_is_replaced(pool, conn, monkeypatch):
    monkeypatch.setattr(readers, "PING_AFTER", 0.0)  # checked before every use
    first = backend_pid(pool)
    with conn.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s)", (first,))
    conn.commit()
    assert backend_pid(pool) != first
    assert len(pool.opened) == 2


def test_an_edited_airflow_connection_is_picked_up(pool, make_database, monkeypatch):
    monkeypatch.setattr(readers, "DSN_FOR", 0.0)  # looked up before every use
    first = backend_pid(pool)
    pool.current["dsn"] = make_database(apply=False)
    with pool.connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT current_database()")
        assert cur.fetchone()[0] == psycopg2.extensions.parse_dsn(pool.current["dsn"])["dbname"]
        conn.rollback()
    assert pool.opened[0].closed and backend_pid(pool) != first


def test_the_airflow_connection_is_read_again_only_after_dsn_for(pool, make_database, monkeypatch):
    first = backend_pid(pool)
    pool.current["dsn"] = make_database(apply=False)
    assert backend_pid(pool) == first  # within DSN_FOR: the DSN looked up before still serves
    monkeypatch.setattr(readers, "DSN_FOR", 0.0)
    assert backend_pid(pool) != first


def test_connections_are_read_only_sessions(pool):
    with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
        with pool.connection() as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE page_may_not_write (x int)")


def test_a_connection_is_closed_after_an_error_and_not_kept_in_a_transaction(pool):
    with pytest.raises(psycopg2.errors.UndefinedTable):
        with pool.connection() as conn, conn.cursor() as cur:
            cur.execute("SELECT * FROM no_such_table")
    assert pool.opened[0].closed
    with pool.connection() as conn, conn.cursor() as cur:
        cur.execute("BEGIN; SELECT 1")  # left inside a transaction: not given back
    assert pool.opened[1].closed
    with pool.connection() as conn:
        conn.autocommit = False  # left out of autocommit: its next statement would open a transaction
    assert pool.opened[2].closed


def test_no_more_than_keep_are_kept(pool):
    with pool.connection(), pool.connection(), pool.connection():
        pass
    assert len(pool.opened) == 3 and sum(c.closed for c in pool.opened) == 1


def test_a_one_statement_read_runs_one_statement_in_autocommit_and_cannot_write(pool):
    with pytest.raises(RuntimeError, match="second statement"):
        with pool.connection() as conn, one_statement(conn) as cur:
            cur.execute("SELECT pg_current_xact_id_if_assigned() IS NULL, current_setting('transaction_isolation')")
            assert cur.fetchone() == (True, "repeatable read")
            assert conn.autocommit and conn.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_IDLE
            cur.execute("SELECT 1")  # a second statement would read another snapshot
    assert pool.opened[0].closed  # the error closed it
    with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
        with pool.connection() as conn, one_statement(conn) as cur:
            cur.execute("CREATE TABLE page_may_not_write (x int)")
    with pool.connection() as conn, one_statement(conn) as cur:
        cur.execute("SELECT 1")
    assert not pool.opened[2].closed and pool.opened[2].info.transaction_status == (
        psycopg2.extensions.TRANSACTION_STATUS_IDLE
    )  # kept, idle
    assert backend_pid(pool) == pool.opened[2].info.backend_pid


def test_a_view_of_several_statements_reads_one_snapshot_and_goes_back_in_autocommit(pool, conn):
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE page_snapshot (x int)")
    conn.commit()
    with pool.connection() as reader, one_snapshot(reader) as cur:
        cur.execute("SELECT count(*) FROM page_snapshot")
        assert cur.fetchone()[0] == 0
        with conn.cursor() as writer:
            writer.execute("INSERT INTO page_snapshot VALUES (1)")
        conn.commit()
        cur.execute("SELECT count(*) FROM page_snapshot")
        assert cur.fetchone()[0] == 0  # the first statement's snapshot
    assert reader.autocommit and reader.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_IDLE
    with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
        with pool.connection() as reader, one_snapshot(reader) as cur:
            cur.execute("INSERT INTO page_snapshot VALUES (2)")
    assert pool.opened[0].closed  # the failed write closed it
    with pool.connection() as reader, one_snapshot(reader) as cur:
        cur.execute("SELECT count(*) FROM page_snapshot")
        assert cur.fetchone()[0] == 1
    assert pool.opened[1].autocommit and pool.opened[1].info.transaction_status == (
        psycopg2.extensions.TRANSACTION_STATUS_IDLE
    )
