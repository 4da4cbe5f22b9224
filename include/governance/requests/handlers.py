"""Which kinds of data-subject request the platform answers, and how (REQ-1): a registry from a
request's kind to its handler. A handler takes a connection, an S3 client, the mail server, the
policy, the request id and "now"; it moves the request on through the ledger, commits every effect
with its evidence, is safe to run again, and returns the counts it recorded as the outcome. The
subject_requests DAG answers exactly the kinds registered here; #11 adds the others.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from psycopg2.extensions import connection, cursor

from governance.db import transaction
from governance.errors import RequestError
from governance.policy import Policy
from governance.requests.answer import answer_export
from governance.requests.store import fetch

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from governance.breach import SmtpServer


class Handler(Protocol):
    def __call__(
        self, conn: connection, s3: S3Client, smtp: SmtpServer, policy: Policy, request_id: int, *, now: datetime
    ) -> dict[str, int]: ...


def _answer_erasure(
    conn: connection, s3: S3Client, smtp: SmtpServer, policy: Policy, request_id: int, *, now: datetime
) -> dict[str, int]:
    """ERA-1 (#11): erase, check independently, complete; nothing is mailed."""
    from governance.erasure import answer_erasure  # the erasure package imports the ledger: import late

    return answer_erasure(conn, s3, policy, request_id, now=now)


def _answer_processing(
    conn: connection, s3: S3Client, smtp: SmtpServer, policy: Policy, request_id: int, *, now: datetime
) -> dict[str, int]:
    """RES-1, OBJ-1, MKT-1, CON-1 (#11): register, switch off, notify, complete; nothing is mailed."""
    from governance.processing import answer_processing  # imports the ledger: import late

    return answer_processing(conn, s3, smtp, policy, request_id, now=now)


HANDLERS: dict[str, Handler] = {
    "access": answer_export,  # ACC-1
    "portability": answer_export,  # POR-1
    "erasure": _answer_erasure,  # ERA-1
    "restriction": _answer_processing,  # RES-1
    "objection": _answer_processing,  # OBJ-1, MKT-1
    "consent_withdrawal": _answer_processing,  # CON-1
}


# A completed request may be asked for again: its handler returns the outcome and does nothing.
ANSWERABLE = ("verified", "in_progress", "completed")


def handled_kinds() -> list[str]:
    return sorted(HANDLERS)


def answerable(cur: cursor, request_id: int) -> int:
    """``request_id`` when its handler may run now (on demand); else RequestError saying why not."""
    request = fetch(cur, request_id)
    if request.kind not in HANDLERS or request.state not in ANSWERABLE:
        raise RequestError(
            f"request {request_id} ({request.kind}) is {request.state}: only verified requests of the kinds "
            f"{', '.join(handled_kinds())} are answered; see `governance request show {request_id}` (a received "
            f"one needs `governance request verify {request_id}` first)"
        )
    return request_id


def answer(
    conn: connection, s3: S3Client, smtp: SmtpServer, policy: Policy, request_id: int, *, now: datetime
) -> dict[str, int]:
    """Run the handler of the request's kind; RequestError when no handler answers that kind yet."""
    with transaction(conn, read_only=True) as cur:
        kind = fetch(cur, request_id).kind
    handler = HANDLERS.get(kind)
    if handler is None:
        raise RequestError(
            f"request {request_id} is {kind}: the platform answers {', '.join(handled_kinds())} requests so far; "
            "a request of another kind is answered by hand within its deadline (docs/runbook.md, "
            "'A data-subject request is late')"
        )
    return handler(conn, s3, smtp, policy, request_id, now=now)
