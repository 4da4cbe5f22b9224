"""Two or more runs side by side (#14: "the scale-1 and scale-10 table"): every check's figure and
ratio at each scale, and how our time grew from the smallest scale to each larger one.

    python bench/compare.py RUN.json [RUN.json ...]        # files written by bench/run.py
    python bench/compare.py --rules RUN.json [RUN.json ...] # the sweeps only: time and rows per second

One column per condition: the scale (and the request measurements' own, if it differs), and the
disturbing load if any (``--io-load``, ``--cpu-load``).
Runs of the same condition are merged (one may be measured in several ``--only`` runs; the later
file wins a check measured twice). Prints Markdown, for bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from harness import fmt_seconds as seconds

# The checks that time one rule's sweep (or the audit of all of them), and what they count as done.
RULES = {
    "visits.batched_vs_single_delete": ("visit-data, batched DELETE (unpartitioned)", "expired", "rows"),
    "visits.partitioned_vs_delete_vacuum": ("visit-data, partitions dropped", "expired", "rows"),
    "orders.sweep_vs_single_update": ("order-records, anonymised (kept clock)", "due", "orders"),
    "objects.purge_vs_per_key": ("guest-uploads, objects purged", "objects", "objects"),
    "audit.full_vs_bare_sql": ("the audit of every rule", None, None),
}


def condition(data: dict[str, Any]) -> str:
    """A run's column: "scale 10", "scale 10, requests 1", "scale 1, io-load 8", ... (runs before
    ``--requests-scale`` sized every measurement by ``scale``)."""
    machine = data.get("machine") or {}
    scale = float(data["scale"])
    name = f"scale {scale:g}"
    requests = float(data.get("requests_scale", scale))
    if requests != scale:
        name += f", requests {requests:g}"
    for key, flag in (("io_load_processes", "io-load"), ("cpu_load_processes", "cpu-load")):
        if machine.get(key):
            name += f", {flag} {machine[key]}"
    throttle = machine.get("disk_throttle") or {}
    if throttle.get("mib_per_second"):
        name += f", disk {throttle['mib_per_second']:g} MiB/s"
    return name


def load(paths: list[Path]) -> dict[str, dict[str, dict[str, Any]]]:
    """condition -> check name -> check, the runs of one condition merged in the order given;
    conditions by scale, then unloaded first."""
    runs: dict[str, dict[str, dict[str, Any]]] = {}
    order: dict[str, tuple[float, str]] = {}
    for path in paths:
        try:
            data = json.loads(path.read_text())
            name, checks = condition(data), data["measurements"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SystemExit(f"{path}: not a results file of bench/run.py ({exc})") from exc
        order[name] = (float(data["scale"]), name)
        merged = runs.setdefault(name, {})
        for check in checks:
            merged[check["name"]] = check
    if not runs:
        raise SystemExit("no results file given")
    return {name: runs[name] for name in sorted(runs, key=lambda n: order[n])}


def figure(check: dict[str, Any] | None) -> str:
    """Our time and the ratio against the first baseline, and whether the target was met."""
    if check is None:
        return "not run"
    ours = check.get("ours_s")
    r = check.get("ratio")
    met = {True: "", False: " **missed**", None: ""}[check.get("met")]
    shown = seconds(ours) if isinstance(ours, (int, float)) else "–"
    if isinstance(r, (int, float)):
        shown += f", {r:,.2f}×"
    return shown + met


def growth(small: dict[str, Any] | None, large: dict[str, Any] | None) -> str:
    a, b = (small or {}).get("ours_s"), (large or {}).get("ours_s")
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or a <= 0:
        return "–"
    return f"{b / a:.1f}×"


def all_checks(runs: dict[str, dict[str, dict[str, Any]]]) -> str:
    scales = list(runs)
    names: list[str] = []
    for checks in runs.values():
        names += [n for n in checks if n not in names]
    head = ["check", *scales, *(f"time ×, {scales[0]} → {s}" for s in scales[1:])]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in names:
        found = [runs[s].get(name) for s in scales]
        title = next(c["title"] for c in found if c)
        target = next(c["target"] for c in found if c)
        cells = [f"{title} (target {target})", *(figure(c) for c in found)]
        cells += [growth(found[0], c) for c in found[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def rules_table(runs: dict[str, dict[str, dict[str, Any]]]) -> str:
    scales = list(runs)
    head = ["rule", *(f"{s}: time, rows/s" for s in scales), *(f"time ×, {scales[0]} → {s}" for s in scales[1:])]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, (title, key, unit) in RULES.items():
        found = [runs[s].get(name) for s in scales]
        cells = [title]
        for check in found:
            ours = (check or {}).get("ours_s")
            if not isinstance(ours, (int, float)):
                cells.append("not run")
                continue
            done = (check.get("counts") or {}).get(key) if key else None
            rate = f", {done / ours:,.0f} {unit}/s" if isinstance(done, int) and ours > 0 else ""
            cells.append(f"{seconds(ours)}{rate}")
        cells += [growth(found[0], c) for c in found[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="results files of bench/run.py")
    parser.add_argument("--rules", action="store_true", help="only the sweeps: time and rows per second")
    args = parser.parse_args(argv)
    runs = load(args.results)
    try:
        print(rules_table(runs) if args.rules else all_checks(runs))
    except BrokenPipeError:  # | head
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
