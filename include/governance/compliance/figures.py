"""The figures a reviewer reads, each one bounded query over the evidence and the ledgers, shared
by the Governance page in Airflow and the period report (#13; "What proof means here" in
docs/requirements.md; RET-8, REQ-1, TP-5, SEC-1).

- ``rules_now``: per rule, its last sweep and effect, and what the last audit found (overdue, oldest
  overdue age, held) with a red/amber/green status;
- ``daily_effects``: per rule and UTC day of a period, what the sweeps removed, anonymised, purged
  and found held (the sum of the rules' ``sweep_rule`` summaries);
- ``audit_runs``: each audit of a period and its result;
- ``requests``, ``recipient_notices``, ``holds``: the rights ledgers, as far as they are built;
- the evidence chain's own figures (head, entries per kind, verifications): ``chain``.

Every function takes a cursor and plain values and returns frozen dataclasses; ``as_dict`` turns
them into JSON-ready dicts (instants as ISO 8601 UTC).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal

from psycopg2.extensions import cursor

from governance.policy import Policy
from governance.windows import as_utc, iso

Status = Literal["green", "amber", "red"]
# An audit older than this is stale: the rule shows amber (retention_audit runs after every hourly
# sweep and daily at the latest).
AUDIT_STALE_AFTER = timedelta(hours=26)


def as_dict(value: Any) -> Any:
    """A figure (or a list of them) as JSON-ready data: instants ISO 8601 UTC, days ISO dates."""
    if isinstance(value, list):
        return [as_dict(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: as_dict(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: as_dict(v) for k, v in value.items()}
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


@dataclass(frozen=True)
class RuleNow:
    rule_id: str
    requirements: list[str]
    action: str  # the policy rule's action; "check" for an audit-only check (objects, rights)
    last_sweep_at: datetime | None
    last_sweep_run_id: str | None
    removed: int  # by the last sweep run of the rule (its summary)
    anonymised: int
    purged: int
    audited_at: datetime | None
    audit_run_id: str | None
    overdue: int | None  # what the last audit found; None: never audited
    oldest_overdue_seconds: int | None
    held: int | None
    status: Status
    why: str  # the status in words: "2 overdue in the audit of ...", "never audited", ...


_RULES_NOW = """
WITH last_audit AS (
    SELECT run_id FROM governance.evidence WHERE kind = 'audit' ORDER BY kind, recorded_at DESC LIMIT 1
), ids AS (
    SELECT unnest(%(rules)s::text[]) AS rule_id
    UNION
    SELECT e.rule_id FROM governance.evidence e, last_audit a
    WHERE e.kind = 'audit_rule' AND e.run_id = a.run_id
)
SELECT ids.rule_id, s.recorded_at, s.run_id,
       coalesce((s.counts ->> 'deleted')::bigint, 0) + coalesce((s.counts ->> 'rows_estimated')::bigint, 0),
       coalesce((s.counts ->> 'anonymised')::bigint, 0), coalesce((s.counts ->> 'objects_deleted')::bigint, 0),
       a.recorded_at, a.run_id, (a.counts ->> 'overdue')::bigint, (a.counts ->> 'oldest_overdue_seconds')::bigint,
       (a.counts ->> 'held')::bigint, a.requirements
