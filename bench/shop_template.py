"""The export shop (bench/export_shop.py) built once per run, as a template database, and a copy of
it for each measurement that needs it (exports, erasure, erasure_replay).

The template is built, settled (``VACUUM (ANALYZE)``), analysed and checkpointed as each measurement
used to build its own; then nobody connects to it again. Each measurement gets a copy of its own
(``CREATE DATABASE ... TEMPLATE ... STRATEGY FILE_COPY``: the files as they are, hint bits,
visibility maps and statistics included), so no measurement sees another's changes, and every
contender of a measurement runs on the same copy (or on copies of the same template), as before.
The copies are set-up time ("shop copies: NAME"); the template is dropped at the end of
the run (``drop``). The run builds the template beside the data sets (``build_beside``), before
any measurement. One template per size: at small scales the measurements' minimum sizes differ.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import export_shop
import services
from harness import Context, analyze_all, checkpoint
from psycopg2 import sql

PHASE = "shop template"
_built: dict[str, dict[str, int]] = {}  # template database -> rows per table, once built
_created: set[str] = set()  # every template database created (dropped at the end, built or not)
_consumed: set[str] = set()  # templates dropped after their last copy (``copy(last=True)``)


@dataclass(frozen=True)
class ShopCopy:
    """One measurement's copy of the shop: where it is and what the template holds."""

    db_url: str
    name: str
    customers: int
    rows: dict[str, int]


def template_name(ctx: Context, customers: int) -> str:
    """One template per size (small scales give measurements different minimum sizes)."""
    return f"{ctx.db_name}_shop_{customers}"


def ensure(ctx: Context, customers: int) -> dict[str, int]:
    """Build the template of ``customers`` customers unless this run has built it; rows per table."""
    from governance.db import apply_schema, connect

    name = template_name(ctx, customers)
    if name in _consumed:
        raise RuntimeError(f"the shop template {name} was dropped after its last copy: a later measurement needs it")
    if name in _built:
        return _built[name]
    if name in _created:
        raise RuntimeError(f"the shop template {name} failed to build earlier in this run")
    with ctx.setup_phase(PHASE):
        admin = services.admin(ctx.admin_url)
        with admin.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        admin.close()
        _created.add(name)
        url = services.with_database(ctx.admin_url, name)
        sub = Context(ctx.scale, ctx.admin_url, url, name, ctx.s3_url, ctx.now, ctx.policy, setup=ctx.setup)
        conn = connect(url)
        apply_schema(conn, ctx.policy)
        ctx.log(f"shop template: building a shop of {customers:,} customers (once per run)")
        rows = export_shop.build(sub, conn, customers, phase=PHASE)
        export_shop.settle(sub, phase=PHASE)
        with ctx.setup_phase(f"{PHASE}: checkpoint"):
            analyze_all(conn)
            checkpoint(conn)
        conn.close()
    _built[name] = rows
    return rows


def build_beside(ctx: Context, sizes: list[int]) -> None:
    """Build the templates of ``sizes`` (customers) now, on a thread of its own beside the data sets'
    set-up (bench/run.py ``prepare``). A failure is printed and left to the measurements that copy
    the template: ``ensure`` refuses a template that failed, and each of them reports it."""
    for customers in sizes:
        try:
            ensure(ctx, customers)
        except Exception:  # noqa: BLE001 - reported by every measurement that needs the template
            traceback.print_exc()
            ctx.log(f"shop template of {customers:,} customers: FAILED (the measurements that copy it will say so)")


@contextmanager
def copy(ctx: Context, suffix: str, customers: int, *, last: bool = False) -> Iterator[ShopCopy]:
    """A copy of the template (built first if need be) as ``<run database>_<suffix>``; dropped after.
    ``last``: no measurement after this one needs the template, so it is dropped as soon as it is
    copied (at scale 10 a template and a copy of 10,000,000 customers take ~70 GB: the disk of these
    machines does not hold a template and a copy that grows)."""
    rows = ensure(ctx, customers)
    name = f"{ctx.db_name}_{suffix}"
    template = template_name(ctx, customers)
    with ctx.setup_phase("shop copies"), ctx.setup_phase(f"shop copies: {suffix}"):
        url = services.clone_database(ctx.admin_url, template, name)
    if last:
        _created.discard(template)
        _consumed.add(template)
        services.drop_database(ctx.admin_url, template)
    try:
        yield ShopCopy(url, name, customers, rows)
    finally:
        services.drop_database(ctx.admin_url, name)


def drop(ctx: Context) -> None:
    """Drop the templates this run built."""
    prefix = f"{ctx.db_name}_shop_"
    for name in sorted(n for n in _created if n.startswith(prefix)):
        _created.discard(name)
        _built.pop(name, None)
        services.drop_database(ctx.admin_url, name)
