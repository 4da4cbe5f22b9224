"""The sweep's knobs: every choice and default defined once, typed, and validated where made.

The CLI flags (``governance sweep``/``plan``) and the ``retention_sweep`` DAG params are derived
from these names, choices and defaults; bench/README.md has the figures that chose the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal, get_args

from governance.errors import OptionError

__all__ = ["DEFAULT_BATCH_SIZE", "MAX_SHARDS", "PARTITION_COUNTS", "STRATEGIES", "OptionError", "Options"]

# How a rule's due rows are cut into batches: "auto" lets the engine choose from the table's
# statistics (``governance.sweep.strategies.choose``); a table range-partitioned on its column clock
# always uses partitions.
Strategy = Literal["auto", "blocks", "work"]
STRATEGIES: tuple[str, ...] = get_args(Strategy)
# The rows of a fully expired partition that is dropped: "exact" counts them (count(*), reads the
# partition), "estimated" takes pg_class.reltuples and records them as rows_estimated.
PartitionCounts = Literal["exact", "estimated"]
PARTITION_COUNTS: tuple[str, ...] = get_args(PartitionCounts)

DEFAULT_BATCH_SIZE = 10_000
MAX_SHARDS = 64  # the most shards a rule may be cut into (``--shards``, the DAG's ``shards`` param; #14)


@dataclass
class Options:
    batch_size: int = DEFAULT_BATCH_SIZE  # rows per batch (block ranges: sized from rows per page)
    batch_pages: int | None = None  # or a fixed number of heap pages per block-range batch
    statement_timeout: str = "30s"  # per batch statement: a batch never runs away
    # Per statement of a batch whose strategy sizes batches by time (a kept clock's, RET-3): one that
    # overruns it (a checkpoint, a burst of the shop's writes) is rolled back and tried again at half
    # its size, so no write transaction holds its row locks for a second. A batch of one group or
    # one page is never cut (``statement_timeout`` bounds it).
    batch_time_limit: str = "700ms"
    lock_timeout: str = "2s"  # a batch never queues long behind, or in front of, the shop's locks
    compute_timeout: str = "30min"  # the read-only pass that computes a work table
    # A clock view with a ``chunk`` column: its due set is computed in ceil(table rows / chunk_rows)
    # transactions; ``chunks`` forces N.
    chunk_rows: int = 175_000
    chunks: int | None = None
    strategy: Strategy = "auto"
    partitions_behind: timedelta = timedelta(hours=1)
    partitions_ahead: timedelta = timedelta(hours=48)
    lock_wait: float = 0.0  # seconds to wait for another sweep of the same rule; 0 = skip at once
    # Delete/anonymise batches commit without waiting for the WAL flush: a server crash can lose the
    # last few batches, effect and evidence together (one transaction), and the next run redoes them.
    # The purge protocol's tombstones and the rule summary always commit durably.
    synchronous_commit: bool = False
    partition_counts: PartitionCounts = "exact"

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise OptionError(f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if self.partition_counts not in PARTITION_COUNTS:
            raise OptionError(
                f"partition_counts must be one of {', '.join(PARTITION_COUNTS)}, got {self.partition_counts!r}"
            )
        if self.batch_size < 1:
            raise OptionError(f"batch_size must be a whole number of at least 1, got {self.batch_size!r}")
