"""The period report (#13; "What proof means here" in docs/requirements.md): a document a reviewer
can file, for whole UTC days [--from, --to]. It owns the period (``period_of``: bad input named by
its flag), the verification it records (``verify_and_record``: ``governance.evidence`` checked, with
the anchors where there is an object store, SEC-1, and recorded with
``chain.record_verification``), the report's data (``build``, from ``governance.compliance.figures``
only; validated against the shipped ``report.schema.json``) and its renderings (``render``: HTML
with inline SVG charts, PDF with WeasyPrint, JSON).

No personal data: rule ids, request and hold ids, recipient ids, counts, instants and hashes.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from governance import evidence
from governance.compliance import chain, figures
from governance.compliance.figures import AuditRun, DailyEffect, RequestFigure, as_dict
from governance.db import transaction
from governance.errors import ReportError
from governance.policy import Policy
from governance.windows import as_utc, iso

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from psycopg2.extensions import connection

FORMATS = ("html", "pdf", "json")
MAX_DAYS = 366
SCHEMA_PATH = Path(__file__).with_name("report.schema.json")
TEMPLATES_DIR = Path(__file__).with_name("templates")
SCHEMA_ID = "governance-period-report/1"
MEDIA_TYPES = {"html": "text/html; charset=utf-8", "pdf": "application/pdf", "json": "application/json"}


@dataclass(frozen=True)
class Period:
    """Whole UTC days, ``first`` to ``last`` inclusive: the instants [start, end)."""

    first: date
    last: date

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time(0), tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.last + timedelta(days=1), time(0), tzinfo=UTC)

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1


def parse_day(text: str, flag: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ReportError(f"{flag} {text!r} is not a date; write a UTC day as YYYY-MM-DD, e.g. 2026-11-24") from None


def period_of(from_text: str, to_text: str) -> Period:
    """The period of ``--from``/``--to`` (UTC days, both included), or a ReportError naming the flag."""
    first, last = parse_day(from_text, "--from"), parse_day(to_text, "--to")
    if first > last:
        raise ReportError(f"--from {first} is after --to {last}; give the earlier day as --from")
    period = Period(first, last)
    if period.days > MAX_DAYS:
        raise ReportError(f"--from {first} --to {last} is {period.days} days; a report covers at most {MAX_DAYS}")
    return period


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ReportError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    return fmt


def verify_and_record(
    conn: connection, s3: S3Client | None, policy: Policy, *, by: str, run_id: str, now: datetime
) -> evidence.Verification:
    """Check the evidence chain (and its anchors where there is an object store) and record the
    result as an entry of its own (SEC-1), so the report states a verification that is itself proof."""
    from governance.anchors import evidence_key, verify_with_anchors

    if s3 is None:
        result = dataclasses.replace(evidence.verify(conn), notes=["anchors not checked: no object store given"])
    else:
        result = verify_with_anchors(conn, s3, policy.object_store.evidence_anchor_bucket, evidence_key())
    conn.rollback()  # verify reads outside governance.db.transaction: end its implicit transaction
    with transaction(conn) as cur:
        chain.record_verification(cur, result, by=by, run_id=run_id, now=now)
    return result


@dataclass(frozen=True)
class Report:
    """The report's data (``data``: what the JSON is, schema-valid) and the figures its charts draw."""

    data: dict[str, Any]
    daily: list[DailyEffect]
    runs: list[AuditRun]
    requests: list[RequestFigure]


def build(
    conn: connection,
    policy: Policy,
    period: Period,
    *,
    verification: evidence.Verification,
    generated_at: datetime,
    generated_by: str,
) -> Report:
    """The report of ``period`` from the shared figures, as of the period's end (or now, if earlier)."""
    as_of = min(period.end, as_utc(generated_at))
    start, end = period.start, period.end
    with transaction(conn, read_only=True) as cur:
        daily = figures.daily_effects(cur, start=start, end=end)
        runs = figures.audit_runs(cur, start=start, end=end)
        audits = figures.rule_audits(cur, start=start, end=end)
        reqs = figures.requests(cur, start=start, end=end, now=as_of)
        notices = figures.recipient_notices(cur)
        hold_list = [h for h in figures.holds(cur, now=as_of, since=start) if h.set_at < end]
        status = chain.evidence_status(cur)
        versions = figures.policy_versions(cur, start=start, end=end)
    rules = _rule_rows(policy, daily, audits)
    data: dict[str, Any] = {
        "schema": SCHEMA_ID,
        "period": {"from": period.first.isoformat(), "to": period.last.isoformat(), "days": period.days},
        "period_start": iso(start),
        "period_end": iso(end),
        "as_of": iso(as_of),
        "generated_at": iso(generated_at),
        "generated_by": generated_by,
        "policy": {"name": policy.policy.name, "file_sha256": policy.version, "versions_in_evidence": versions},
        "summary": _summary(rules, runs, reqs, hold_list),
        "rules": rules,
        "daily_effects": as_dict(daily),
        "audits": as_dict(runs),
        "requests": {"by_kind": _requests_by_kind(reqs, start), "requests": _request_rows(reqs)},
        "recipients": as_dict(notices),
        "holds": _holds(hold_list, start, end),
        "evidence": _evidence(verification, status, generated_by),
    }
    validate(data)
    return Report(data, daily, runs, reqs)


