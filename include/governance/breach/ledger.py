"""The breach ledger (SEC-2, GDPR art. 33/34): open a breach, tell the authority, close it.

A breach moves ``open`` -> ``authority_notified`` -> ``subjects_notified`` -> ``closed``; every
transition commits with its evidence (counts and ids only; the free-text description is evidenced
by its SHA-256). Opening a breach queues one notice per person concerned (``people.queue_notices``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from psycopg2 import sql
from psycopg2.extensions import connection, cursor

from governance import evidence
from governance.breach.people import queue_notices
from governance.db import transaction
from governance.errors import BreachError
from governance.policy import Policy
from governance.windows import as_utc, iso

REQUIREMENTS = ["SEC-2"]
STATES = ("open", "authority_notified", "subjects_notified", "closed")
# An e-mail address, or a phone-like number (+47 ..., or 8+ digits with at most single spaces); dates pass.
_PERSONAL_LOOKING = re.compile(r"@|\+\d|\d(?: ?\d){7,}")


@dataclass(frozen=True)
class Breach:
    breach_id: int
    opened_at: datetime
    detected_at: datetime
    due_at: datetime
    categories: list[str]
    window_from: datetime
    window_to: datetime
    description: str
    state: str
    authority_notified_at: datetime | None
    authority_reference: str | None
    subjects_notified_at: datetime | None
    closed_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: iso(v) if isinstance(v, datetime) else v for f in fields(self) for v in [getattr(self, f.name)]}


_COLUMNS = sql.SQL(", ").join(sql.Identifier(f.name) for f in fields(Breach))


def fetch_breach(cur: cursor, breach_id: int, *, lock: bool = False) -> Breach:
    query = sql.SQL("SELECT {} FROM governance.breaches WHERE breach_id = %s").format(_COLUMNS)
    cur.execute(query + sql.SQL(" FOR UPDATE" if lock else ""), (breach_id,))
    row = cur.fetchone()
    if row is None:
        raise BreachError(
            f"no breach {breach_id}; see `governance breach list` (docs/runbook.md 'Personal-data breach')"
        )
    return Breach(*row)


def record(cur: cursor, policy: Policy, kind: str, breach: Breach, now: datetime, **counts: int) -> None:
    """One transition's evidence entry (SEC-2): ids, states, instants and counts only."""
    evidence.append(
        cur,
        kind=kind,
        run_id=f"breach-{breach.breach_id}",
        step=kind,
        requirements=REQUIREMENTS,
        as_of=now,
        policy_version=policy.version,
        counts=counts,
        details={
            "breach_id": breach.breach_id,
            "state": breach.state,
            "categories": breach.categories,
            "window_from": iso(breach.window_from),
            "window_to": iso(breach.window_to),
            "detected_at": iso(breach.detected_at),
            "due_at": iso(breach.due_at),
            "description_sha256": hashlib.sha256(breach.description.encode("utf-8")).hexdigest(),
        },
    )


def _check_opening(policy: Policy, categories: list[str], window_from: datetime, window_to: datetime) -> None:
    known = [c.id for c in policy.categories]
    unknown = [c for c in categories if c not in known]
    if not categories or unknown:
        raise BreachError(
            f"unknown or missing categories {', '.join(unknown) or '(none given)'}; "
            f"give --categories from the data map of policy {policy.policy.name}: {', '.join(known)}"
        )
    if as_utc(window_to) <= as_utc(window_from):
        raise BreachError(f"--to {iso(window_to)} is not after --from {iso(window_from)}; give the window affected")


def open_breach(
    conn: connection,
    policy: Policy,
    *,
    categories: list[str],
    window_from: datetime,
    window_to: datetime,
    description: str | None,
    now: datetime,
    detected_at: datetime | None = None,
) -> tuple[Breach, int]:
    """Record a breach opened at ``now`` and queue a notice per person concerned, with its evidence,
    in one transaction. Returns the breach and the number of notices queued."""
    now = as_utc(now)
    detected = as_utc(detected_at) if detected_at is not None else now
    categories = sorted(set(categories))
    _check_opening(policy, categories, window_from, window_to)
    if detected > now:
        raise BreachError(
            f"--detected-at {iso(detected)} is after now ({iso(now)}); a breach is detected before it is opened"
        )
    text = (description or "").strip()
    if not text:
        raise BreachError("missing --description: what happened, in words fit for the people concerned")
    if _PERSONAL_LOOKING.search(text):
        raise BreachError(
            "--description looks like it holds personal data (an e-mail address or a phone number); "
            "describe what happened without naming anyone"
        )
    with transaction(conn) as cur:
        cur.execute(
            sql.SQL(
                "INSERT INTO governance.breaches (opened_at, detected_at, due_at, categories, window_from, window_to, "
                "description) VALUES (%s, %s, %s + interval '72 hours', %s, %s, %s, %s) RETURNING {}"
            ).format(_COLUMNS),
            (now, detected, detected, categories, as_utc(window_from), as_utc(window_to), text),
        )
        row = cur.fetchone()
        assert row is not None  # INSERT ... RETURNING
        breach = Breach(*row)
        queued = queue_notices(cur, policy, breach.breach_id, categories, breach.window_from, breach.window_to)
        record(cur, policy, "breach_opened", breach, now, notices_queued=queued)
    return breach, queued


