"""The Governance page (#13): server-rendered HTML views of ``governance.compliance.figures`` at
/governance/view/{now,history,requests,recipients,holds,evidence}, shown inside Airflow's UI as
an external view (``plugins/governance_plugin.py``). Jinja2 templates next to this file, inline
CSS; the charts (``governance.compliance.charts``' Vega-Lite specs) drawn in the browser by the
script the app serves itself (``chart_script``): nothing is fetched from elsewhere.

Who sees what (Airflow's own authentication and authorisation, as in ``access``): every view needs
an authenticated caller (the UI's ``_token`` cookie or a Bearer token; anonymous GETs are sent to
Airflow's login, see ``app``) with GET on the DAG ``retention_audit`` (the audit the page reports
on); the Requests view also GET on ``subject_requests`` (as the request API). The verify button
POSTs to /governance/view/evidence/verify and needs PUT on ``retention_audit`` (SimpleAuthManager:
the user role and up; FAB: ``can_edit`` on ``DAG:retention_audit``); it records the verification
with the acting Airflow user's name (SEC-1). No personal data: ids, counts, hashes (CONTRIBUTING.md
habit 6); holds show their scope, never their subject or reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from governance.compliance import chain, figures
from governance.windows import iso
from governance_airflow.api import chart_script
from governance_airflow.api.access import REQUESTS_DAG_ID
from governance_airflow.api.cells import audit_rows, daily_rows, duration, now_rows, run_cell, when
from governance_airflow.api.readers import one_snapshot, one_statement

if TYPE_CHECKING:
    from psycopg2.extensions import connection

    from governance.policy import Policy

VIEW_PREFIX = "/view"
PAGE_DAG_ID = "retention_audit"  # whose permissions guard the page
read_page = Depends(requires_access_dag("GET", param_dag_id=PAGE_DAG_ID))
verify_chain = Depends(requires_access_dag("PUT", param_dag_id=PAGE_DAG_ID))
read_requests = Depends(requires_access_dag("GET", param_dag_id=REQUESTS_DAG_ID))

VIEWS = (("now", "Now"), ("history", "History"), ("requests", "Requests"), ("recipients", "Recipients"))
VIEWS += (("holds", "Holds"), ("evidence", "Evidence"))
DEFAULT_DAYS = {"history": 14, "requests": 30, "holds": 90}
MAX_DAYS = 366
SEVERITY = ("red", "amber", "green")

templates = Jinja2Templates(directory=Path(__file__).with_name("templates"))
templates.env.filters.update(when=when, duration=duration)
templates.env.globals.update(daily_rows=daily_rows, audit_rows=audit_rows)
templates.env.auto_reload = False  # the templates ship with the package: no stat() of each file per page


@dataclass(frozen=True)
class Period:
    first: date
    last: date  # inclusive

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time(), UTC)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.last + timedelta(days=1), time(), UTC)

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]


def period(request: Request, view: str, today: date) -> Period:
    """The period of ``?from=YYYY-MM-DD&to=YYYY-MM-DD`` (UTC days, both included); 400 naming the
    parameter when it is not a date, ``from`` is after ``to`` or it is longer than MAX_DAYS."""
    values = {}
    for name, default in (("to", today), ("from", None)):
        text = request.query_params.get(name) or ""
        try:
            values[name] = date.fromisoformat(text) if text else default
        except ValueError:
            raise HTTPException(400, f"'{name}' must be a day as YYYY-MM-DD") from None
    last = values["to"] or today
    first = values["from"] or last - timedelta(days=DEFAULT_DAYS[view] - 1)
    if first > last:
        raise HTTPException(400, "'from' must not be after 'to'")
    if (last - first).days >= MAX_DAYS:
        raise HTTPException(400, f"the period from 'from' to 'to' must be at most {MAX_DAYS} days")
    return Period(first, last)


def login_url(request: Request) -> str:
    """Airflow's login page, coming back to the view asked for."""
    from airflow.api_fastapi.app import get_auth_manager

    return str(get_auth_manager().get_url_login(next_url=str(request.url)))


