"""The audit run's scratch schema ``governance_audit_<key>``: created, owned, dropped.

It holds each predicate file's findings and the object listings of one run: unlogged (nothing to
recover after a crash), readable by GX's own connection once committed. A session advisory lock
(namespace, key) owns it, so the next audit can tell a crashed audit's leftovers, which it drops,
from a running one's, which it leaves alone.
"""

from __future__ import annotations

import uuid

from psycopg2 import sql
from psycopg2.extensions import connection, cursor

from governance.db import advisory_key, transaction

SCRATCH_PREFIX = "governance_audit_"
SCRATCH_LOCK_NAMESPACE = 0x60FE_00A1


def drop_stale_scratch(cur: cursor) -> list[str]:
    """Drop the scratch schemas of audits that are no longer running (their session, and so their
    advisory lock, is gone: a killed worker). A running audit's schema is left alone."""
    cur.execute("SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s) ORDER BY 1", (SCRATCH_PREFIX,))
    dropped = []
    for (name,) in cur.fetchall():
        key = advisory_key(name[len(SCRATCH_PREFIX) :])
        cur.execute("SELECT pg_try_advisory_lock(%s, %s)", (SCRATCH_LOCK_NAMESPACE, key))
        row = cur.fetchone()
        if row is not None and row[0]:
            cur.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
            cur.execute("SELECT pg_advisory_unlock(%s, %s)", (SCRATCH_LOCK_NAMESPACE, key))
            dropped.append(name)
    return dropped


class Scratch:
    """One audit run's scratch schema on ``conn``, the connection that holds its lock."""

    def __init__(self, conn: connection):
        self.conn = conn
        self.key = uuid.uuid4().hex[:16]
        self.schema = SCRATCH_PREFIX + self.key
        self.lock_key = advisory_key(self.key)
        self.created = False

    def table(self, name: str) -> sql.Identifier:
        return sql.Identifier(self.schema, name)

    def create(self, object_tables: list[str]) -> None:
        """Drop stale schemas, then lock and create this run's, with one listing table per name."""
        with transaction(self.conn) as cur:
            drop_stale_scratch(cur)
            # The lock first, then the schema: another audit's clean-up never sees it unowned.
            cur.execute("SELECT pg_advisory_lock(%s, %s)", (SCRATCH_LOCK_NAMESPACE, self.lock_key))
            self.created = True
            cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.schema)))
            for name in object_tables:
                cur.execute(
                    sql.SQL(
                        "CREATE UNLOGGED TABLE {} (bucket text NOT NULL, object_key text NOT NULL, "
                        "last_modified timestamptz NOT NULL)"
                    ).format(self.table(name))
                )

    def drop(self) -> None:
        """Drop the schema and release its lock; whatever happened before (never raises)."""
        if not self.created:
            return
        try:
            self.conn.rollback()
            with transaction(self.conn) as cur:
                cur.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema)))
                cur.execute("SELECT pg_advisory_unlock(%s, %s)", (SCRATCH_LOCK_NAMESPACE, self.lock_key))
        except Exception:  # a broken connection: its lock is gone, the next audit drops the schema
            pass