def notify_authority(
    conn: connection, policy: Policy, breach_id: int, *, reference: str | None, now: datetime
) -> Breach:
    """Record that the supervisory authority (Datatilsynet) was notified, with its case reference."""
    now = as_utc(now)
    ref = (reference or "").strip()
    if not ref:
        raise BreachError("missing --reference: the authority's case or submission reference")
    with transaction(conn) as cur:
        breach = fetch_breach(cur, breach_id, lock=True)
        if breach.state != "open":
            raise BreachError(
                f"breach {breach_id} is {breach.state}: the authority was already notified at "
                f"{iso(breach.authority_notified_at) if breach.authority_notified_at else '-'}"
            )
        cur.execute(
            sql.SQL(
                "UPDATE governance.breaches SET state = 'authority_notified', authority_notified_at = %s, "
                "authority_reference = %s WHERE breach_id = %s RETURNING {}"
            ).format(_COLUMNS),
            (now, ref, breach_id),
        )
        row = cur.fetchone()
        assert row is not None
        breach = Breach(*row)
        late = int(now > breach.due_at)
        record(cur, policy, "breach_authority_notified", breach, now, notified_late=late)
    return breach


def notice_counts(cur: cursor, breach_id: int) -> dict[str, int]:
    """How many of a breach's notices are in each state."""
    cur.execute(
        "SELECT state, count(*) FROM governance.breach_notices WHERE breach_id = %s GROUP BY state", (breach_id,)
    )
    counts = {state: 0 for state in ("queued", "sending", "sent", "failed")}
    counts.update({state: int(n) for state, n in cur.fetchall()})
    return counts


def close_breach(conn: connection, policy: Policy, breach_id: int, *, now: datetime) -> Breach:
    """Close a breach whose people have all been notified (state ``subjects_notified``)."""
    now = as_utc(now)
    with transaction(conn) as cur:
        breach = fetch_breach(cur, breach_id, lock=True)
        if breach.state != "subjects_notified":
            counts = notice_counts(cur, breach_id)
            raise BreachError(
                f"breach {breach_id} is {breach.state}, not subjects_notified ({counts['queued']} notice(s) queued, "
                f"{counts['sending']} sending); notify the authority and let the breach_notices DAG send every "
                "notice first (docs/runbook.md 'Personal-data breach')"
            )
        cur.execute(
            sql.SQL(
                "UPDATE governance.breaches SET state = 'closed', closed_at = %s WHERE breach_id = %s RETURNING {}"
            ).format(_COLUMNS),
            (now, breach_id),
        )
        row = cur.fetchone()
        assert row is not None
        breach = Breach(*row)
        record(cur, policy, "breach_closed", breach, now, **notice_counts(cur, breach_id))
    return breach


def get_breach(conn: connection, breach_id: int) -> tuple[Breach, dict[str, int]]:
    with transaction(conn, read_only=True) as cur:
        return fetch_breach(cur, breach_id), notice_counts(cur, breach_id)


def list_breaches(conn: connection) -> list[Breach]:
    with transaction(conn, read_only=True) as cur:
        cur.execute(sql.SQL("SELECT {} FROM governance.breaches ORDER BY breach_id").format(_COLUMNS))
        return [Breach(*row) for row in cur.fetchall()]


def format_breaches(breaches: list[Breach], now: datetime) -> str:
    """A plain table for people: ids, states, the authority deadline; no description."""
    if not breaches:
        return "no breaches"
    header = ("breach", "state", "categories", "detected", "authority due", "authority notified")
    rows = [
        (
            str(b.breach_id),
            b.state,
            ",".join(b.categories),
            iso(b.detected_at),
            iso(b.due_at) + (" LATE" if b.state == "open" and as_utc(now) > b.due_at else ""),
            iso(b.authority_notified_at) if b.authority_notified_at else "-",
        )
        for b in breaches
    ]
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows])
