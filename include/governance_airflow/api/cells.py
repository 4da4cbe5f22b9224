"""How the Governance page (#13) shows one figure: an instant, a duration, an evidence run id as a
link to its DAG run in Airflow, and the rows of the Now view and of the History view's tables.

The views are benchmarked against their bare SQL (bench/README.md, "The Governance page"), so their
long tables are rendered here in Python rather than by Jinja loops: the Now view's loop escaped
every one of its ~370 cells through a call each and took about three times as long as the rest of
the view's Python; the History view's, over 14 days of hourly sweeps (~4,700 run links, ~330
audits), was most of that view's time once its charts were drawn in the browser. Text from the
evidence (rule ids, reasons, requirements, run ids) is always escaped; numbers are formatted as
integers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from functools import cache, partial
from urllib.parse import quote

from markupsafe import Markup, escape
from starlette.requests import Request

from governance.compliance.figures import AuditRun, DailyEffect, RuleNow

# Evidence run ids of Airflow runs are "<dag_id>/<Airflow run id>" (dags/*.py): linked to the run.
DAG_RUN_ID = re.compile(r"^(?P<dag>[a-z][a-z0-9_]*)/(?P<run>.+)$")
DAG_IDS = frozenset(
    {"retention_sweep", "retention_audit", "recipient_notices", "advertising_audience", "breach_notices"}
    | {"subject_requests", "request_deadlines", "erasure_replay", "compliance_report"}
)
DASH = "—"


def when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else DASH


def duration(seconds: int | None) -> str:
    if seconds is None:
        return DASH
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    return f"{days} d {hours} h" if days else f"{hours} h {rest // 60} min"


def airflow_root(request: Request) -> str:
    """Airflow's base path: the mount point of this app without its own prefix."""
    from governance_airflow.api.app import URL_PREFIX

    root: str = request.scope.get("root_path", "")
    return root.removesuffix(URL_PREFIX)


def run_link(request: Request, run_id: str | None) -> str | None:
    """The Airflow UI's page of the DAG run an evidence run id names, or None (a CLI run)."""
    found = DAG_RUN_ID.match(run_id or "")
    if not found or found["dag"] not in DAG_IDS:
        return None
    return f"{airflow_root(request)}/dags/{found['dag']}/runs/{quote(found['run'], safe='')}"


def run_html(request: Request, run_id: str | None) -> Markup:
    """A run id as the page shows it: a link to its DAG run in Airflow, the bare id (a CLI run), or
    a dash."""
    if not run_id:
        return Markup(DASH)
    href = run_link(request, run_id)
    if href is None:
        return Markup(f'<span class="mono">{escape(run_id)}</span>')
    return Markup(f'<a class="mono" href="{escape(href)}" target="_top">{escape(run_id)}</a>')


def run_cell(request: Request) -> Callable[[str | None], Markup]:
    """``run_html`` for one page: a page shows the same few runs on many rows, each drawn once."""
    return cache(partial(run_html, request))


def _escaper() -> Callable[[str], str]:
    """``escape`` as text, each value escaped once per table (most cells repeat across its rows)."""
    return cache(lambda value: str(escape(value)))


def daily_rows(effects: Iterable[DailyEffect], run: Callable[[str | None], Markup]) -> Markup:
    """The History view's table of effects: one row per rule and day, its figures and its sweep
    runs, one per line (with hourly sweeps 24 a rule and day, ~4,700 links over 14 days)."""
    esc = _escaper()
    rows = []
    for d in effects:
        day, rule_id = d.day.isoformat(), esc(d.rule_id)
        rows.append(
            f'<tr data-rule="{rule_id}" data-day="{day}"><td>{day}</td><td>{rule_id}</td>'
            f'<td class="num">{int(d.removed)}</td><td class="num">{int(d.anonymised)}</td>'
            f'<td class="num">{int(d.purged)}</td><td class="num">{int(d.held)}</td>'
            f"<td>{'<br>'.join(run(run_id) for run_id in d.run_ids)}</td></tr>\n"
        )
    return Markup("".join(rows))


def audit_rows(audits: Iterable[AuditRun], run: Callable[[str | None], Markup]) -> Markup:
    """The History view's table of audits: one row per audit, passed or failed, what it found."""
    esc = _escaper()
    rows = []
    for a in audits:
        result = "passed" if a.ok else "failed"
        over = esc(", ".join(a.rules_over)) if a.rules_over else DASH
        failed = esc(", ".join(a.rights_failed)) if a.rights_failed else DASH
        rows.append(
            f'<tr data-run="{esc(a.run_id)}" data-ok="{str(a.ok).lower()}">'
            f'<td><span class="pill {"green" if a.ok else "red"}">{result}</span></td>'
            f"<td>{when(a.recorded_at)}</td><td>{when(a.as_of)}</td><td>{run(a.run_id)}</td>"
            f'<td class="num">{int(a.rules_checked)}</td><td class="num">{int(a.overdue_total)}</td>'
            f"<td>{over}</td><td>{failed}</td></tr>\n"
        )
    return Markup("".join(rows))


def _count(value: int | None) -> str:
    return DASH if value is None else str(int(value))


def _last(at: datetime | None, run_id: str | None, run: Callable[[str | None], Markup], none: str) -> str:
    if at is None:
        return f'<span class="muted">{none}</span>'
    return f"{when(at)}<div>{run(run_id)}</div>"


def now_rows(rules: Iterable[RuleNow], run: Callable[[str | None], Markup]) -> Markup:
    """The Now view's table body: one row per rule, with its status (``data-status``, the pill and,
    unless green, why), last sweep and effect, and what the last audit found."""
    rows = []
    # Most cells repeat across rules (the statuses, actions, requirements, and the last sweep and
    # last audit: mostly the same run for every rule): each drawn once per page.
    esc = _escaper()
    swept = cache(partial(_last, run=run, none="none yet"))
    audited = cache(partial(_last, run=run, none="never"))
    for r in rules:
        status = esc(r.status)
        why = esc(r.why)
        rule_id = esc(r.rule_id)
        reason = "" if r.status == "green" else f'<div class="why {status}">{why}</div>'
        rows.append(
            f'<tr data-rule="{rule_id}" data-status="{status}">'
            f'<td><span class="pill {status}" title="{why}">{status}</span></td>'
            f"<td><b>{rule_id}</b>{reason}</td>"
            f"<td>{esc(', '.join(r.requirements))}</td>"
            f"<td>{esc(r.action)}</td>"
            f'<td class="when">{swept(r.last_sweep_at, r.last_sweep_run_id)}</td>'
            f'<td class="num removed">{int(r.removed)}</td>'
            f'<td class="num anonymised">{int(r.anonymised)}</td>'
            f'<td class="num purged">{int(r.purged)}</td>'
            f'<td class="num overdue">{_count(r.overdue)}</td>'
            f'<td class="num">{duration(r.oldest_overdue_seconds)}</td>'
            f'<td class="num held">{_count(r.held)}</td>'
            f'<td class="when">{audited(r.audited_at, r.audit_run_id)}</td>'
            "</tr>\n"
        )
    return Markup("".join(rows))
