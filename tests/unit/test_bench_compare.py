"""bench/compare.py (#14): runs of the same scale and load merged into one column, one column per
condition, growth from the smallest scale, rows per second from the checks' own counts."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[2] / "bench"
sys.path.insert(0, str(BENCH))  # as ``python bench/compare.py`` runs it: next to harness.py
SPEC = importlib.util.spec_from_file_location("bench_compare", BENCH / "compare.py")
compare = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(compare)


def run_file(tmp_path: Path, name: str, scale: float, checks: list[dict], io_load: int = 0) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({"scale": scale, "machine": {"io_load_processes": io_load}, "measurements": checks}))
    return path


def check(name: str, ours: float, counts: dict, ratio: float = 1.1, met: bool = True) -> dict:
    return {
        "name": name,
        "title": name,
        "ours_s": ours,
        "ratio": ratio,
        "target": "<= 1.3",
        "met": met,
        "counts": counts,
    }


def test_runs_side_by_side_with_growth_and_rows_per_second(tmp_path, capsys):
    small = run_file(tmp_path, "a.json", 1, [check("orders.sweep_vs_single_update", 5.0, {"due": 500_000})])
    large_1 = run_file(tmp_path, "b.json", 10, [check("orders.sweep_vs_single_update", 60.0, {"due": 5_000_000})])
    large_2 = run_file(tmp_path, "c.json", 10, [check("audit.full_vs_bare_sql", 70.0, {}, met=False)])
    loaded = run_file(tmp_path, "d.json", 1, [check("orders.sweep_vs_single_update", 9.0, {"due": 500_000})], io_load=8)
    assert compare.main(["--rules", str(small), str(large_1), str(large_2), str(loaded)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0] == (
        "| rule | scale 1: time, rows/s | scale 1, io-load 8: time, rows/s | scale 10: time, rows/s "
        "| time ×, scale 1 → scale 1, io-load 8 | time ×, scale 1 → scale 10 |"
    )
    orders = next(line for line in table if line.startswith("| order-records"))
    assert "5.00 s, 100,000 orders/s | 9.00 s, 55,556 orders/s | 60.00 s, 83,333 orders/s | 1.8× | 12.0×" in orders
    audit = next(line for line in table if line.startswith("| the audit"))
    assert audit == "| the audit of every rule | not run | not run | 70.00 s | – | – |"  # merged from c.json
    compare.main([str(small), str(large_2)])
    assert "70.00 s, 1.10× **missed**" in capsys.readouterr().out


def test_a_file_that_is_not_a_results_file_is_named(tmp_path):
    bad = tmp_path / "notes.json"
    bad.write_text("{}")
    with pytest.raises(SystemExit, match="notes.json: not a results file of bench/run.py"):
        compare.main([str(bad)])


def test_a_throttled_disk_is_its_own_condition():
    data = {"scale": 1, "machine": {"disk_throttle": {"mib_per_second": 20.0, "device": "254:0"}}}
    assert compare.condition(data) == "scale 1, disk 20 MiB/s"
    assert compare.condition({"scale": 10, "machine": {}}) == "scale 10"


def test_request_measurements_at_another_scale_are_their_own_condition():
    assert compare.condition({"scale": 10, "requests_scale": 1, "machine": {}}) == "scale 10, requests 1"
    assert compare.condition({"scale": 10, "requests_scale": 10, "machine": {}}) == "scale 10"
