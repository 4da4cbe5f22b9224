"""What every measurement shares: the run context, timing, the transaction monitor, and results.

A measurement is a function ``run(ctx) -> list[Check]``. Each Check compares our time with one or
more baselines timed in the same run on the same data, and says whether its target is met.
"""

from __future__ import annotations

import math
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import psycopg2


@dataclass
class Check:
    """One target: our figure against the baselines of the same run."""

    name: str  # short, stable key, e.g. "visits.partitioned_vs_delete_vacuum"
    title: str  # what a reader sees in the table
    ours_s: float | None
    baseline_s: dict[str, float | None]
    ratio: float | None
    ratio_kind: str  # "ours/baseline" (lower is better) or "baseline/ours" (a speed-up)
    target: str
    met: bool | None
    counts: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, cores: int) -> dict[str, Any]:
        data = asdict(self)
        data["cores"] = cores
        return data


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def at_most(value: float | None, limit: float) -> bool | None:
    return None if value is None else value <= limit


def at_least(value: float | None, limit: float) -> bool | None:
    return None if value is None else value >= limit


@dataclass
class Context:
    """Everything a measurement may use. Sizes are already multiplied by the scale."""

    scale: float
    admin_url: str  # the server's maintenance database (to create clone databases)
    db_url: str  # this run's scratch database, schema applied
    db_name: str
    s3_url: str
    now: datetime
    policy: Any
    cores: int = field(default_factory=lambda: os.cpu_count() or 1)
    log_lines: list[str] = field(default_factory=list)
    # Seconds per set-up phase (building data, starting services; nothing a figure measures), summed
    # when a phase recurs. "visits" is a phase, "visits: copy" a part of it (see setup_table).
    setup: dict[str, float] = field(default_factory=dict)
    overlapped: float = 0.0  # seconds two set-up phases ran at once (bench/run.py ``prepare``)

    def size(self, full: int, minimum: int = 1) -> int:
        return max(minimum, int(round(full * self.scale)))

    def sample(self, full: int, minimum: int = 1) -> int:
        """A sample's size (rows timed one at a time and extrapolated, keys deleted one per call):
        sized for the figure's precision, so it shrinks with a scale below 1 and stays ``full``
        above it, where the data it is drawn from grows."""
        return min(full, self.size(full, minimum))

    def log(self, message: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        line = f"[{stamp}] {message}"
        self.log_lines.append(line)
        print(line, flush=True)

    @contextmanager
    def setup_phase(self, name: str):
        """``with ctx.setup_phase("visits: copies"): ...`` times set-up work and logs it."""
        start = time.perf_counter()
        try:
            yield
        finally:
            seconds = time.perf_counter() - start
            self.setup[name] = self.setup.get(name, 0.0) + seconds
            self.log(f"set-up {name}: {seconds:.1f} s")

    def setup_seconds(self) -> float:
        """The set-up phases' seconds so far (phases, not their parts)."""
        return sum(self.setup[name] for name in phases_of(self.setup))

    def connect(self, application_name: str = "governance-bench"):
        from governance.db import connect

        return connect(self.db_url, application_name=application_name)

    def s3(self):
        from governance.objectstore import make_client
        from governance.settings import resolve

        return make_client(resolve(None, self.s3_url))


@contextmanager
def timed():
    """``with timed() as t: ...`` then ``t.seconds``."""

    class _T:
        seconds: float = 0.0

    t = _T()
    start = time.perf_counter()
    try:
        yield t
    finally:
        t.seconds = time.perf_counter() - start


def execute(conn, statement: str, params: Any = None) -> float:
    """Run one statement and commit; returns the seconds it took (statement plus commit)."""
    start = time.perf_counter()
    with conn.cursor() as cur:
        cur.execute(statement, params)
    conn.commit()
    return time.perf_counter() - start


def checkpoint(conn) -> None:
    """Flush dirty buffers before a timed section, so a checkpoint owed by the set-up lands outside it."""
    old = conn.autocommit
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("CHECKPOINT")
    except psycopg2.Error:
        pass  # not a superuser: timings are a little noisier, nothing more
    finally:
        conn.autocommit = old


def settle(conn, *tables: str) -> None:
    """VACUUM (ANALYZE) freshly loaded tables so every contender starts from the same state:
    hint bits set, visibility map built, statistics known. Otherwise the first reader pays for it."""
    old = conn.autocommit
    conn.autocommit = True
    with conn.cursor() as cur:
        for table in tables:
            cur.execute(f"VACUUM (ANALYZE) {table}")
    conn.autocommit = old
    checkpoint(conn)


NEVER_ANALYZED = """
SELECT format('%I.%I', schemaname, relname) FROM pg_stat_all_tables
WHERE last_analyze IS NULL AND last_autoanalyze IS NULL AND schemaname <> 'pg_toast'
ORDER BY 1
"""


def analyze_all(conn) -> None:
    """ANALYZE every table of the database not analysed yet (the catalogs included), as autovacuum
    keeps statistics in production. Tables ``settle`` has just analysed are not sampled again.

    Without it, tables never analysed (the empty ones of a bench, or any table where autovacuum is
    off, as on the server these figures were measured on) get default estimates; a plan then looks
    expensive enough for JIT compilation, which alone costs ~0.4 s per statement here.
    """
    old = conn.autocommit
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(NEVER_ANALYZED)
        tables = [name for (name,) in cur.fetchall()]
        if tables:
            cur.execute("ANALYZE " + ", ".join(tables))
    conn.autocommit = old


class TransactionMonitor:
    """Watches one backend from another connection and records its longest transaction.

    Independent of what the code under test reports about itself: every ``interval`` seconds it
    reads ``clock_timestamp() - xact_start`` of the backend from pg_stat_activity. The longest
    transaction is known to within one interval (it can be under-estimated by at most that).
    """

    def __init__(self, db_url: str, backend_pid: int, interval: float = 0.05):
        self.db_url = db_url
        self.pid = backend_pid
        self.interval = interval
        self.longest_s = 0.0
        self.transactions = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        conn = psycopg2.connect(self.db_url, application_name="governance-bench-monitor")
        conn.autocommit = True
        seen: dict[Any, float] = {}
        with conn.cursor() as cur:
            while not self._stop.is_set():
                cur.execute(
                    "SELECT xact_start, extract(epoch FROM clock_timestamp() - xact_start) "
                    "FROM pg_stat_activity WHERE pid = %s AND xact_start IS NOT NULL",
                    (self.pid,),
                )
                row = cur.fetchone()
                if row:
                    seen[row[0]] = max(seen.get(row[0], 0.0), float(row[1]))
                self._stop.wait(self.interval)
        conn.close()
        self.transactions = len(seen)
        self.longest_s = max(seen.values(), default=0.0)

    def __enter__(self) -> TransactionMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def fmt_seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f} s"
    if value >= 1:
        return f"{value:.2f} s"
    return f"{value * 1000:.0f} ms"


