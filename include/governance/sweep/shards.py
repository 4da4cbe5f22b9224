"""Sharded sweeps (#14): a rule whose due set is large is cut into N shards that run apart (mapped
tasks on any worker, or ``governance sweep --shards N --shard K``); this module plans them.

A shard is one of three kinds, by what the rule's table allows:

- ``blocks``: a column clock on a plain table (cookie preferences, RET-6): shard k takes the heap
  pages [k*P, (k+1)*P) of the table's P*N pages when planned; the last shard runs to the end (pages
  added since);
- ``chunks``: a clock view with an integer ``chunk`` column (RET-3 orders): shard k takes the
  records whose chunk is in class k of N (``selection.shard_chunk``), whatever the table's size;
- ``partitions``: a table range-partitioned on its column clock (RET-1 visits): shard k takes the
  partitions whose ordinal (lower bound / width) is k mod N, and the default partition goes to
  shard 0, so consecutive partitions go round the shards and a partition keeps its shard.

Other rules (a view without ``chunk``, a table several rules share, an object purge, a clock kept
per group: ``clock.kept``, RET-3 as the shop's policy has it, whose due set already costs time in
proportion to the groups due, ADR 0011) are one shard,
``whole``: swept by ``sweep_rule`` as before. N defaults to the table's heap pages per
PAGES_PER_SHARD, at most DEFAULT_MAX; a partitioned table's default is also at most its partitions
whose rows are deleted one batch at a time (bounded, due, but not wholly expired: the one the
cut-off falls into; the default partition goes with shard 0 whatever N is): dropping whole
partitions takes the parent's lock in turn, so shards that only drop run one after another and add
their set-up (bench/README.md, "Sharded sweeps"). An explicit N still cuts them, for held
partitions that are batch-deleted instead of dropped. Shards
are plain data (rule id, index, count, kind, page bounds), fit for an XCom.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from psycopg2.extensions import connection

from governance.db import transaction
from governance.errors import OptionError
from governance.policy import Policy
from governance.sweep.options import MAX_SHARDS
from governance.sweep.partitions import Partition, list_partitions
from governance.sweep.target import Target, load_target

PAGES_PER_SHARD = 16_384  # heap pages (128 MiB) per shard by default
DEFAULT_MAX = 8  # a rule is cut into at most this many shards by default (an explicit N: up to MAX_SHARDS)
KINDS = ("whole", "blocks", "chunks", "partitions")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` of a rule; ``bounds`` holds a blocks shard's heap pages."""

    rule_id: str
    index: int
    count: int
    kind: str
    bounds: dict[str, int | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_shard(self.index, self.count)
        if self.kind not in KINDS:
            raise OptionError(f"shard kind must be one of {', '.join(KINDS)}, got {self.kind!r}")

    @property
    def label(self) -> str:
        """``k/N``: how evidence and logs name the shard."""
        return f"{self.index}/{self.count}"

    @property
    def lo(self) -> int:
        return int(self.bounds.get("lo") or 0)

    @property
    def hi(self) -> int | None:
        hi = self.bounds.get("hi")
        return None if hi is None else int(hi)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Shard:
        return cls(str(data["rule_id"]), int(data["index"]), int(data["count"]), str(data["kind"]), data["bounds"])


def check_shard(index: int, count: int) -> None:
    """Refuse a shard count below 1 or above MAX_SHARDS, and an index outside 0..count-1."""
    if not 1 <= count <= MAX_SHARDS:
        raise OptionError(f"the number of shards must be from 1 to {MAX_SHARDS}, got {count}")
    if not 0 <= index < count:
        raise OptionError(f"shard {index} does not exist: the shards of {count} are 0 to {count - 1}")


def shard_kind(target: Target) -> str:
    """How the rule's due set can be cut (see the module docstring); ``whole`` when it cannot."""
    if target.purges_objects or target.shared or target.kept is not None:
        return "whole"
    if target.drops_partitions:
        return "partitions"
    if target.direct_clock is not None and not target.partitioned:
        return "blocks"
    if target.chunked and not target.partitioned:
        return "chunks"
    return "whole"


def default_count(pages: int, pages_per_shard: int = PAGES_PER_SHARD, cap: int = DEFAULT_MAX) -> int:
    """N from the table's heap pages: one shard per ``pages_per_shard`` (rounded), 1 to ``cap``."""
    return max(1, min(cap, round(pages / max(1, pages_per_shard))))


def block_bounds(pages: int, count: int) -> list[dict[str, int | None]]:
    """[lo, hi) heap pages of each of ``count`` blocks shards of a table of ``pages`` pages; the last
    shard's hi is None (to the end). Every page is in exactly one shard."""
    per = max(1, math.ceil(pages / count))
    bounds: list[dict[str, int | None]] = []
    for k in range(count):
        lo = min(k * per, pages)
        bounds.append({"lo": lo, "hi": None if k == count - 1 else min((k + 1) * per, pages)})
    return bounds


def partitions_default(parts: list[Partition], count: int) -> int:
    """The default N of a partitioned table: ``count`` at most, and at most its bounded partitions
    whose rows are deleted in batches (due, not wholly expired); 1 when it only drops partitions."""
    batched = sum(1 for p in parts if not p.is_default and not p.none_expired and not p.fully_expired)
    return max(1, min(count, batched))


def partition_shard(part: Partition, count: int) -> int:
    """The shard of a partition: its ordinal mod N; the default partition's is 0."""
    return 0 if part.ordinal is None else part.ordinal % count


def plan_shards(
    conn: connection, policy: Policy, rule_id: str, now: datetime, shards: int | None = None
) -> list[Shard]:
    """The shards of a rule at ``now``: ``shards`` of them (None or 0: the default from the table's
    size), one ``whole`` shard when the rule cannot be cut. Reads the catalogue only; ends its
    transactions."""
    if shards is not None and shards != 0:
        check_shard(0, shards)
    try:
        target = load_target(conn, policy, rule_id)
        kind = shard_kind(target)
        if kind == "whole":
            return [Shard(rule_id, 0, 1, "whole")]
        pages = table_pages(conn, target)
        count = shards or default_count(pages)
        if kind == "partitions" and not shards:
            with transaction(conn):
                parts = list_partitions(conn, target.table, now, target.window)
            count = partitions_default(parts, count)
    finally:
        conn.rollback()
    if count == 1:
        return [Shard(rule_id, 0, 1, "whole")]
    if kind == "blocks":
        return [Shard(rule_id, k, count, kind, b) for k, b in enumerate(block_bounds(pages, count))]
    return [Shard(rule_id, k, count, kind) for k in range(count)]


def table_pages(conn: connection, target: Target) -> int:
    """Heap pages of the table now (of its leaf partitions, for a partitioned table)."""
    with transaction(conn) as cur:
        cur.execute(
            "SELECT CASE WHEN c.relkind = 'p' THEN (SELECT coalesce(sum(pg_relation_size(p.relid)), 0) "
            "FROM pg_partition_tree(c.oid) p WHERE p.isleaf) ELSE pg_relation_size(c.oid) END "
            "/ current_setting('block_size')::int FROM pg_class c WHERE c.oid = %s::regclass",
            (target.table,),
        )
        row = cur.fetchone()
    return int(row[0]) if row else 0
