"""The benchmark's S3 endpoint: moto's server, run as ``python -m moto.server`` runs it, plus one
set-up door.

Run as a child process (services.moto_server). Every request a contender makes reaches moto's own
WSGI application over HTTP, unchanged. The one extra route, ``POST /bench-api/put-objects``, is for
the set-up only: it writes many small objects straight into this process's S3 backend (the call
moto's PutObject handler ends in), so loading tens of thousands of objects does not pay moto's
per-request HTTP and parsing cost once per object. Nothing timed uses it.

    python bench/s3_server.py -H 127.0.0.1 -p PORT
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import sys
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from moto.s3.models import s3_backends
from moto.s3.utils import metadata_from_headers
from werkzeug.serving import run_simple

BULK_PATH = "/bench-api/put-objects"


def put_objects(bucket: str, keys: list[str], body: bytes, content_type: str | None = None) -> int:
    """Write ``keys`` (each with ``body``) into ``bucket``, which must exist (made over HTTP). With
    ``content_type``, each object carries it as a PUT's ``Content-Type`` header would leave it."""
    partition, account_id = s3_backends.bucket_accounts[bucket]
    backend = s3_backends[account_id][partition]
    for key in keys:
        stored = backend.put_object(bucket, key, body, disable_notification=True)
        if content_type:
            stored.set_metadata(metadata_from_headers({"Content-Type": content_type}))
    return len(keys)


class BulkLoad:
    """WSGI middleware: answers BULK_PATH itself, hands every other request to moto unchanged."""

    def __init__(self, app: Callable[..., Iterable[bytes]]):
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != BULK_PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        request = json.loads(environ["wsgi.input"].read(length))
        try:
            body = base64.b64decode(request["body"])
            count = put_objects(request["bucket"], request["keys"], body, request.get("content_type"))
            status, answer = "200 OK", {"put": count}
        except KeyError as exc:
            status, answer = "404 Not Found", {"error": f"no such bucket or field: {exc}"}
        payload = json.dumps(answer).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
        return [payload]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))  # as moto.server's main() sets it
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True  # as moto.server's main() sets it
    run_simple(args.host, args.port, BulkLoad(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
