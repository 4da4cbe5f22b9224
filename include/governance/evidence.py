"""Evidence: writing, reading and verifying the hash-chained log of audits, sweeps and holds.

The log (``governance.evidence``) is written only through ``append`` (which calls
``governance.append_evidence`` in SQL), in the same transaction as the effect it records. This module is what compliance staff use to prove,
for any period, which rules ran, when, what each removed or anonymised (counts, never personal
data), what the independent audit found, and which legal holds were set or lifted ("What proof
means here", docs/requirements.md; RET-8; CONTRIBUTING.md habit 5 and 6):

- ``verify(conn)`` recomputes the chain with ``governance.verify_evidence()``;
- ``entries(conn, ...)`` selects entries by run, rule, kind and time;
- ``format_report(entries)`` renders them for a reviewer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg2 import sql
from psycopg2.extras import Json

from governance.windows import as_utc

ZERO_HASH = "0" * 64

_APPEND = (
    "SELECT governance.append_evidence(%(kind)s, %(run)s, %(rule)s, {step}, %(requirements)s, "
    "%(as_of)s, %(version)s, %(counts)s, %(details)s){source}"
)
# A step already recorded in this run under the same (kind, rule) is recorded again as step#2, #3...
# (rows that became due in a range a first attempt had already swept are never lost); counted and
# appended in one statement, one round trip.
_NUMBERED_STEP = "CASE WHEN taken.n = 0 THEN %(step)s ELSE %(step)s || '#' || (taken.n + 1) END"
_TAKEN = (
    " FROM (SELECT count(*) AS n FROM governance.evidence WHERE kind = %(kind)s AND run_id = %(run)s "
    "AND rule_id = %(rule)s AND (step = %(step)s OR left(step, length(%(step)s) + 1) = %(step)s || '#')) AS taken"
)


def append(
    cur: Any,
    *,
    kind: str,
    run_id: str,
    rule_id: str = "",
    step: str = "",
    requirements: list[str] | tuple[str, ...] = (),
    as_of: datetime | None = None,
    policy_version: str | None = None,
    counts: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
    numbered: bool = False,
) -> None:
    """Append one entry in the caller's transaction, so it commits (or not) with the effect it
    records. Idempotent per (kind, run_id, rule_id, step): a rerun records nothing twice. With
    ``numbered`` a step already taken in this run is recorded as ``step#n`` instead of skipped.
    The entry locks the chain head: make it the last statement before the commit.

    Counts and details must hold ids, counts, hashes and durations only, never personal data."""
    params = {
        "kind": kind,
        "run": run_id,
        "rule": rule_id,
        "step": step,
        "requirements": list(requirements),
        "as_of": as_of,
        "version": policy_version or None,
        "counts": Json(counts or {}),
        "details": Json(details or {}),
    }
    if numbered:
        cur.execute(_APPEND.format(step=_NUMBERED_STEP, source=_TAKEN), params)
    else:
        cur.execute(_APPEND.format(step="%(step)s", source=""), params)


@dataclass(frozen=True)
class Problem:
    entry_id: int | None
    problem: str


@dataclass(frozen=True)
class Verification:
    """The chain's state: intact (no problems), how many entries, and the head hash."""

    entries: int
    head_hash: str
    head_entry_id: int | None
    problems: list[Problem] = field(default_factory=list)
    # What was checked besides the chain: anchors, authentication (governance.anchors).
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if self.ok:
            return "\n".join([f"OK: evidence chain intact, {self.entries} entries, head {self.head_hash}", *self.notes])
        lines = [
            f"BROKEN: {len(self.problems)} problem(s) in the evidence chain of {self.entries} entries "
            f"(head {self.head_hash}):"
        ]
        lines += [f"  entry {p.entry_id if p.entry_id is not None else '-'}: {p.problem}" for p in self.problems]
        lines += self.notes
        lines.append(
            "The log has been altered outside governance.append_evidence; see docs/runbook.md "
            "'Evidence chain broken' before running another sweep."
        )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "head_hash": self.head_hash,
            "head_entry_id": self.head_entry_id,
            "problems": [{"entry_id": p.entry_id, "problem": p.problem} for p in self.problems],
            "notes": list(self.notes),
        }


def verify(conn: Any) -> Verification:
    """Recompute every entry's hash and link; read-only."""
    with conn.cursor() as cur:
        cur.execute("SELECT entry_id, problem FROM governance.verify_evidence()")
        problems = [Problem(entry_id, problem) for entry_id, problem in cur.fetchall()]
        cur.execute("SELECT count(*) FROM governance.evidence")
        count = cur.fetchone()[0]
        cur.execute("SELECT last_entry_id, last_hash FROM governance.evidence_head WHERE singleton")
        row = cur.fetchone()
    head_entry_id, head_hash = row if row else (None, ZERO_HASH)
    if row is None:
        problems.append(Problem(None, "the chain head (governance.evidence_head) is missing"))
    return Verification(entries=count, head_hash=head_hash, head_entry_id=head_entry_id, problems=problems)


@dataclass(frozen=True)
class Entry:
    entry_id: int
    recorded_at: datetime
    kind: str
    run_id: str
    rule_id: str
    step: str
    requirements: list[str]
    as_of: datetime | None
    policy_version: str | None
    counts: dict[str, Any]
    details: dict[str, Any]
    entry_hash: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "entry_id": self.entry_id,
            "recorded_at": _iso(self.recorded_at),
            "kind": self.kind,
            "run_id": self.run_id,
            "rule_id": self.rule_id,
            "step": self.step,
            "requirements": list(self.requirements),
            "as_of": _iso(self.as_of),
            "policy_version": self.policy_version,
            "counts": self.counts,
            "details": self.details,
            "entry_hash": self.entry_hash,
        }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else as_utc(moment).isoformat().replace("+00:00", "Z")


