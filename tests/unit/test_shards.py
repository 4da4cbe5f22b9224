"""Planning arithmetic of sharded sweeps (#14, ``governance.sweep.shards``): block bounds cover
every page once, the default N follows the table's size within its cap, a partition keeps its
shard, chunk classes compose, and a shard that does not exist is refused."""

from __future__ import annotations

import pytest

from governance.errors import OptionError
from governance.sweep.options import MAX_SHARDS
from governance.sweep.partitions import Partition
from governance.sweep.selection import shard_chunk
from governance.sweep.shards import (
    DEFAULT_MAX,
    PAGES_PER_SHARD,
    Shard,
    block_bounds,
    default_count,
    partition_shard,
    partitions_default,
)


@pytest.mark.parametrize("pages", [0, 1, 2, 5, 17, 100, 16_384, 100_001])
@pytest.mark.parametrize("count", [1, 2, 3, 7, 8])
def test_block_bounds_cover_every_page_once_and_the_last_runs_to_the_end(pages, count):
    bounds = block_bounds(pages, count)
    assert len(bounds) == count and bounds[0]["lo"] == 0 and bounds[-1]["hi"] is None
    for before, after in zip(bounds, bounds[1:], strict=False):
        assert before["hi"] == after["lo"]  # contiguous: no page in two shards, none in none
    covered = [p for b in bounds for p in range(b["lo"], pages if b["hi"] is None else b["hi"])]
    assert covered == list(range(pages))
    sizes = [(pages if b["hi"] is None else b["hi"]) - b["lo"] for b in bounds]
    assert max(sizes) <= max(1, -(-pages // count))  # none more than its share (rounded up)


def test_the_default_count_follows_the_table_size_within_the_cap():
    assert default_count(0) == default_count(PAGES_PER_SHARD // 2 - 1) == 1  # small tables: one shard
    assert default_count(2 * PAGES_PER_SHARD) == 2
    assert default_count(3 * PAGES_PER_SHARD + 10) == 3
    assert default_count(1_000 * PAGES_PER_SHARD) == DEFAULT_MAX <= MAX_SHARDS


def test_consecutive_partitions_go_round_the_shards_and_the_default_to_shard_0():
    parts = [Partition("shop", f"visits_p{h}", False, True, False, 100 + h, 490_000 + h) for h in range(12)]
    assert [partition_shard(p, 4) for p in parts] == [(490_000 + h) % 4 for h in range(12)]
    assert {partition_shard(p, 4) for p in parts[:4]} == {0, 1, 2, 3}
    assert partition_shard(Partition("shop", "visits_default", True, False, False, 99, None), 4) == 0


@pytest.mark.parametrize("shards", [1, 2, 3, 8])
@pytest.mark.parametrize("chunks", [1, 2, 5])
def test_a_shards_chunks_are_its_residue_class_of_the_whole(shards, chunks):
    """x mod S == k exactly when x mod S*M is one of the shard's M chunk indexes: computed here on
    the integers, independently of the SQL (whose agreement an integration test checks)."""
    for k in range(shards):
        indexes = [shard_chunk(k, shards, j, chunks) for j in range(chunks)]
        assert {count for _, count in indexes} == {shards * chunks}
        members = {x for x in range(-200, 200) for index, count in indexes if abs(x) % count == index}
        assert members == {x for x in range(-200, 200) if abs(x) % shards == k}
    with pytest.raises(ValueError):
        shard_chunk(shards, shards, 0, chunks)


def test_a_shard_that_does_not_exist_is_refused():
    for index, count in ((1, 1), (3, 3), (-1, 3), (0, 0), (0, MAX_SHARDS + 1)):
        with pytest.raises(OptionError):
            Shard("order-records", index, count, "chunks")
    with pytest.raises(OptionError, match="kind"):
        Shard("order-records", 0, 2, "rows")
    shard = Shard("cookie-preferences", 1, 3, "blocks", {"lo": 5, "hi": 10})
    assert Shard.from_dict(shard.to_dict()) == shard and shard.label == "1/3" and (shard.lo, shard.hi) == (5, 10)


def test_a_partitioned_tables_default_counts_only_the_partitions_deleted_in_batches():
    """Dropping whole partitions takes the parent's lock in turn: shards that only drop gain nothing
    (bench/README.md, "Sharded sweeps"), so only partitions due but not wholly expired count."""

    def part(hour: int, fully: bool, none: bool, default: bool = False) -> Partition:
        return Partition("shop", f"visits_p{hour}", default, fully, none, 100 + hour, None if default else hour)

    dropped = [part(h, True, False) for h in range(20)]
    boundary = part(20, False, False)
    ahead = [part(h, False, True) for h in range(21, 40)]
    assert partitions_default([*dropped, boundary, *ahead], 8) == 1  # the hourly sweep: one cut-off partition
    assert partitions_default([*dropped, *ahead], 8) == 1  # nothing to delete in batches: still one shard
    default = part(99, False, False, default=True)  # goes with shard 0 whatever N is
    assert partitions_default([*dropped, boundary, default, *ahead], 8) == 1
    several = [part(h, False, False) for h in range(5)]  # however many there are, at most N
    assert partitions_default(several, 3) == 3
