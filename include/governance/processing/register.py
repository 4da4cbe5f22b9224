"""The processing register's rows (RES-1, OBJ-1, MKT-1, CON-1; table governance.processing_register):
one per request and purpose, naming the person by account ids and e-mail pseudonyms only. Written
in the transaction of the request's effect; read by whoever processes for a purpose through
``governance.processing_off_at(now)``; a restriction's rows are lifted here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from psycopg2 import sql
from psycopg2.extensions import cursor

from governance.person.subject import Subject
from governance.windows import as_utc, iso

_INSERT = (
    "INSERT INTO governance.processing_register (request_id, purpose, effect, account_ids, email_sha256s, starts_at) "
    "SELECT %(request_id)s, p.purpose, %(effect)s, %(accounts)s::bigint[], "
    "ARRAY(SELECT DISTINCT governance.email_pseudonym(e) FROM unnest(%(emails)s::text[]) AS e ORDER BY 1), %(now)s "
    "FROM unnest(%(purposes)s::text[]) AS p(purpose) ON CONFLICT (request_id, purpose) DO NOTHING"
)
_COLUMNS = sql.SQL(
    "entry_id, request_id, purpose, effect, cardinality(account_ids), cardinality(email_sha256s), starts_at, "
    "ends_at, lifted_at, lifted_by"
)


@dataclass(frozen=True)
class Entry:
    """One register row as shown: ids, the effect, instants and how many identifiers (never which)."""

    entry_id: int
    request_id: int
    purpose: str
    effect: str
    accounts: int
    pseudonyms: int
    starts_at: datetime
    ends_at: datetime | None
    lifted_at: datetime | None
    lifted_by: str | None

    def status(self, now: datetime) -> str:
        """'in force', 'lifted', 'ended' or 'pending', as governance.processing_off_at decides."""
        now = as_utc(now)
        if self.lifted_at is not None and self.lifted_at <= now:
            return "lifted"
        if self.ends_at is not None and self.ends_at <= now:
            return "ended"
        return "pending" if self.starts_at > now else "in force"

    def to_dict(self, now: datetime | None = None) -> dict[str, Any]:
        data = {k: iso(v) if isinstance(v, datetime) else v for k, v in asdict(self).items()}
        if now is not None:
            data["status"] = self.status(now)
        return data


def insert_entries(
    cur: cursor, request_id: int, purposes: Sequence[str], effect: str, subject: Subject, now: datetime
) -> int:
    """One row per purpose, starting at ``now`` (one statement); how many were new (0 on a rerun)."""
    cur.execute(
        _INSERT,
        {
            "request_id": request_id,
            "effect": effect,
            "accounts": list(subject.account_ids),
            "emails": list(subject.emails),
            "now": as_utc(now),
            "purposes": list(purposes),
        },
    )
    return int(cur.rowcount)


def entries(
    cur: cursor, *, request_id: int | None = None, in_force_at: datetime | None = None, lock: bool = False
) -> list[Entry]:
    """Register rows in entry order: of one request, and/or those in force at ``in_force_at``."""
    where: list[sql.Composable] = [sql.SQL("TRUE")]
    params: list[Any] = []
    if request_id is not None:
        where.append(sql.SQL("request_id = %s"))
        params.append(request_id)
    if in_force_at is not None:
        where.append(
            sql.SQL("starts_at <= %s AND (ends_at IS NULL OR ends_at > %s) AND (lifted_at IS NULL OR lifted_at > %s)")
        )
        params += [as_utc(in_force_at)] * 3
    query = sql.SQL("SELECT {} FROM governance.processing_register WHERE {} ORDER BY entry_id").format(
        _COLUMNS, sql.SQL(" AND ").join(where)
    )
    cur.execute(query + sql.SQL(" FOR UPDATE" if lock else ""), params)
    return [Entry(*row) for row in cur.fetchall()]


def lift_entries(cur: cursor, request_id: int, *, by: str, reason: str | None, now: datetime) -> int:
    """Set lifted_at/lifted_by (and the reason) on the request's rows not yet lifted; how many."""
    cur.execute(
        "UPDATE governance.processing_register SET lifted_at = %s, lifted_by = %s, lift_reason = %s "
        "WHERE request_id = %s AND effect = 'restricted' AND lifted_at IS NULL",
        (as_utc(now), by, reason, request_id),
    )
    return int(cur.rowcount)
