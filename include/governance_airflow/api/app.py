"""The request API (REQ-1) and the Governance page (#13, ``views``): ``governance request open|verify|extend|refuse|withdraw|list|show`` over
HTTP for the shop's support tool, each route a thin call into ``governance.requests.ledger``.

Served by Airflow's API server under ``/governance`` (``plugins/governance_plugin.py``); who may
call what is ``access``. The shop's database is the Airflow connection ``governance_db``, opened
per call; the policy is loaded once per API server process (restart it after a policy change, as
after a plugin change). Errors: a bad body 422 naming the field, never echoing its value; a
``GovernanceError`` with its message: 400, or 404 (no such request), 503 (database unreachable),
500 (the server's policy or settings).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, Query, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from governance import requests as ledger
from governance.db import transaction
from governance.errors import GovernanceError, InfrastructureError, PolicyError, RequestNotFound, SettingsError
from governance_airflow.api.access import ActingUser, read_requests, write_requests
from governance_airflow.api.bodies import ExtendBody, KindFilter, OpenBody, RefuseBody, StateFilter, VerifyBody, states
from governance_airflow.api.readers import ReadPool
from governance_airflow.api.views import VIEW_PREFIX, login_url, mount_views, refusal_page

if TYPE_CHECKING:
    from psycopg2.extensions import connection

    from governance.policy import Policy

URL_PREFIX = "/governance"
MAX_LIST = 1000


@cache
def policy() -> Policy:
    """The policy, validated once per process (``governance_airflow.tasks.load_policy``)."""
    from governance_airflow.tasks import load_policy

    return load_policy()


@contextmanager
def shop_db() -> Iterator[connection]:
    """A connection to the shop's database from the Airflow connection ``governance_db``, for one
    call, opened after the caller's permission and body were checked."""
    from governance_airflow.connections import db_connection

    conn = db_connection()
    try:
        yield conn
    finally:
        conn.close()


@cache
def read_pool() -> ReadPool:
    """The page's read-only connections (``readers``), per API server process."""
    from governance_airflow.connections import db_connection

    return ReadPool(dsn=_shop_dsn, connect=lambda dsn: db_connection(dsn=dsn))


def _shop_dsn() -> str:
    from governance_airflow.connections import db_dsn

    try:
        return db_dsn()
    except Exception as exc:  # Airflow raises its own not-found and parse errors
        raise InfrastructureError(
            f"cannot read the Airflow connection 'governance_db': {type(exc).__name__}. Fix it under "
            "Admin > Connections or AIRFLOW_CONN_GOVERNANCE_DB"
        ) from None


@contextmanager
def page_db() -> Iterator[connection]:
    """A kept-open connection for one of the page's read-only views."""
    with read_pool().connection() as conn:
        yield conn


def now() -> datetime:
    return datetime.now(UTC)


