"""TP-5 (#12): recipient notices through the outbox to a local webhook, 10,000 at scale 1.

**Ours**: ``governance.notices.delivery.deliver_due`` over ``NOTICES`` queued outbox rows to one
webhook recipient on loopback: claim (committed), build each message, sign it (Standard Webhooks),
POST it (``notices.send_concurrency`` in flight), record each group of outcomes with its evidence.
**Baseline**: the bare HTTP client (httpx, one client) sending the same requests, the same signed
bodies one after another, to the same receiver; also reported, the bare client at the same
concurrency as ours. Target: ours within 2x of the bare client, and no notice lost or duplicated
(every row acknowledged once, the receiver saw every idempotency key exactly once).

The receiver (http.server, in a process of its own: ``RECEIVER``) answers each POST with the ack body.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import services
from harness import Check, Context, at_most, checkpoint, ratio, timed

NOTICES = 10_000
RATIO = 2.0
CONN_ID = "bench_notices_hook"
SECRET = "whsec_" + "YmVuY2gtbm90aWNlcy1zZWNyZXQtMzItYnl0ZXMhISE="


# The recipient's endpoint runs in a process of its own, as a recipient's server would: in the
# bench's process its handler threads would share the interpreter lock with the contenders' sending
# threads (the reason the S3 server is a process of its own too, "Set-up" in bench/README.md).
RECEIVER = r"""
import json, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

seen, lock = [], threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real endpoint
    wbufsize = 65536  # the response in one write (flushed after each request)

    def answer(self, data):
        body = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):  # a notice: acknowledged by its webhook-id
        self.rfile.read(int(self.headers.get("content-length", 0)))
        key = self.headers.get("webhook-id", "")
        with lock:
            seen.append(key)
        self.answer({"acknowledged": key})

    def do_GET(self):  # the ids seen so far
        with lock:
            self.answer(list(seen))

    def do_DELETE(self):  # forget them
        with lock:
            seen.clear()
        self.answer([])

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
"""


class AckingReceiver:
    """Acks every notice by its webhook-id and counts the ids it saw, in a process of its own."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True, env=services.proxy_free_env()
        )
        assert self.process.stdout is not None
        port = int(self.process.stdout.readline())
        self.base = f"http://127.0.0.1:{port}"
        self.url = f"{self.base}/notices"

    def _call(self, method: str) -> list[str]:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, never a proxy
        with opener.open(urllib.request.Request(f"{self.base}/seen", method=method), timeout=30) as answer:
            return list(json.loads(answer.read()))

    @property
    def seen(self) -> list[str]:
        return self._call("GET")

    def clear(self) -> None:
        self._call("DELETE")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def _queue(conn, count: int, now) -> None:
    """``count`` notices of a retention run (no request rows needed), one per order id."""
    with conn.cursor() as cur:
        cur.execute("DELETE FROM governance.recipient_outbox WHERE run_id = 'bench-notices'")
        cur.execute(
            "INSERT INTO governance.recipient_outbox (run_id, recipient_id, event, categories, tables, record_counts, "
            "subject_pseudonyms, pseudonym_key_id, order_ids, idempotency_key, created_at, next_attempt_at) "
            "SELECT 'bench-notices', 'delivery-carrier', 'retention_ended', '{CAT-3}', '{shop.orders}', "
            "'{\"shop.orders\": 1}', ARRAY[encode(sha256(i::text::bytea), 'hex')], '0123456789abcdef', "
            "ARRAY[i::bigint], 'bench-notice-' || i, %(now)s, %(now)s FROM generate_series(1, %(n)s) AS i",
            {"now": now, "n": count},
        )
    conn.commit()


def _requests(conn, now) -> list[tuple[str, bytes]]:
    """The same messages ours sends (built by the library's own body()), for the bare client."""
    from governance.notices.messages import OutboxRow, body

    with conn.cursor() as cur:
        cur.execute(
            "SELECT notice_id, request_id, recipient_id, event, categories, tables, columns, record_counts, "
            "subject_pseudonyms, pseudonym_key_id, order_ids, idempotency_key, created_at, 1 "
            "FROM governance.recipient_outbox WHERE run_id = 'bench-notices' ORDER BY notice_id"
        )
        rows = [OutboxRow(*r) for r in cur.fetchall()]
    conn.rollback()
    return [(r.idempotency_key, body(r, None, withheld=False, sent_at=now)) for r in rows]


