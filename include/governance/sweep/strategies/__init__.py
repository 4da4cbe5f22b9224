"""Sweep strategies, looked up by name: how a rule's due rows are cut into batches.

- ``blocks``: a column clock evaluated on each row, over ranges of heap pages (``blocks.py``);
- ``work``: the due set computed once into a temporary table, removed by TID (``work.py``);
- ``partitions``: whole expired partitions dropped, row-wise where the cut-off falls
  (``partitions.py``), for a table range-partitioned on its column clock;
- ``kept``: batches of due groups of a clock kept per group in a table (``kept.py``, RET-3).

``choose`` picks one for a rule: partitions when the table allows, kept for a kept clock, else the option, else blocks
for a column clock with many rows due (one pass, no sort) and work otherwise.
"""

from __future__ import annotations

from typing import Any, cast

from psycopg2 import sql
from psycopg2.extensions import cursor

from governance.errors import UnknownChoice
from governance.sweep.options import Options
from governance.sweep.selection import Selection
from governance.sweep.strategies.base import Strategy
from governance.sweep.strategies.blocks import BlockRanges
from governance.sweep.strategies.kept import KeptGroups
from governance.sweep.strategies.partitions import PartitionDrops
from governance.sweep.strategies.work import WorkTable
from governance.sweep.target import ident

STRATEGIES: dict[str, type[Strategy]] = {s.name: s for s in (BlockRanges, WorkTable, PartitionDrops, KeptGroups)}
DENSE_FRACTION = 0.05  # a column clock with at least this share due is swept by blocks, else by work

__all__ = ["DENSE_FRACTION", "STRATEGIES", "Strategy", "choose", "strategy_named"]


def strategy_named(name: str) -> type[Strategy]:
    """The strategy class of that name; an unknown name is an ``UnknownChoice`` listing the valid ones."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise UnknownChoice("sweep strategy", name, list(STRATEGIES)) from None


def choose(cur: cursor, sel: Selection, opts: Options) -> str:
    """The strategy for the selection's rule (see the module docstring)."""
    target = sel.target
    if target.drops_partitions:
        return PartitionDrops.name
    if target.kept is not None:
        return KeptGroups.name
    if target.direct_clock is None:
        return WorkTable.name
    if opts.strategy != "auto":
        return opts.strategy
    cur.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", (target.table,))
    row = cur.fetchone()
    total = row[0] if row else None
    if total is None or total <= 0:
        return BlockRanges.name  # never analysed: a pass over a table too new to have statistics is cheap
    cur.execute(
        sql.SQL("EXPLAIN (FORMAT JSON) SELECT 1 FROM {} t WHERE t.{} <= %(index_bound)s").format(
            ident(target.table), sql.Identifier(target.direct_clock)
        ),
        sel.params,
    )
    plan = cast(list[dict[str, Any]], cast(tuple[Any, ...], cur.fetchone())[0])
    estimate = plan[0]["Plan"]["Plan Rows"]
    return BlockRanges.name if estimate >= DENSE_FRACTION * total else WorkTable.name
