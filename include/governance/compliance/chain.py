"""The evidence chain's figures for the Governance page and the period report (#13, SEC-1): its
head, its entries per kind (counted incrementally), and the verifications of it, each recorded as
an evidence entry of its own (when, by whom, the result, what the anchors' check found).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg2.extensions import cursor

from governance import evidence
from governance.windows import as_utc

VERIFIED_KIND = "evidence_verified"


@dataclass(frozen=True)
class EvidenceStatus:
    entries: int
    head_entry_id: int | None
    head_hash: str
    per_kind: dict[str, int]
    last_verified_at: datetime | None
    last_verified_by: str | None
    last_verified_ok: bool | None
    last_verified_entries: int | None  # the chain's length the verification covered
    last_verified_notes: list[str]  # what else it checked: the anchors outside the database, or why not


def evidence_status(cur: cursor) -> EvidenceStatus:
    """The chain's head, its entries per kind, and the last recorded verification."""
    cur.execute("SELECT last_entry_id, last_hash FROM governance.evidence_head WHERE singleton")
    head = cur.fetchone()
    per_kind = _per_kind(cur, int(head[0]) if head and head[0] is not None else 0)
    cur.execute(
        "SELECT recorded_at, details, counts FROM governance.evidence WHERE kind = %s ORDER BY kind, recorded_at DESC "
        "LIMIT 1",
        (VERIFIED_KIND,),
    )
    last = cur.fetchone()
    return EvidenceStatus(
        entries=sum(per_kind.values()),
        head_entry_id=int(head[0]) if head and head[0] is not None else None,
        head_hash=str(head[1]) if head else evidence.ZERO_HASH,
        per_kind=per_kind,
        last_verified_at=as_utc(last[0]) if last else None,
        last_verified_by=str(last[1].get("by")) if last else None,
        last_verified_ok=bool(last[1].get("ok")) if last else None,
        last_verified_entries=int(last[2].get("entries") or 0) if last else None,
        last_verified_notes=[str(n) for n in last[1].get("notes") or []] if last else [],
    )


# Entries per kind up to an entry id never change: the log is append-only (SEC-1, its guard
# triggers) and ``append_evidence`` takes ids under the head's lock, so every id up to the head is
# committed. Counted once per process and database, then only the entries after it: the Evidence
# view costs the entries appended since, not the whole log (1,000,000 entries: bench/README.md).
# The entry's hash at the cached id proves it is the same chain (a database recreated under the
# same name is counted afresh).
_KIND_COUNTS: dict[str, tuple[int, str, dict[str, int]]] = {}


def _entry_hash(cur: cursor, entry_id: int) -> str | None:
    cur.execute("SELECT entry_hash FROM governance.evidence WHERE entry_id = %s", (entry_id,))
    row = cur.fetchone()
    return str(row[0]) if row else None


def _per_kind(cur: cursor, head_id: int) -> dict[str, int]:
    """Entries per kind up to the head (``head_id``), counted incrementally (``_KIND_COUNTS``)."""
    key = str(cur.connection.dsn)
    since, counts = 0, {}
    cached = _KIND_COUNTS.get(key)
    if cached and cached[0] <= head_id and _entry_hash(cur, cached[0]) == cached[1]:
        since, counts = cached[0], dict(cached[2])
    cur.execute(
        "SELECT kind, count(*) FROM governance.evidence WHERE entry_id > %s AND entry_id <= %s GROUP BY kind",
        (since, head_id),
    )
    for kind, n in cur.fetchall():
        counts[str(kind)] = counts.get(str(kind), 0) + int(n)
    head_hash = _entry_hash(cur, head_id) if head_id else None
    if head_hash is not None:
        _KIND_COUNTS[key] = (head_id, head_hash, dict(counts))
    return dict(sorted(counts.items()))


def record_verification(cur: cursor, result: evidence.Verification, *, by: str, run_id: str, now: datetime) -> None:
    """Record a verification of the chain (``evidence.verify``) as an entry of its own, so the page
    and the report can say when it was last verified, by whom, and with what result. ``by`` is an
    Airflow user name or a DAG/task id, never a person's address."""
    evidence.append(
        cur,
        kind=VERIFIED_KIND,
        run_id=run_id,
        requirements=["SEC-1"],
        as_of=now,
        counts={"entries": result.entries, "problems": len(result.problems)},
        details={
            "by": by,
            "ok": result.ok,
            "head_hash": result.head_hash,
            "head_entry_id": result.head_entry_id,
            "notes": list(result.notes),  # the anchors' check: counts, entry ids, instants
        },
    )