FROM ids
LEFT JOIN LATERAL (
    SELECT e.recorded_at, e.run_id, e.counts FROM governance.evidence e
    WHERE e.kind = 'sweep_rule' AND e.rule_id = ids.rule_id ORDER BY e.kind DESC, e.rule_id DESC, e.entry_id DESC LIMIT 1
) s ON true
LEFT JOIN LATERAL (
    SELECT e.recorded_at, e.run_id, e.counts, e.requirements FROM governance.evidence e
    WHERE e.kind = 'audit_rule' AND e.rule_id = ids.rule_id ORDER BY e.kind DESC, e.rule_id DESC, e.entry_id DESC LIMIT 1
) a ON true
ORDER BY ids.rule_id
"""
# The last sweep run's total per rule: a run records summary, summary#2... (cumulative), so the
# run's newest summary is its total. The laterals order by the whole of evidence_kind_rule_idx so
# that a rule without any entry of the kind (an audit-only check never swept) costs one index probe,
# not a backward scan of the whole log by entry_id. The statement reads the figures out of the
# entries' counts itself (removed: deleted + rows_estimated; anonymised; purged: objects_deleted, as
# ``_DAILY``): the page's Python gets numbers, not documents to decode.


def rules_now(cur: cursor, policy: Policy, *, now: datetime) -> list[RuleNow]:
    """Every policy rule, and every check the last audit ran, with its last sweep and audit."""
    rules = {r.id: r for r in policy.rules}
    cur.execute(_RULES_NOW, {"rules": list(rules)})
    rows = cur.fetchall()
    now = as_utc(now)
    out = []
    statuses: dict[tuple[int | None, datetime | None], tuple[Status, str]] = {}  # most rules share one audit
    for rule_id, swept_at, sweep_run, removed, anonymised, purged, audited_at, audit_run, *audit_figures in rows:
        overdue, oldest, held, audit_reqs = audit_figures
        rule = rules.get(rule_id)
        audited_at = as_utc(audited_at) if audited_at else None
        key = (overdue, audited_at)
        if key not in statuses:
            statuses[key] = _status(overdue, audited_at, now)
        status, why = statuses[key]
        out.append(
            RuleNow(
                rule_id=rule_id,
                requirements=list(rule.requirements) if rule else list(audit_reqs or []),
                action=rule.action.type if rule else "check",
                last_sweep_at=as_utc(swept_at) if swept_at else None,
                last_sweep_run_id=sweep_run,
                removed=removed,
                anonymised=anonymised,
                purged=purged,
                audited_at=audited_at,
                audit_run_id=audit_run,
                overdue=overdue,
                oldest_overdue_seconds=oldest,
                held=held,
                status=status,
                why=why,
            )
        )
    return out


def _status(overdue: int | None, audited_at: datetime | None, now: datetime) -> tuple[Status, str]:
    """A rule's status at ``now`` (UTC) from its last audit's instant (UTC; None: never audited) and
    the overdue records it found."""
    if audited_at is None:
        return "amber", "never audited"
    at = iso(audited_at)
    if overdue:
        return "red", f"{overdue} overdue in the audit of {at}"
    if now - audited_at > AUDIT_STALE_AFTER:
        return "amber", f"last audit {at} is older than {AUDIT_STALE_AFTER}"
    return "green", f"nothing overdue in the audit of {at}"


@dataclass(frozen=True)
class DailyEffect:
    day: date  # UTC
    rule_id: str
    removed: int
    anonymised: int
    purged: int
    held: int
    runs: int  # sweep runs of the rule that day (with an effect or a first summary)
    run_ids: list[str] = field(default_factory=list)


_DAILY = """
WITH last_summary AS (   -- a run's newest summary of a rule is its total (summaries are cumulative)
    SELECT DISTINCT ON (e.run_id, e.rule_id) e.run_id, e.rule_id, e.recorded_at, e.counts
    FROM governance.evidence e
    WHERE e.kind = 'sweep_rule' AND e.recorded_at >= %(start)s AND e.recorded_at < %(end)s
    ORDER BY e.run_id, e.rule_id, e.entry_id DESC
)
SELECT (s.recorded_at AT TIME ZONE 'UTC')::date AS day, s.rule_id,
       sum(coalesce((s.counts ->> 'deleted')::bigint, 0) + coalesce((s.counts ->> 'rows_estimated')::bigint, 0)),
       sum(coalesce((s.counts ->> 'anonymised')::bigint, 0)),
       sum(coalesce((s.counts ->> 'objects_deleted')::bigint, 0)),
       sum(coalesce((s.counts ->> 'held')::bigint, 0)),
       count(*), array_agg(s.run_id ORDER BY s.recorded_at)
