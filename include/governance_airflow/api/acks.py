"""The recipients' acknowledgement callback (TP-5): ``POST /governance/notices/{notice_id}/ack``.

The caller is the recipient, not an Airflow user: this one route is not behind Airflow's login.
It is authenticated by Standard Webhooks instead: the request must carry ``webhook-id``,
``webhook-timestamp`` and ``webhook-signature`` made with the recipient's own signing secret (the
connection named by its ``notify.webhook.signing_secret_conn``), verified by the reference
library's ``Webhook.verify`` (which also refuses a timestamp more than five minutes off). The body
is ``{"acknowledged": "<idempotency key or notice id>"}``.

Answers: 200 acknowledged; 404 no such notice; 401 a missing or bad signature (or a recipient with
no webhook secret: it acknowledges by hand); 422 a body that does not name this notice; 409 already
acknowledged or never sent. Nothing personal is read or written: ids and states only.

A separate app mounted under the request API's prefix (``app.create_app``), so the request API's
app-level Airflow authentication does not apply to it; ``create_ack_app`` takes its database,
policy and secrets as arguments, so it is tested with FastAPI's TestClient on a real PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from governance.db import transaction
from governance.notices.acks import NoticeConflict, acknowledge

if TYPE_CHECKING:
    from psycopg2.extensions import connection

    from governance.notices.secrets import Secrets
    from governance.policy import Policy

MOUNT = "/notices"


def create_ack_app(
    *,
    connect: Callable[[], connection],
    policy: Callable[[], Policy],
    secrets: Secrets,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> FastAPI:
    app = FastAPI(title="governance: recipient acknowledgements", openapi_url=None, docs_url=None, redoc_url=None)

    @app.post("/{notice_id}/ack")
    async def ack(notice_id: int, request: Request) -> JSONResponse:
        body = await request.body()
        conn = connect()
        try:
            return _ack(conn, policy(), secrets, notice_id, body, dict(request.headers), clock())
        finally:
            conn.close()

    return app


def _answer(code: int, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse(status_code=code, content={"detail": detail, **extra})


def _ack(
    conn: connection,
    policy: Policy,
    secrets: Secrets,
    notice_id: int,
    body: bytes,
    headers: dict[str, str],
    now: datetime,
) -> JSONResponse:
    with transaction(conn, read_only=True) as cur:
        cur.execute(
            "SELECT recipient_id, idempotency_key FROM governance.recipient_outbox WHERE notice_id = %s", (notice_id,)
        )
        found = cur.fetchone()
    if found is None:
        return _answer(404, f"no notice {notice_id}")
    recipient_id, key = found
    recipient = next((r for r in policy.recipients if r.id == recipient_id), None)
    if recipient is None or recipient.notify is None or recipient.notify.webhook is None:
        return _answer(401, "this recipient has no webhook signing secret: its acknowledgement is recorded by hand")
    try:
        Webhook(secrets.get(recipient.notify.webhook.signing_secret_conn)).verify(body, headers, json_parse=False)
    except WebhookVerificationError:
        return _answer(401, "missing or bad Standard Webhooks signature")
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict) or str(data.get("acknowledged")) not in (key, str(notice_id)):
        return _answer(422, 'the body must be {"acknowledged": "<idempotency key or notice id>"} of this notice')
    try:
        done = acknowledge(conn, policy, notice_id, via="callback", now=now)
    except NoticeConflict as exc:
        return _answer(409, str(exc))
    return JSONResponse(status_code=200, content=done)
