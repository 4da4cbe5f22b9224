"""Loading a measurement's generated rows into a database of its own as bench/export_shop.py loads
the shop: the secondary indexes (and the keys no foreign key references) dropped and built again
once the rows are in (one sorted build each, two at a time), foreign-key triggers skipped while
loading (``session_replication_role = replica``: the generators are consistent by construction).
The indexes are the schema's own, built again by their own definitions. Set-up only.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg2.errors
from export_shop import LATER, USER_TRIGGERS
from harness import Context


def load(ctx: Context, db_url: str, tables: list[str], statements: list[tuple[str, Any]], phase: str) -> None:
    """Run ``statements`` (in order, one transaction) into ``tables`` of ``db_url`` without their indexes."""
    from governance.db import connect

    conn = connect(db_url, application_name="governance-bench-setup")
    try:
        with conn.cursor() as cur:
            cur.execute(USER_TRIGGERS, (tables,))
            if cur.fetchone()[0]:
                raise RuntimeError(f"{', '.join(tables)} have INSERT triggers; the bench's bulk loader skips them")
            cur.execute(LATER, (tables, tables))
            later = [(table, drop, make) for table, drop, make in cur.fetchall()]
            for _, drop, _ in later:
                cur.execute(drop)
        conn.commit()
        with ctx.setup_phase(f"{phase}: load"), conn.cursor() as cur:
            try:  # no foreign-key triggers while loading (superuser only; else they run)
                cur.execute("SET LOCAL session_replication_role = replica")
            except psycopg2.errors.InsufficientPrivilege:
                conn.rollback()
            for statement, params in statements:
                cur.execute(statement, params)
            conn.commit()
    finally:
        conn.close()
    with ctx.setup_phase(f"{phase}: indexes"):
        _build(db_url, [make for table, _, make in sorted(later, key=lambda x: tables.index(x[0]))], ctx.cores)


def _build(db_url: str, statements: list[str], workers: int) -> None:
    from governance.db import connect

    def one(statement: str) -> None:
        own = connect(db_url, application_name="governance-bench-setup")
        try:
            with own.cursor() as cur:
                cur.execute(statement)
            own.commit()
        finally:
            own.close()

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(one, statements))