def entries(
    conn: Any,
    *,
    run_id: str | None = None,
    rule_id: str | None = None,
    kind: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
) -> list[Entry]:
    """Entries in the order they were recorded, filtered; ``since``/``until`` bound ``recorded_at``."""
    where: list[sql.Composable] = []
    params: list[Any] = []
    for column, value in (("run_id", run_id), ("rule_id", rule_id), ("kind", kind)):
        if value is not None:
            where.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
            params.append(value)
    if since is not None:
        where.append(sql.SQL("recorded_at >= %s"))
        params.append(as_utc(since))
    if until is not None:
        where.append(sql.SQL("recorded_at < %s"))
        params.append(as_utc(until))
    query: sql.Composable = sql.SQL(
        "SELECT entry_id, recorded_at, kind, run_id, rule_id, step, requirements, as_of, policy_version, "
        "counts, details, entry_hash FROM governance.evidence"
    )
    if where:
        query += sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where)
    query += sql.SQL(" ORDER BY entry_id")
    if limit is not None:
        query += sql.SQL(" LIMIT %s")
        params.append(int(limit))
    with conn.cursor() as cur:
        cur.execute(query, params)
        rows = cur.fetchall()
    return [Entry(*row) for row in rows]


def kinds(conn: Any) -> list[str]:
    with conn.cursor() as cur:
        cur.execute("SELECT DISTINCT kind FROM governance.evidence ORDER BY kind")
        return [row[0] for row in cur.fetchall()]


# --- the reviewer's report -----------------------------------------------------------------------


def _counts_text(counts: dict[str, Any]) -> str:
    # Zeros stay: "overdue 0" is what an audit proves.
    return ", ".join(f"{k} {_value(v)}" for k, v in counts.items() if v is not None) or "-"


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _details_text(details: dict[str, Any]) -> str:
    shown = {k: (v[:12] if k.endswith("sha256") and isinstance(v, str) else v) for k, v in details.items()}
    return ", ".join(f"{k}={_value(v)}" for k, v in shown.items() if v is not None)


def format_report(selected: list[Entry], verification: Verification | None = None, *, detail: bool = False) -> str:
    """Entries grouped by run, in recorded order: when, what kind, which rule, which counts.

    Batch entries (kinds ending in ``_batch``, one per transaction of a sweep) are folded into one
    line per run, kind and rule with their counts summed, unless ``detail``; every other entry
    (a rule's summary, an audit, a hold) is one line. Output is built only from the evidence
    itself, which holds identifiers and counts, never personal data; hold reasons are not in it
    (only their SHA-256)."""
    if not selected:
        return "no evidence matches" + (f"\n\n{verification.summary()}" if verification else "")
    lines: list[str] = []
    by_run: dict[str, list[Entry]] = {}
    for entry in selected:
        by_run.setdefault(entry.run_id, []).append(entry)
    for run_id, run_entries in by_run.items():
        first = run_entries[0]
        as_of = _iso(first.as_of) or "-"
        version = (first.policy_version or "-")[:12]
        lines.append(f"run {run_id}  (as of {as_of}, policy {version}, {len(run_entries)} entries)")
        batches: dict[tuple[str, str], list[Entry]] = {}
        if not detail:
            for e in run_entries:
                if e.kind.endswith("_batch"):
                    batches.setdefault((e.kind, e.rule_id), []).append(e)
        for e in run_entries:
            group = batches.get((e.kind, e.rule_id))
            if group is None or len(group) == 1:
                lines.append(_line(e))
            elif e is group[0]:
                lines.append(_folded_line(group))
            if e.kind.startswith("hold_") and e.details:
                lines.append(f"      {_details_text(e.details)}")
        lines.append("")
    lines.append(
        f"{len(selected)} entries: " + ", ".join(f"{kind} {n}" for kind, n in sorted(_by_kind(selected).items()))
    )
    if verification is not None:
        lines += ["", verification.summary()]
    return "\n".join(lines)


def _line(e: Entry, ids: str | None = None, kind: str | None = None, counts: dict[str, Any] | None = None) -> str:
    reqs = ",".join(e.requirements) or "-"
    step = f" [{e.step}]" if e.step and counts is None else ""
    return (
        f"  {ids or f'#{e.entry_id}':<12} {_iso(e.recorded_at)}  {kind or e.kind:<16} {e.rule_id or '-':<32} "
        f"{reqs:<26} {_counts_text(e.counts if counts is None else counts)}{step}"
    )


def _folded_line(group: list[Entry]) -> str:
    """Several batch entries of one rule as one line: their whole-number counts summed."""
    totals: dict[str, int] = {}
    for e in group:
        for key, value in e.counts.items():
            if isinstance(value, int) and not isinstance(value, bool):
                totals[key] = totals.get(key, 0) + value
    return _line(
        group[0],
        ids=f"#{group[0].entry_id}..{group[-1].entry_id}",
        kind=f"{group[0].kind} x{len(group)}",
        counts=totals,
    )


def _by_kind(selected: list[Entry]) -> dict[str, int]:
    counted: dict[str, int] = {}
    for entry in selected:
        counted[entry.kind] = counted.get(entry.kind, 0) + 1
    return counted