def create_app() -> FastAPI:
    """The app the plugin mounts. Every route authenticates (app-level ``get_user``) and checks its
    permission (``read_requests`` or ``write_requests``); the schema too needs a reader."""
    from airflow.api_fastapi.core_api.security import get_user

    app = FastAPI(
        title="governance: data-subject requests",
        description="Intake for the shop's support tool (REQ-1). Authenticate as for Airflow's API: "
        "POST /auth/token, then Authorization: Bearer <token>.",
        dependencies=[Depends(get_user)],
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.add_exception_handler(RequestValidationError, _invalid_body)
    app.add_exception_handler(GovernanceError, _governance_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    _routes(app)
    _mount_acks(app)
    mount_views(app, read_db=page_db, write_db=shop_db, policy=policy, now=lambda: now())
    return app


async def _http_error(request: Request, exc: Exception) -> Response:
    """The Governance page's refusals as pages (``views``): an anonymous GET goes to Airflow's
    login and comes back; a refusal (403) or a bad period (400) is a page saying so. The API's
    answers stay JSON."""
    assert isinstance(exc, StarletteHTTPException)
    if not request.url.path.startswith(f"{request.scope.get('root_path', '')}{VIEW_PREFIX}"):
        return await http_exception_handler(request, exc)
    if exc.status_code == status.HTTP_401_UNAUTHORIZED and request.method == "GET":
        return RedirectResponse(login_url(request), status_code=status.HTTP_303_SEE_OTHER)
    return refusal_page(request, exc.status_code, str(exc.detail))


def _mount_acks(app: FastAPI) -> None:
    """The recipients' signed acknowledgement callback (TP-5, ``api.acks``), at
    /governance/notices/{id}/ack: a mounted app, outside the Airflow login the routes above need."""
    from governance_airflow.api.acks import MOUNT, create_ack_app
    from governance_airflow.connections import AirflowSecrets, db_connection

    app.mount(MOUNT, create_ack_app(connect=db_connection, policy=policy, secrets=AirflowSecrets()))


def _routes(app: FastAPI) -> None:
    @app.post("/requests", status_code=status.HTTP_201_CREATED, dependencies=[write_requests])
    def open_request(body: OpenBody, user: ActingUser) -> dict[str, Any]:
        """Open a request (``governance request open``); a subject matching nobody is recorded too."""
        with shop_db() as conn:
            opened = ledger.open_request(
                conn, policy(), **body.model_dump(exclude_none=True), opened_by=user, now=now()
            )
        return shown(opened)

    @app.post("/requests/{request_id}/verify", dependencies=[write_requests])
    def verify(request_id: int, body: VerifyBody, user: ActingUser) -> dict[str, Any]:
        """Record the identity check (``governance request verify``)."""
        with shop_db() as conn:
            return shown(ledger.verify(conn, policy(), request_id, verified_by=user, method=body.method, now=now()))

    @app.post("/requests/{request_id}/extend", dependencies=[write_requests])
    def extend(request_id: int, body: ExtendBody) -> dict[str, Any]:
        """Extend the deadline by up to two months, with the reason (``governance request extend``)."""
        with shop_db() as conn:
            return shown(ledger.extend(conn, policy(), request_id, months=body.months, reason=body.reason, now=now()))

    @app.post("/requests/{request_id}/refuse", dependencies=[write_requests])
    def refuse(request_id: int, body: RefuseBody, user: ActingUser) -> dict[str, Any]:
        """Refuse the request, with the reason (``governance request refuse``)."""
        with shop_db() as conn:
            return shown(ledger.refuse(conn, policy(), request_id, reason=body.reason, by=user, now=now()))

    @app.post("/requests/{request_id}/withdraw", dependencies=[write_requests])
    def withdraw(request_id: int, user: ActingUser) -> dict[str, Any]:
        """The subject withdrew the request (``governance request withdraw``)."""
        with shop_db() as conn:
            return shown(ledger.withdraw(conn, policy(), request_id, by=user, now=now()))

    @app.get("/requests", dependencies=[read_requests])
    def list_requests(
        state: Annotated[list[StateFilter] | None, Query()] = None,
        kind: Annotated[list[KindFilter] | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = MAX_LIST,
    ) -> list[dict[str, Any]]:
        """Requests in the order they were opened, filtered by state (or "open", "closed") and kind
        (``governance request list``)."""
        with shop_db() as conn, transaction(conn, read_only=True) as cur:
            found = ledger.list_requests(cur, states=states(state), kinds=kind or None, limit=limit)
        return [shown(r) for r in found]

    @app.get("/requests/{request_id}", dependencies=[read_requests])
    def show(request_id: int) -> dict[str, Any]:
        """One request (``governance request show``)."""
        with shop_db() as conn, transaction(conn, read_only=True) as cur:
            return shown(ledger.fetch(cur, request_id))

    @app.get("/openapi.json", include_in_schema=False, dependencies=[read_requests])
    def schema() -> dict[str, Any]:
        return app.openapi()


def shown(request: ledger.SubjectRequest) -> dict[str, Any]:
    """A ledger row as JSON (``SubjectRequest.to_dict``: ids, states, instants, days left; no
    address, the e-mail pseudonym shortened)."""
    return request.to_dict(now())


async def _invalid_body(request: Request, exc: Exception) -> JSONResponse:
    """422 naming each bad field and why, without the value sent (it may be an address)."""
    assert isinstance(exc, RequestValidationError)
    detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]
    return JSONResponse(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, content={"detail": detail})


async def _governance_error(request: Request, exc: Exception) -> JSONResponse:
    """The library's message (ids and what to fix, never personal data) with the status it means:
    the caller's mistake 400 (no such request 404); the database unreachable 503; the server's own
    configuration (the policy file, the connection's settings) 500."""
    code = status.HTTP_400_BAD_REQUEST
    if isinstance(exc, RequestNotFound):
        code = status.HTTP_404_NOT_FOUND
    elif isinstance(exc, InfrastructureError):
        code = status.HTTP_503_SERVICE_UNAVAILABLE
    elif isinstance(exc, PolicyError | SettingsError):
        code = status.HTTP_500_INTERNAL_SERVER_ERROR
    return JSONResponse(status_code=code, content={"detail": str(exc)})