def same_origin(request: Request) -> None:
    """A form POST authenticated by the session cookie must come from this origin (the cookie is
    SameSite=lax too): a cross-site form cannot make a logged-in reviewer's browser record entries."""
    if request.headers.get("authorization"):
        return
    origin = request.headers.get("origin") or request.headers.get("referer") or ""
    if urlsplit(origin).netloc != request.headers.get("host"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "a form post from another site is refused")


def refusal_page(request: Request, code: int, detail: str) -> HTMLResponse:
    """A refusal or a bad parameter as a page of its own: the status and the reason, no figures."""
    return templates.TemplateResponse(
        request, "refused.html", {"code": code, "detail": detail, "views": (), "view": ""}, status_code=code
    )


Connect = Callable[[], AbstractContextManager["connection"]]


def mount_views(
    app: FastAPI, *, read_db: Connect, write_db: Connect, policy: Callable[[], Policy], now: Callable[[], datetime]
) -> None:
    """Add the page's routes to the governance app (``app.create_app``): the views read through
    ``read_db`` (kept-open connections, ``readers``), the verify button writes through ``write_db``."""

    def page(request: Request, user: Any, view: str, **context: Any) -> HTMLResponse:
        if "run" not in context:  # the Now view draws its rows with the page's own
            context["run"] = run_cell(request)
        base = f"{request.scope.get('root_path', '')}{VIEW_PREFIX}"
        return templates.TemplateResponse(
            request,
            f"{view}.html",
            {
                "views": VIEWS,
                "view": view,
                "user": user.get_name(),
                "generated_at": now(),
                "base": base,
                "chart_script": f"{base}{chart_script.PATH}?v={chart_script.version()}",
                **context,
            },
        )

    @contextmanager
    def reading(how: Callable[[connection], AbstractContextManager[Any]]) -> Iterator[Any]:
        """A cursor on a kept-open connection: ``one_statement`` for a view whose figures are one
        statement, ``one_snapshot`` for several (``readers``)."""
        with read_db() as conn, how(conn) as cur:
            yield cur

    chart_script.mount(app, VIEW_PREFIX)

    @app.get(VIEW_PREFIX, include_in_schema=False)
    @app.get(VIEW_PREFIX + "/", include_in_schema=False)
    def index(request: Request) -> Response:
        return RedirectResponse(f"{request.scope.get('root_path', '')}{VIEW_PREFIX}/now", status_code=303)

    @app.get(VIEW_PREFIX + "/now", dependencies=[read_page], response_class=HTMLResponse)
    def now_view(request: Request, user: GetUserDep) -> HTMLResponse:
        """Per rule: last sweep and effect, overdue now, oldest overdue, held; red/amber/green."""
        with reading(one_statement) as cur:
            rules = figures.rules_now(cur, policy(), now=now())
        counts = {s: sum(r.status == s for r in rules) for s in SEVERITY}
        rules.sort(key=lambda r: (SEVERITY.index(r.status), r.rule_id))  # what needs on-call first
        run = run_cell(request)
        return page(request, user, "now", rows=now_rows(rules, run), counts=counts, run=run)

    @app.get(VIEW_PREFIX + "/history", dependencies=[read_page], response_class=HTMLResponse)
    def history_view(request: Request, user: GetUserDep) -> HTMLResponse:
        """Per rule and day of a period: the sweeps' effects as charts; each audit and its result."""
        from governance.compliance import charts

        chosen = period(request, "history", now().date())
        with reading(one_snapshot) as cur:
            daily = figures.daily_effects(cur, start=chosen.start, end=chosen.end)
            audits = figures.audit_runs(cur, start=chosen.start, end=chosen.end)
        effects = [d for d in daily if d.removed or d.anonymised or d.purged or d.held]
        specs = {"effects": charts.effects_spec(daily), "audits": charts.audits_spec(audits)}
        return page(request, user, "history", period=chosen, daily=daily, effects=effects, audits=audits, specs=specs)

    @app.get(VIEW_PREFIX + "/requests", dependencies=[read_page, read_requests], response_class=HTMLResponse)
    def requests_view(request: Request, user: GetUserDep) -> HTMLResponse:
        """Requests received in the period and all still open: deadlines, days left or late."""
        chosen = period(request, "requests", now().date())
        from governance.compliance import charts

        with reading(one_statement) as cur:
            found = figures.requests(cur, start=chosen.start, end=chosen.end, now=now())
        specs = {"requests": charts.requests_spec(found)}
        return page(request, user, "requests", period=chosen, requests=found, specs=specs)

    @app.get(VIEW_PREFIX + "/recipients", dependencies=[read_page], response_class=HTMLResponse)
    def recipients_view(request: Request, user: GetUserDep) -> HTMLResponse:
        """Per recipient: notices queued, sent, acknowledged, failed, dead (TP-5)."""
        with reading(one_statement) as cur:
            found = figures.recipient_notices(cur)
        return page(request, user, "recipients", recipients=found)

    @app.get(VIEW_PREFIX + "/holds", dependencies=[read_page], response_class=HTMLResponse)
    def holds_view(request: Request, user: GetUserDep) -> HTMLResponse:
        """Holds in force now, and those lifted or ended in the period."""
        chosen = period(request, "holds", now().date())
        with reading(one_statement) as cur:
            found = figures.holds(cur, now=now(), since=chosen.start)
        return page(request, user, "holds", period=chosen, holds=found)

    @app.get(VIEW_PREFIX + "/evidence", dependencies=[read_page], response_class=HTMLResponse)
    def evidence_view(request: Request, user: GetUserDep) -> HTMLResponse:
        """The chain's head, entries per kind, the last verification; the verify button."""
        with reading(one_snapshot) as cur:
            found = chain.evidence_status(cur)
        return page(request, user, "evidence", status=found, verified=request.query_params.get("verified"))

    @app.post(VIEW_PREFIX + "/evidence/verify", dependencies=[read_page, verify_chain], include_in_schema=False)
    def verify_view(request: Request, user: GetUserDep) -> Response:
        """Verify the whole chain and its anchors outside the database (SEC-1), as the period report
        does; record the result with the acting user; show it."""
        from governance.compliance.report import verify_and_record

        same_origin(request)
        with write_db() as conn:
            at = now()
            result = verify_and_record(
                conn, _s3_or_none(), policy(), by=user.get_name(), run_id=f"governance_page/{iso(at)}", now=at
            )
        outcome = "ok" if result.ok else "problems"
        return RedirectResponse(f"{request.scope.get('root_path', '')}{VIEW_PREFIX}/evidence?verified={outcome}", 303)

    @app.post(VIEW_PREFIX + "/report", dependencies=[read_page, verify_chain], include_in_schema=False)
    async def report_view(request: Request, user: GetUserDep) -> Response:
        """The period report (``governance.compliance.report``, as ``governance report``) of the form's
        ``from``/``to``/``format``, as a download. Building it verifies the chain and records that
        verification with the acting user (SEC-1): a write, hence a POST needing PUT, as the button."""
        from fastapi.concurrency import run_in_threadpool

        same_origin(request)
        form = await request.form()
        fields = {k: str(form.get(k) or "") for k in ("from", "to", "format")}
        return await run_in_threadpool(_report, user.get_name(), fields)

    def _report(by: str, fields: dict[str, str]) -> Response:
        from governance.compliance import report
        from governance.errors import ReportError

        try:
            chosen = report.period_of(fields["from"], fields["to"])
            fmt = report.check_format(fields["format"] or "html")
        except ReportError as exc:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc).replace("--", "")) from None
        at = now()
        with write_db() as conn:
            result = report.verify_and_record(
                conn, _s3_or_none(), policy(), by=by, run_id=f"governance_page/report/{iso(at)}", now=at
            )
            built = report.build(conn, policy(), chosen, verification=result, generated_at=at, generated_by=by)
        body = report.render(built, fmt)
        name = f"governance-report-{chosen.first}-{chosen.last}.{fmt}"
        media = {"html": "text/html; charset=utf-8", "pdf": "application/pdf", "json": "application/json"}[fmt]
        return Response(body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _s3_or_none() -> Any:
    """The object store for the anchors' check (Airflow connection ``governance_s3``), as the daily
    report uses it; without one the report says the anchors were not checked."""
    from governance_airflow.connections import optional_connection

    if optional_connection("governance_s3") is None:
        return None
    import governance_airflow

    return governance_airflow.s3_client()