def _rule_rows(policy: Policy, daily: list[DailyEffect], audits: list[figures.RuleAudits]) -> list[dict[str, Any]]:
    """Every policy rule, and every check the period's audits ran, with its effects and audits."""
    by_rule = {r.id: r for r in policy.rules}
    audited = {a.rule_id: a for a in audits}
    ids = list(by_rule) + sorted(({d.rule_id for d in daily} | set(audited)) - set(by_rule))
    rows = []
    for rule_id in ids:
        rule, mine, audit = by_rule.get(rule_id), [d for d in daily if d.rule_id == rule_id], audited.get(rule_id)
        rows.append(
            {
                "rule_id": rule_id,
                "requirements": list(rule.requirements) if rule else [],
                "action": rule.action.type if rule else "check",
                "removed": sum(d.removed for d in mine),
                "anonymised": sum(d.anonymised for d in mine),
                "purged": sum(d.purged for d in mine),
                "held": sum(d.held for d in mine),
                "sweep_runs": sum(d.runs for d in mine),
                "audits": audit.audits if audit else 0,
                "audits_overdue": audit.audits_overdue if audit else 0,
                "max_overdue": audit.max_overdue if audit else 0,
                "last_overdue": audit.last_overdue if audit else None,
                "max_oldest_overdue_seconds": audit.max_oldest_overdue_seconds if audit else None,
            }
        )
    return rows


def _summary(
    rules: list[dict[str, Any]], runs: list[AuditRun], reqs: list[RequestFigure], hold_list: list[figures.HoldFigure]
) -> dict[str, Any]:
    last = runs[-1] if runs else None
    return {
        **{k: sum(r[k] for r in rules) for k in ("removed", "anonymised", "purged", "held", "sweep_runs")},
        "audits": len(runs),
        "audits_with_findings": sum(1 for r in runs if not r.ok),
        "last_audit_overdue": last.overdue_total if last else None,
        "last_audit_ok": last.ok if last else None,
        "requests_late": sum(1 for r in reqs if r.late),
        "holds_in_force": sum(1 for h in hold_list if h.in_force),
    }


def _requests_by_kind(reqs: list[RequestFigure], start: datetime) -> list[dict[str, Any]]:
    kinds: dict[str, dict[str, Any]] = {}
    for r in reqs:
        row = kinds.setdefault(
            r.kind,
            {"kind": r.kind, "received": 0, "completed_in_time": 0, "completed_late": 0, "open": 0, "open_late": 0},
        )
        row["received"] += r.received_at >= start
        if r.closed_at is not None:
            row["completed_in_time" if r.answered_in_time else "completed_late"] += 1
        else:
            row["open"] += 1
            row["open_late"] += r.late
    return [kinds[k] for k in sorted(kinds)]


def _request_rows(reqs: list[RequestFigure]) -> list[dict[str, Any]]:
    keep = ("request_id", "kind", "state", "received_at", "due_at", "closed_at", "late", "answered_in_time")
    return [{k: v for k, v in as_dict(r).items() if k in keep} for r in reqs]


def _holds(hold_list: list[figures.HoldFigure], start: datetime, end: datetime) -> dict[str, Any]:
    """Holds by id (who set them and why stay in the hold's own evidence)."""

    def row(h: figures.HoldFigure) -> dict[str, Any]:
        keep = ("hold_id", "scope", "rule_id", "table_name", "request_id", "set_at", "ends_at", "lifted_at")
        return {k: v for k, v in as_dict(h).items() if k in keep}

    return {
        "in_force": [row(h) for h in hold_list if h.in_force],
        "set_in_period": [row(h) for h in hold_list if start <= h.set_at < end],
        "lifted_in_period": [row(h) for h in hold_list if h.lifted_at is not None and start <= h.lifted_at < end],
        "ended_in_period": [
            row(h) for h in hold_list if h.lifted_at is None and h.ends_at is not None and start <= h.ends_at < end
        ],
    }


def _evidence(result: evidence.Verification, status: chain.EvidenceStatus, by: str) -> dict[str, Any]:
    return {
        "verification": {
            "ok": result.ok,
            "by": by,
            "entries": result.entries,
            "head_entry_id": result.head_entry_id,
            "head_hash": result.head_hash,
            "problems": [{"entry_id": p.entry_id, "problem": p.problem} for p in result.problems],
            "notes": list(result.notes),
        },
        "entries": status.entries,
        "head_entry_id": status.head_entry_id,
        "head_hash": status.head_hash,
        "per_kind": status.per_kind,
    }


@cache
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())
    return loaded


def validate(data: dict[str, Any]) -> None:
    """The report against the shipped schema (JSON Schema 2020-12); a ReportError names the field."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema(), format_checker=jsonschema.FormatChecker())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        where = "/".join(str(p) for p in errors[0].absolute_path) or "(top)"
        raise ReportError(
            f"the report does not match {SCHEMA_PATH.name} ({len(errors)} problem(s)); first at {where}: "
            f"{errors[0].validator} {errors[0].validator_value!r}"
        )


def render(report: Report, fmt: str) -> bytes:
    """The report as ``fmt`` (html, pdf or json)."""
    check_format(fmt)
    if fmt == "json":
        validate(report.data)
        return (json.dumps(report.data, indent=2, sort_keys=True) + "\n").encode()
    html = render_html(report)
    if fmt == "html":
        return html.encode()
    import weasyprint

    return bytes(weasyprint.HTML(string=html, base_url=str(TEMPLATES_DIR)).write_pdf())


def render_html(report: Report) -> str:
    from governance.compliance import charts

    svgs = {
        "effects": charts.effects_chart(report.daily),
        "audits": charts.audits_chart(report.runs),
        "requests": charts.requests_chart(report.requests),
    }
    from markupsafe import Markup

    return str(
        _environment()
        .get_template("report.html.j2")
        .render(r=report.data, charts={k: Markup(v) for k, v in svgs.items()})  # noqa: S704 - our own SVG
    )


@cache
def _environment() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