def fmt_ratio(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if value >= 100:
        return f"{value:,.0f}x"
    return f"{value:.2f}x"


def table(checks: list[Check]) -> str:
    """The human-readable table: one line per check, baselines listed under it."""
    rows = [("check", "ours", "baseline", "ratio", "target", "met")]
    for c in checks:
        baselines = [(k, v) for k, v in c.baseline_s.items()]
        first = baselines[0] if baselines else ("", None)
        met = {True: "yes", False: "NO", None: "n/a"}[c.met]
        ours = c.extra.get("ours_display") or fmt_seconds(c.ours_s)
        base = c.extra.get("baseline_display") or (f"{first[0]} {fmt_seconds(first[1])}" if first[0] else "-")
        rows.append((c.title, ours, base, c.extra.get("ratio_display") or fmt_ratio(c.ratio), c.target, met))
        for k, v in baselines[1:]:
            rows.append(("", "", f"{k} {fmt_seconds(v)}", "", "", ""))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, r in enumerate(rows):
        lines.append("  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(r)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def phases_of(setup: dict[str, float]) -> list[str]:
    """The phases of ``setup``: "visits: copy" is a part of the phase "visits" when there is one, and
    a phase of its own when there is not ("notices: queue")."""
    return [name for name in setup if ": " not in name or name.split(": ", 1)[0] not in setup]


def setup_table(setup: dict[str, float], wall: float, overlapped: float = 0.0) -> str:
    """The set-up phases, each with its parts under it, their total (less the seconds two phases ran
    at once), and the total wall time."""
    phases = phases_of(setup)
    lines = []
    for name in phases:
        lines.append(f"  {name:<34} {setup[name]:7.1f} s")
        for part in (p for p in setup if p.startswith(name + ": ")):
            lines.append(f"    {part[len(name) + 2 :]:<32} {setup[part]:7.1f} s")
    total = sum(setup[name] for name in phases)
    if overlapped:
        lines.append(f"  {'two phases at once':<34} {-overlapped:7.1f} s")
        total -= overlapped
    lines.append(f"  {'set-up, total':<34} {total:7.1f} s")
    lines.append(f"  {'measurements (the rest)':<34} {wall - total:7.1f} s")
    lines.append(f"  {'wall time':<34} {wall:7.1f} s ({wall / 60:.1f} min)")
    return "\n".join(lines)