def _bare(url: str, requests: list[tuple[str, bytes]], workers: int) -> None:
    import socket

    import httpx

    from governance.notices.delivery_send import signed_headers

    # The same client settings as ours (governance.notices.delivery_send.Channels.http).
    transport = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
    with httpx.Client(timeout=10, transport=transport) as client:

        def post(item: tuple[str, bytes]) -> None:
            key, payload = item
            client.post(url, content=payload, headers=signed_headers(SECRET, key, payload)).raise_for_status()

        if workers == 1:
            for item in requests:
                post(item)
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(post, requests))


def _check_delivered(conn, receiver: AckingReceiver, count: int) -> list[str]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FILTER (WHERE state = 'acknowledged' AND attempts = 1), count(*) "
            "FROM governance.recipient_outbox WHERE run_id = 'bench-notices'"
        )
        acknowledged, total = cur.fetchone()
    conn.rollback()
    problems = []
    if acknowledged != count or total != count:
        problems.append(f"{acknowledged} of {total} rows acknowledged at the first attempt, {count} expected")
    seen = receiver.seen
    if len(seen) != count or len(set(seen)) != count:
        problems.append(f"the receiver saw {len(seen)} requests, {len(set(seen))} keys; {count} each")
    return problems


def run(ctx: Context) -> list[Check]:
    from governance.notices.delivery import deliver_due
    from governance.notices.delivery_send import Channels
    from governance.notices.secrets import EnvSecrets, env_name
    from governance.policy.notify import Notify

    count = ctx.size(NOTICES, 500)
    os.environ[env_name(CONN_ID)] = SECRET
    receiver = AckingReceiver()
    notify = Notify.model_validate({"webhook": {"url": receiver.url, "signing_secret_conn": CONN_ID}})
    recipients = [r.model_copy(update={"notify": notify}) for r in ctx.policy.recipients if r.id == "delivery-carrier"]
    settings = ctx.policy.notices.model_copy(update={"batch_size": 500})
    policy = ctx.policy.model_copy(update={"recipients": recipients, "notices": settings})
    conn = ctx.connect()
    try:
        with ctx.setup_phase("notices: queue"):
            _queue(conn, count, ctx.now)
            requests = _requests(conn, ctx.now)
            checkpoint(conn)
        with timed() as bare:
            _bare(receiver.url, requests, 1)
        with timed() as bare_parallel:
            _bare(receiver.url, requests, settings.send_concurrency)
        receiver.clear()
        channels = Channels(secrets=EnvSecrets(), timeout=settings.send_timeout_seconds)
        with timed() as ours:
            done = deliver_due(conn, policy, channels, now=ctx.now, run_id="bench-notices", max_batches=10**6)
        channels.close()
        problems = _check_delivered(conn, receiver, count)
    finally:
        receiver.stop()
        conn.close()
    r = ratio(ours.seconds, bare.seconds)
    notes = [f"{count / ours.seconds:,.0f} notices/s; the bare client {count / bare.seconds:,.0f}/s one at a time, "
             f"{count / bare_parallel.seconds:,.0f}/s at concurrency {settings.send_concurrency}"]  # fmt: skip
    notes += [f"WRONG: {p}" for p in problems]
    return [
        Check(
            "notices.delivery_vs_bare_http_client",
            f"{count:,} notices outbox -> webhook / bare HTTP client",
            ours.seconds,
            {"bare_client": bare.seconds, f"bare_client_x{settings.send_concurrency}": bare_parallel.seconds},
            r,
            "ours/baseline",
            f"<= {RATIO}, none lost or duplicated",
            bool(at_most(r, RATIO)) and not problems,
            {"notices": count, "recorded": done.counts},
            notes,
        )
    ]
