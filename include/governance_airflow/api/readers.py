"""Connections for the Governance page's read-only views (#13): a few kept open per API-server
process, so that a page costs its figures' statements and not a new PostgreSQL backend each time
(connecting and a cold backend's first plans cost several times the Now view's own SQL:
bench/README.md, "The Governance page").

A connection is taken only if it was made for the DSN the Airflow connection ``governance_db``
gives (looked up again after ``DSN_FOR``: in an API server the lookup may be a query of Airflow's
metadata database, so an edited connection is picked up within seconds, not on each page) and,
after ``PING_AFTER`` idle, still answers (``SELECT 1``: a restarted server). Connections are
read-only sessions (``default_transaction_read_only``: a view cannot write) in autocommit, their
transactions REPEATABLE READ (``default_transaction_isolation``). A view reads through
``one_statement`` when its figures are one statement (PostgreSQL runs it as a transaction of its
own, one snapshot: one round trip, where psycopg2 would send BEGIN and ROLLBACK as two more; a
second statement is refused), else through ``one_snapshot`` (one read-only transaction, rolled
back: its statements read one snapshot). A connection goes back only idle, in autocommit, and is
closed on any error. Writes (the verify button, the request API) open their own connection per call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psycopg2
from psycopg2.extensions import ISOLATION_LEVEL_REPEATABLE_READ, TRANSACTION_STATUS_IDLE, cursor

from governance.db import transaction

if TYPE_CHECKING:
    from psycopg2.extensions import connection

KEEP = 4  # idle connections kept; the API server runs sync routes on a thread pool
PING_AFTER = 10.0  # seconds idle after which a connection is checked before use
DSN_FOR = 10.0  # seconds a looked-up DSN is used before the Airflow connection is read again


class ReadPool:
    def __init__(self, dsn: Callable[[], str], connect: Callable[[str], connection], keep: int = KEEP) -> None:
        self._dsn = dsn
        self._connect = connect
        self._keep = keep
        self._idle: list[tuple[str, float, connection]] = []
        self._lock = threading.Lock()
        self._looked_up: tuple[float, str] | None = None  # (when, DSN)

    @contextmanager
    def connection(self) -> Iterator[connection]:
        dsn = self._current_dsn()
        conn = self._take(dsn)
        try:
            yield conn
        except BaseException:
            conn.close()
            raise
        self._give(dsn, conn)

    def _current_dsn(self) -> str:
        looked_up = self._looked_up
        if looked_up is not None and time.monotonic() - looked_up[0] < DSN_FOR:
            return looked_up[1]
        dsn = self._dsn()
        self._looked_up = (time.monotonic(), dsn)
        return dsn

    def _take(self, dsn: str) -> connection:
        while True:
            with self._lock:
                made_for, since, conn = self._idle.pop() if self._idle else (dsn, 0.0, None)
            if conn is None:
                conn = self._connect(dsn)
                conn.set_session(isolation_level=ISOLATION_LEVEL_REPEATABLE_READ, readonly=True, autocommit=True)
                return conn
            if made_for == dsn and (time.monotonic() - since < PING_AFTER or _answers(conn)):
                return conn
            conn.close()

    def _give(self, dsn: str, conn: connection) -> None:
        if not conn.closed and conn.autocommit and conn.info.transaction_status == TRANSACTION_STATUS_IDLE:
            with self._lock:
                if len(self._idle) < self._keep:
                    self._idle.append((dsn, time.monotonic(), conn))
                    return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for _, _, conn in idle:
            conn.close()


class _OneStatement(cursor):
    """A cursor that runs one statement: a second would read another snapshot."""

    ran = False

    def execute(self, query: Any, vars: Any = None) -> None:
        if self.ran:
            raise RuntimeError("a one-statement read ran a second statement: read it through one_snapshot")
        self.ran = True
        super().execute(query, vars)


@contextmanager
def one_statement(conn: connection) -> Iterator[cursor]:
    """A cursor for a view whose figures are one statement, run in the pool's autocommit: one
    snapshot and one round trip (no BEGIN, no ROLLBACK)."""
    with conn.cursor(cursor_factory=_OneStatement) as cur:
        yield cur


@contextmanager
def one_snapshot(conn: connection) -> Iterator[cursor]:
    """A cursor for a view of several statements: one read-only REPEATABLE READ transaction (the
    session's), rolled back; the connection back in autocommit after."""
    conn.autocommit = False
    with transaction(conn, read_only=True) as cur:
        yield cur
    conn.autocommit = True


def _answers(conn: connection) -> bool:
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
        conn.rollback()
        return True
    except psycopg2.Error:
        return False