FROM last_summary s GROUP BY 1, 2 ORDER BY 1, 2
"""


def daily_effects(cur: cursor, *, start: datetime, end: datetime) -> list[DailyEffect]:
    """Per UTC day in [start, end) and rule: what the sweeps did (a run counted on the day of its
    last summary of the rule)."""
    cur.execute(_DAILY, {"start": start, "end": end})
    return [
        DailyEffect(day, rule, int(rem), int(anon), int(purged), int(held), int(runs), list(run_ids))
        for day, rule, rem, anon, purged, held, runs, run_ids in cur.fetchall()
    ]


@dataclass(frozen=True)
class AuditRun:
    run_id: str
    recorded_at: datetime
    as_of: datetime | None
    rules_checked: int
    overdue_total: int
    rules_over: list[str]
    rights_failed: list[str]
    ok: bool


_AUDITS = """
SELECT run_id, recorded_at, as_of, counts, details FROM governance.evidence
WHERE kind = 'audit' AND recorded_at >= %(start)s AND recorded_at < %(end)s ORDER BY recorded_at, entry_id
"""


def audit_runs(cur: cursor, *, start: datetime, end: datetime) -> list[AuditRun]:
    """Each audit recorded in [start, end), oldest first, and what it found."""
    cur.execute(_AUDITS, {"start": start, "end": end})
    out = []
    for run_id, recorded_at, as_of, counts, details in cur.fetchall():
        over, failed = list(details.get("rules_over") or []), list(details.get("rights_failed") or [])
        out.append(
            AuditRun(
                run_id=run_id,
                recorded_at=as_utc(recorded_at),
                as_of=as_utc(as_of) if as_of else None,
                rules_checked=int(details.get("rules_checked") or 0),
                overdue_total=int(counts.get("overdue_total") or 0),
                rules_over=over,
                rights_failed=failed,
                ok=not over and not failed,
            )
        )
    return out


@dataclass(frozen=True)
class RequestFigure:
    request_id: int
    kind: str
    state: str
    received_at: datetime
    due_at: datetime  # the deadline in force (extended when extended)
    closed_at: datetime | None
    days_left: int | None  # open requests: whole days to the deadline (negative: late)
    late: bool  # open past its deadline, or closed after it
    answered_in_time: bool | None  # closed requests: closed by the deadline; None while open


def requests(cur: cursor, *, start: datetime, end: datetime, now: datetime) -> list[RequestFigure]:
    """Requests received in [start, end), and every request still open at ``now``."""
    cur.execute(
        "SELECT request_id, kind, state, received_at, coalesce(extended_due_at, due_at), closed_at "
        "FROM governance.subject_requests WHERE (received_at >= %s AND received_at < %s) "
        "OR state IN ('received', 'verified', 'in_progress') ORDER BY received_at, request_id",
        (start, end),
    )
    now = as_utc(now)
    out = []
    for request_id, kind, state, received_at, due_at, closed_at in cur.fetchall():
        due = as_utc(due_at)
        closed = as_utc(closed_at) if closed_at else None
        days_left = None if closed else (due - now).days
        late = (closed > due) if closed else (now > due)
        out.append(
            RequestFigure(
                request_id=int(request_id),
                kind=kind,
                state=state,
                received_at=as_utc(received_at),
                due_at=due,
                closed_at=closed,
                days_left=days_left,
                late=late,
                answered_in_time=None if closed is None else closed <= due,
            )
        )
    return out


@dataclass(frozen=True)
class RecipientNotices:
    recipient_id: str
    queued: int
    sending: int
    sent: int  # sent, waiting for the acknowledgement
    failed: int  # failed, to be retried
    acknowledged: int
    dead: int
    ack_overdue: int  # sent, no acknowledgement, compliance alerted


def recipient_notices(cur: cursor) -> list[RecipientNotices]:
    """Per recipient of the registry that was ever sent a notice: its notices by state."""
    cur.execute(
        "SELECT recipient_id, count(*) FILTER (WHERE state = 'queued'), count(*) FILTER (WHERE state = 'sending'), "
        "count(*) FILTER (WHERE state = 'sent'), count(*) FILTER (WHERE state = 'failed'), "
        "count(*) FILTER (WHERE state = 'acknowledged'), count(*) FILTER (WHERE state = 'dead'), "
        "count(*) FILTER (WHERE state = 'sent' AND ack_overdue_alerted_at IS NOT NULL) "
        "FROM governance.recipient_outbox GROUP BY recipient_id ORDER BY recipient_id"
    )
    return [RecipientNotices(str(r[0]), *(int(v) for v in r[1:])) for r in cur.fetchall()]


@dataclass(frozen=True)
class HoldFigure:
    hold_id: int
    scope: str  # person | record | rule
    rule_id: str | None  # scope rule
    table_name: str | None  # scope record (the record's key is not shown: it may be an address)
    request_id: int | None  # a restriction's hold (RES-1)
    set_by: str
    set_at: datetime
    ends_at: datetime | None
    lifted_at: datetime | None
    lifted_by: str | None
    in_force: bool


def holds(cur: cursor, *, now: datetime, since: datetime | None = None) -> list[HoldFigure]:
    """Holds in force at ``now``, and those lifted or ended since ``since`` (all when None); no
    reason (free text) and no subject: the hold's id names it."""
    cur.execute(
        "SELECT hold_id, scope, rule_id, table_name, request_id, set_by, set_at, ends_at, lifted_at, lifted_by, "
        "(set_at <= %(now)s AND (ends_at IS NULL OR ends_at > %(now)s) AND (lifted_at IS NULL OR lifted_at > %(now)s)) "
        "FROM governance.legal_holds WHERE %(since)s::timestamptz IS NULL "
        "OR coalesce(lifted_at, ends_at, 'infinity') >= %(since)s ORDER BY hold_id",
        {"now": now, "since": since},
    )
    return [
        HoldFigure(
            hold_id=int(r[0]),
            scope=r[1],
            rule_id=r[2],
            table_name=r[3],
            request_id=int(r[4]) if r[4] is not None else None,
            set_by=r[5],
            set_at=as_utc(r[6]),
            ends_at=as_utc(r[7]) if r[7] else None,
            lifted_at=as_utc(r[8]) if r[8] else None,
            lifted_by=r[9],
            in_force=bool(r[10]),
        )
        for r in cur.fetchall()
    ]


