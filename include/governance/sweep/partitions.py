"""Range partitions of a table partitioned on its clock (shop.visits, hourly, RET-1).

A partition whose upper bound has expired holds only expired rows (the expiry is monotonic in
the clock), so it is dropped whole: no row-wise delete, no dead tuples, no VACUUM. Only the
partition the cut-off falls into (and the default partition, whose contents are unknown) is
deleted row-wise; partitions whose lower bound has not expired hold nothing due and are not
even read. Partitions are created ahead of time with ``governance.ensure_hourly_partitions``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg2.errors
from psycopg2 import sql
from psycopg2.extensions import connection

from governance.db import transaction
from governance.sweep.target import split_name
from governance.windows import Window, as_utc


@dataclass(frozen=True)
class Partition:
    schema: str
    name: str
    is_default: bool
    fully_expired: bool  # upper bound + window <= now: every row is due
    none_expired: bool  # lower bound + window > now: no row is due
    oid: int = 0
    # lower bound / width (whole units of the partition's own width since the epoch): consecutive
    # partitions have consecutive ordinals (sharded sweeps, ``governance.sweep.shards``); None: default
    ordinal: int | None = None

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


def list_partitions(conn: connection, table: str, now: datetime, window: Window) -> list[Partition]:
    """Leaf partitions of ``table`` with what the bounds say about expiry (in SQL, UTC arithmetic).

    The table is locked ACCESS SHARE first (until the caller's transaction ends): a partition
    being dropped (by a shard beside this one) is then gone or still whole when the catalogue is
    read, never half dropped ("could not open relation" from pg_get_expr)."""
    schema, name = split_name(table)
    with conn.cursor() as cur:
        cur.execute(sql.SQL("LOCK TABLE ONLY {} IN ACCESS SHARE MODE").format(sql.Identifier(schema, name)))
        cur.execute(
            r"""
            WITH p AS (
                SELECT c.oid, n.nspname, c.relname, c.relkind, pg_get_expr(c.relpartbound, c.oid) AS bound
                FROM pg_inherits i
                JOIN pg_class c ON c.oid = i.inhrelid
                JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE i.inhparent = (SELECT pc.oid FROM pg_class pc JOIN pg_namespace pn ON pn.oid = pc.relnamespace
                                     WHERE pn.nspname = %(schema)s AND pc.relname = %(name)s)
            ), b AS (
                SELECT *, (regexp_match(bound, 'FROM \(''([^'']*)''\)'))[1]::timestamptz AS lower_bound,
                          (regexp_match(bound, 'TO \(''([^'']*)''\)'))[1]::timestamptz AS upper_bound
                FROM p
            )
            SELECT nspname, relname, relkind, bound = 'DEFAULT',
                   coalesce(((upper_bound AT TIME ZONE 'UTC') + %(w)s::interval) AT TIME ZONE 'UTC' <= %(now)s, false),
                   coalesce(((lower_bound AT TIME ZONE 'UTC') + %(w)s::interval) AT TIME ZONE 'UTC' > %(now)s, false),
                   oid::bigint,
                   floor(extract(epoch FROM lower_bound)
                         / nullif(extract(epoch FROM upper_bound - lower_bound), 0))::bigint
            FROM b ORDER BY lower_bound NULLS FIRST, relname
            """,
            {"schema": schema, "name": name, "w": window.iso, "now": as_utc(now)},
        )
        rows = cur.fetchall()
    partitions = []
    for nsp, rel, relkind, is_default, fully, none, oid, ordinal in rows:
        if relkind == "p":
            raise NotImplementedError(f"{table}: sub-partition {nsp}.{rel} is not supported by the sweep")
        partitions.append(
            Partition(
                nsp,
                rel,
                is_default,
                fully and not is_default,
                none and not is_default,
                int(oid),
                None if ordinal is None else int(ordinal),
            )
        )
    return partitions


def ensure_ahead(
    conn: connection, table: str, now: datetime, *, behind: timedelta, ahead: timedelta, lock_timeout: str
) -> tuple[int, list[str]]:
    """Create the hourly partitions for [now - behind, now + ahead); returns (created, hours that
    could not be created because the default partition holds rows of that hour)."""
    start = as_utc(now).replace(minute=0, second=0, microsecond=0) - behind
    end = as_utc(now) + ahead
    created = _ensure_hourly(conn, table, start, end, lock_timeout)
    if created is not None:
        return created, []
    # Some hour has rows in the default partition: create hour by hour, keep going.
    created, conflicts, hour = 0, list[str](), start
    while hour < end:
        made = _ensure_hourly(conn, table, hour, hour + timedelta(hours=1), lock_timeout)
        if made is None:
            conflicts.append(hour.strftime("%Y%m%d%H"))
        created += made or 0
        hour += timedelta(hours=1)
    return created, conflicts


def _ensure_hourly(conn: connection, table: str, start: datetime, end: datetime, lock_timeout: str) -> int | None:
    """Partitions created for [start, end) in one transaction; None when the default partition
    holds rows of those hours (nothing created)."""
    try:
        with transaction(conn, lock_timeout=lock_timeout) as cur:
            cur.execute("SELECT governance.ensure_hourly_partitions(%s::regclass, %s, %s)", (table, start, end))
            row = cur.fetchone()
    except psycopg2.errors.CheckViolation:
        return None
    return int(row[0]) if row else 0
