"""bench/harness.py's "Where the time went": set-up phases that ran at once (the shop template beside
the data sets, bench/run.py ``prepare``) count once in the set-up's total, so the measurements' share
is the wall time less the set-up's wall time."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2] / "bench"))  # as ``python bench/run.py`` runs it

from harness import setup_table  # noqa: E402


def lines(table: str) -> dict[str, float]:
    rows = {}
    for line in table.splitlines():
        name, _, value = line.strip().rpartition("  ")
        rows[name.strip()] = float(value.split()[0])
    return rows


def test_phases_that_ran_at_once_count_once():
    setup = {"visits": 60.0, "visits: generate": 25.0, "shop template": 100.0, "shop template: load": 40.0}
    rows = lines(setup_table(setup, wall=400.0, overlapped=50.0))
    assert rows["two phases at once"] == -50.0
    assert rows["set-up, total"] == 110.0  # 60 + 100, less the 50 s they overlapped
    assert rows["measurements (the rest)"] == 290.0


def test_a_part_without_its_phase_is_a_phase_of_its_own():
    setup = {"page: 1,000 evidence entries": 30.0, "exports data": 10.0, "exports data: photos": 4.0}
    rows = lines(setup_table(setup, wall=100.0))
    assert rows["page: 1,000 evidence entries"] == 30.0 and rows["photos"] == 4.0
    assert (rows["set-up, total"], rows["measurements (the rest)"]) == (40.0, 60.0)


def test_without_overlap_the_table_is_the_sum():
    rows = lines(setup_table({"visits": 60.0, "orders": 40.0}, wall=300.0))
    assert "two phases at once" not in rows
    assert (rows["set-up, total"], rows["measurements (the rest)"]) == (100.0, 200.0)
