"""A column clock's count on a plain table in slices of its heap pages (``counting.count_in_pages``,
#14): the verification after a sweep of a large table is a series of short read transactions, not
one scan of the whole table. Cookie preferences (RET-6, a column clock, holds under RET-8): the
sliced count equals the one-statement count of the same selection, for the whole rule and for a
blocks shard; it takes one transaction per slice, and its last slice reaches rows added beyond the
pages it measured.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta

import pytest

from governance.db import transaction
from governance.policy import load_policy
from governance.sweep import counting
from governance.sweep.counting import count_due
from governance.sweep.held import Holds
from governance.sweep.options import Options
from governance.sweep.selection import Selection
from governance.sweep.shards import Shard
from governance.sweep.target import load_target
from tests.integration import sweep_support as s
from tests.integration.test_sweep_shards import NOW, build_cookies

pytestmark = pytest.mark.integration
RULE = "cookie-preferences"


def heap_pages(conn) -> int:
    with transaction(conn) as cur:
        cur.execute("SELECT pg_relation_size('shop.cookie_preferences') / 8192")
        return cur.fetchone()[0]


def one_statement(conn, sel: Selection) -> tuple[int, int]:
    """The selection's counts in one statement, as before the slices."""
    with transaction(conn) as cur:
        cur.execute(sel.counts(), sel.params)
        due, held = cur.fetchone()
    return due, held


@pytest.fixture
def small_slices(monkeypatch):
    """Slices of one to two pages, and a record of the transactions each count opened."""
    monkeypatch.setattr(counting, "FIRST_SLICE_PAGES", 1)
    monkeypatch.setattr(counting, "MOST_SLICE_PAGES", 2)
    opened = []

    @contextmanager
    def counted(conn, **kwargs):
        opened.append(kwargs)
        with transaction(conn, **kwargs) as cur:
            yield cur

    monkeypatch.setattr(counting, "transaction", counted)
    return opened


def test_the_sliced_count_is_the_one_statement_count_in_one_transaction_per_slice(conn, small_slices):
    due_ids = build_cookies(conn)
    sel = Selection(load_target(conn, load_policy(), RULE), NOW, Holds.at(conn, NOW))
    pages = heap_pages(conn)
    assert pages >= 8  # enough pages for several slices of one or two

    due, held = count_due(conn, sel, Options(), read_only=True)

    assert (due, held) == one_statement(conn, sel)
    assert due == len(due_ids) and held > 0
    slices = [kw for kw in small_slices if "read_only" in kw]
    assert pages / 2 <= len(slices) <= pages + 1  # one per slice of one or two pages, the size read first
    assert all(kw["read_only"] for kw in slices)


def test_a_blocks_shard_counts_its_own_pages_and_the_shards_sum_to_the_whole(conn, small_slices):
    build_cookies(conn)
    target = load_target(conn, load_policy(), RULE)
    holds = Holds.at(conn, NOW)
    whole = one_statement(conn, Selection(target, NOW, holds))
    pages = heap_pages(conn)
    third = pages // 3
    bounds = [(0, third), (third, 2 * third), (2 * third, None)]
    counted = []
    for index, (lo, hi) in enumerate(bounds):
        sel = Selection(target, NOW, holds, Shard(RULE, index, 3, "blocks", {"lo": lo, "hi": hi}))
        counted.append(count_due(conn, sel, Options()))
        assert counted[-1] == one_statement(conn, sel)
    assert tuple(map(sum, zip(*counted, strict=True))) == whole
    assert all(due > 0 for due, _ in counted)


def test_the_last_slice_runs_to_the_end_of_the_table(conn, small_slices, monkeypatch):
    """Rows added after the count read the table's size (a busy table grows) are counted."""
    build_cookies(conn)
    sel = Selection(load_target(conn, load_policy(), RULE), NOW, Holds.at(conn, NOW))
    before = one_statement(conn, sel)
    measured = counting.next_size
    added = []

    def grow_once(size, most, seconds):
        if not added:  # after the first slice: 300 more due preferences at the end of the heap
            with conn.cursor() as cur:
                for _ in range(300):
                    added.append(s.cookie(cur, NOW - timedelta(days=800), None))
            conn.commit()
        return measured(size, most, seconds)

    monkeypatch.setattr(counting, "next_size", grow_once)
    due, held = count_due(conn, sel, Options())
    assert (due, held) == (before[0] + 300, before[1])
