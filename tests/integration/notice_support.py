"""Real local receivers and a seeded outbox for the recipient notice tests (TP-5, #12).

``Receiver``: an http.server on a loopback port in a thread, answering each POST as its
``behaviour`` says and remembering what it received (headers, body, the idempotency key). Signed
bodies are checked with the Standard Webhooks reference library (``Webhook.verify``) when the
receiver is given the secret it expects.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from governance import requests
from governance.db import transaction
from governance.notices import queue_notices
from governance.notices.secrets import env_name
from governance.person import resolve_subject
from governance.policy.notify import Notify

# A behaviour gets (attempt number at this receiver, headers, body) and returns (status, body, delay).
Behaviour = Callable[[int, dict[str, str], bytes], tuple[int, bytes, float]]


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool | None

    @property
    def key(self) -> str:
        return self.headers.get("webhook-id", "")

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    behaviour: Behaviour
    expect_secret: str | None = None
    received: list[Received] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's hook name
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                verified = None
                if receiver.expect_secret is not None:
                    try:
                        Webhook(receiver.expect_secret).verify(body, headers)
                        verified = True
                    except WebhookVerificationError:
                        verified = False
                receiver.received.append(Received(headers, body, verified))
                if verified is False:
                    status, answer, delay = 401, b'{"error": "bad signature"}', 0.0
                else:
                    status, answer, delay = receiver.behaviour(len(receiver.received), headers, body)
                time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/notices"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def acks(attempt: int, headers: dict[str, str], body: bytes) -> tuple[int, bytes, float]:
    return 200, json.dumps({"acknowledged": headers["webhook-id"]}).encode(), 0.0


def accepts(attempt: int, headers: dict[str, str], body: bytes) -> tuple[int, bytes, float]:
    return 202, b"", 0.0


def fails_then_acks(failures: int, status: int = 500) -> Behaviour:
    def behaviour(attempt: int, headers: dict[str, str], body: bytes) -> tuple[int, bytes, float]:
        return (status, b"{}", 0.0) if attempt <= failures else acks(attempt, headers, body)

    return behaviour


def webhook(monkeypatch: Any, url: str, conn_id: str, secret: str, **extra: Any) -> Notify:
    monkeypatch.setenv(env_name(conn_id), secret)
    return Notify.model_validate({"webhook": {"url": url, "signing_secret_conn": conn_id}, **extra})


def policy_with(policy: Any, notify: dict[str, Notify | None], **settings: Any) -> Any:
    """The policy with only the recipients named, told as given, and delivery settings changed."""
    recipients = [r.model_copy(update={"notify": notify[r.id]}) for r in policy.recipients if r.id in notify]
    return policy.model_copy(update={"recipients": recipients, "notices": policy.notices.model_copy(update=settings)})


def seed_person(conn: Any, now: datetime) -> dict[str, Any]:
    """An account with one order; its address is personal data that must never leave in clear."""
    email = f"Kari.{uuid.uuid4().hex[:8]}@Example.no"
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO shop.accounts (email, password_hash, first_name, last_name, created_at) "
            "VALUES (%s, 'x', 'Kari', 'Nordmann', %s) RETURNING account_id",
            (email, now - timedelta(days=400)),
        )
        (account_id,) = cur.fetchone()
        cur.execute(
            "INSERT INTO shop.orders (account_id, email, first_name, last_name, delivery_street, total_amount, "
            "placed_at) VALUES (%s, %s, 'Kari', 'Nordmann', 'Storgata 1', 10, %s) RETURNING order_id",
            (account_id, email, now - timedelta(days=3)),
        )
        (order_id,) = cur.fetchone()
    conn.commit()
    return {"email": email, "account_id": account_id, "order_id": order_id}


def queue(
    conn: Any, policy: Any, person: dict[str, Any], now: datetime, *, events: tuple[str, ...] = ("erasure",)
) -> int:
    """Open a request for the person and queue its notices (orders changed) for each event."""
    request = requests.open_request(
        conn, policy, kind="erasure", email=person["email"], channel="email", opened_by="support", now=now
    )
    queued = 0
    for event in events:
        with transaction(conn) as cur:
            subject = resolve_subject(cur, policy, account_id=None, email=person["email"])
            queued += queue_notices(
                cur,
                policy,
                request,
                subject=subject,
                event=event,
                tables_changed={"shop.orders": 1},
                order_ids=[person["order_id"]],
                now=now,
            )
    return request.request_id


def outbox(conn: Any) -> dict[int, dict[str, Any]]:
    with transaction(conn, read_only=True) as cur:
        cur.execute(
            "SELECT notice_id, recipient_id, state, attempts, last_error, acked_via, next_attempt_at, sent_at, "
            "acked_at, dead_at, claimed_at, idempotency_key FROM governance.recipient_outbox ORDER BY notice_id"
        )
        names = [d[0] for d in cur.description]
        return {row[0]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}


def notice_evidence(conn: Any, notice_id: int) -> list[tuple[str, dict[str, Any]]]:
    """(kind, details) of every evidence entry naming the notice: the delivery's group entries
    (``notice_ids``) and the notice's own (ack, retry), in chain order."""
    with transaction(conn, read_only=True) as cur:
        cur.execute(
            "SELECT kind, details FROM governance.evidence WHERE details -> 'notice_ids' @> to_jsonb(%s::bigint) "
            "OR run_id = %s ORDER BY entry_id",
            (notice_id, f"notice-{notice_id}"),
        )
        return [(k, d) for k, d in cur.fetchall()]
