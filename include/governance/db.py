"""Database connections, short transactions and the idempotent schema.

Every connection runs in UTC (RET-10: calendar arithmetic in UTC). ``transaction`` is the one way
library code opens a unit of work: its timeouts, read-only mode and durability in one round trip,
commit on success, rollback on any error. ``apply_schema`` creates or updates the shop, the
governance schema and the clock views in one transaction, under an advisory lock, so it can run at
every start and from several processes at once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg2
import psycopg2.extensions
from psycopg2 import sql
from psycopg2.extensions import connection, cursor

from governance.errors import InfrastructureError, SettingsError
from governance.policy import SQL_DIR, Policy
from governance.settings import UNREACHABLE_SECTION, redact

SCHEMA_FILES = sorted((SQL_DIR / "schema").glob("*.sql"))
SCHEMA_LOCK_KEY = 0x60FE_0001  # pg_advisory_xact_lock key for schema changes


def split_name(qualified: str) -> tuple[str, str]:
    """``schema.name`` as the policy writes a table or view, split in two."""
    schema, _, name = qualified.partition(".")
    return schema, name


def ident(qualified: str) -> sql.Identifier:
    """A policy's ``schema.name`` as a quoted SQL identifier (CONTRIBUTING.md habit 4)."""
    return sql.Identifier(*split_name(qualified))


def advisory_key(name: str) -> int:
    """A stable signed 32-bit key for ``pg_advisory_lock(namespace, key)`` from a name (a rule id,
    an audit's scratch key)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big", signed=True)


@contextmanager
def transaction(
    conn: connection,
    *,
    read_only: bool = False,
    statement_timeout: str | None = None,
    lock_timeout: str | None = None,
    durable: bool = True,
) -> Iterator[cursor]:
    """One short transaction on ``conn`` (not in autocommit): yields a cursor; commits when the block
    ends, rolls back on any exception. ``read_only`` transactions are always rolled back (a plan, a
    verification count: nothing to keep). ``durable=False`` commits without waiting for the WAL
    flush (``synchronous_commit = off``): a server crash may lose the transaction, effect and
    evidence together, never one without the other. All settings go in one round trip."""
    settings: list[str] = []
    params: list[str] = []
    if read_only and not conn.readonly:  # a read-only session's transactions are read-only already
        settings.append("SET TRANSACTION READ ONLY")
    if statement_timeout is not None:
        settings.append("SET LOCAL statement_timeout = %s")
        params.append(statement_timeout)
    if lock_timeout is not None:
        settings.append("SET LOCAL lock_timeout = %s")
        params.append(lock_timeout)
    if not durable:
        settings.append("SET LOCAL synchronous_commit = off")
    try:
        with conn.cursor() as cur:
            if settings:
                cur.execute("; ".join(settings), params)
            yield cur
    except BaseException:
        conn.rollback()
        raise
    if read_only:
        conn.rollback()
    else:
        conn.commit()


def prepare(conn: connection) -> connection:
    """Make a connection (ours or a PostgresHook's) run in UTC, the way every clock is computed."""
    with conn.cursor() as cur:
        cur.execute("SET TIME ZONE 'UTC'")
    conn.commit()
    return conn


def connect(url: str, *, source: str = "", application_name: str = "governance") -> connection:
    """Open a connection, or raise SettingsError (a malformed URL or DSN) or InfrastructureError (the
    server cannot be reached or refused us) naming the setting to fix; never the password."""
    where = f" (from {source})" if source else ""
    try:
        conn = psycopg2.connect(url, application_name=application_name, options="-c TimeZone=UTC", connect_timeout=10)
    except psycopg2.OperationalError as exc:
        raise InfrastructureError(
            f"database: cannot reach {redact(url)}{where}: {_first_line(exc)}. Check that PostgreSQL is running "
            f"and the host, port and credentials; see {UNREACHABLE_SECTION}"
        ) from None
    except psycopg2.Error as exc:  # libpq refused the text itself (ProgrammingError: invalid dsn)
        raise SettingsError(
            f"database: {redact(url)}{where} is not a PostgreSQL URL or DSN ({_first_line(exc)}); write e.g. "
            f"postgresql://USER@HOST:5432/DB; see {UNREACHABLE_SECTION}"
        ) from None
    return conn


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return redact(text.splitlines()[0]) if text else type(exc).__name__


def apply_schema(conn: connection, policy: Policy | None = None) -> None:
    """Create or update the schema, then the clock views the policy names. Idempotent."""
    files: list[Path] = list(SCHEMA_FILES)
    if policy is not None:
        files += [SQL_DIR / name for name in policy.clock_sql_files()]
    else:
        files += sorted((SQL_DIR / "clocks").glob("*.sql"))
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
        cur.execute("CREATE SCHEMA IF NOT EXISTS governance_clocks")
        for path in files:
            cur.execute(path.read_text())
    conn.commit()