@dataclass(frozen=True)
class RuleAudits:
    rule_id: str
    audits: int  # audits of the period that checked the rule
    audits_overdue: int  # ... and found something of it overdue
    max_overdue: int
    max_oldest_overdue_seconds: int | None
    last_overdue: int  # what the period's last audit of the rule found
    last_held: int


_RULE_AUDITS = """
SELECT rule_id, count(*), count(*) FILTER (WHERE coalesce((counts ->> 'overdue')::bigint, 0) > 0),
       coalesce(max((counts ->> 'overdue')::bigint), 0), max((counts ->> 'oldest_overdue_seconds')::bigint),
       coalesce((array_agg((counts ->> 'overdue')::bigint ORDER BY entry_id DESC))[1], 0),
       coalesce((array_agg((counts ->> 'held')::bigint ORDER BY entry_id DESC))[1], 0)
FROM governance.evidence WHERE kind = 'audit_rule' AND recorded_at >= %s AND recorded_at < %s
GROUP BY rule_id ORDER BY rule_id
"""


def rule_audits(cur: cursor, *, start: datetime, end: datetime) -> list[RuleAudits]:
    """Per rule (and check), what the audits recorded in [start, end) found (``audit_rule`` entries)."""
    cur.execute(_RULE_AUDITS, (start, end))
    return [
        RuleAudits(
            str(r[0]), int(r[1]), int(r[2]), int(r[3]), int(r[4]) if r[4] is not None else None, int(r[5]), int(r[6])
        )
        for r in cur.fetchall()
    ]


def policy_versions(cur: cursor, *, start: datetime, end: datetime) -> list[str]:
    """The policy versions (sha256 of the policy file) the entries recorded in [start, end) name."""
    cur.execute(
        "SELECT DISTINCT policy_version FROM governance.evidence WHERE recorded_at >= %s AND recorded_at < %s "
        "AND policy_version IS NOT NULL ORDER BY 1",
        (start, end),
    )
    return [str(r[0]) for r in cur.fetchall()]
