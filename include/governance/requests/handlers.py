"""Which kinds of data-subject request the platform answers, and how (REQ-1): a registry from a
request's kind to its handler. A handler takes a connection, an S3 client, the mail server, the
policy, the request id, "now" and where the recipient pseudonym key comes from (``key``, called
only by the kinds that queue recipients' notices, TP-5: erasure, account deletion, rectification,
restriction, objection, consent withdrawal;
default the environment); it moves the request on through the ledger, commits every effect with
its evidence, is safe to run again, and returns the counts it recorded as the outcome. The
subject_requests DAG answers exactly the kinds registered here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from psycopg2.extensions import connection, cursor

from governance.db import transaction
from governance.errors import RequestError
from governance.notices.pseudonyms import PseudonymKey, pseudonym_key
from governance.policy import Policy
from governance.requests.answer import answer_export
from governance.requests.store import fetch

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from governance.breach import SmtpServer


KeySource = Callable[[], PseudonymKey]  # the recipient pseudonym key, read when a handler needs it


def _recipient_key(policy: Policy, key: KeySource) -> PseudonymKey | None:
    """The pseudonym key, read only when the policy has recipients to tell (TP-5)."""
    return key() if policy.recipients else None


class Handler(Protocol):
    def __call__(
        self,
        conn: connection,
        s3: S3Client,
        smtp: SmtpServer,
        policy: Policy,
        request_id: int,
        *,
        now: datetime,
        key: KeySource = ...,
    ) -> dict[str, int]: ...


def _answer_export(
    conn: connection,
    s3: S3Client,
    smtp: SmtpServer,
    policy: Policy,
    request_id: int,
    *,
    now: datetime,
    key: KeySource = pseudonym_key,
) -> dict[str, int]:
    """ACC-1, POR-1: the export, mailed; no recipient is told (the key is not read)."""
    return answer_export(conn, s3, smtp, policy, request_id, now=now)


def _answer_erasure(
    conn: connection,
    s3: S3Client,
    smtp: SmtpServer,
    policy: Policy,
    request_id: int,
    *,
    now: datetime,
    key: KeySource = pseudonym_key,
) -> dict[str, int]:
    """ERA-1, RET-7 (#11): erase (an account deletion: the categories chosen ``delete``), check
    independently, complete with the recipients' notices (TP-5); nothing is mailed."""
    from governance.erasure import answer_erasure  # the erasure package imports the ledger: import late

    return answer_erasure(conn, s3, policy, request_id, now=now, key=_recipient_key(policy, key))


def _answer_rectification(
    conn: connection,
    s3: S3Client,
    smtp: SmtpServer,
    policy: Policy,
    request_id: int,
    *,
    now: datetime,
    key: KeySource = pseudonym_key,
) -> dict[str, int]:
    """REC-1 (#11): apply the corrections recorded at intake (``governance request rectify ID --set``),
    with the recipients' notices (TP-5); the request's outcome."""
    from governance.requests.rectification import answer_rectification

    request = answer_rectification(conn, policy, request_id, now=now, key=_recipient_key(policy, key))
    return dict(request.outcome)


def _answer_processing(
    conn: connection,
    s3: S3Client,
    smtp: SmtpServer,
    policy: Policy,
    request_id: int,
    *,
    now: datetime,
    key: KeySource = pseudonym_key,
) -> dict[str, int]:
    """RES-1, OBJ-1, MKT-1, CON-1 (#11): register, switch off, notify (TP-5), complete; nothing is mailed."""
    from governance.processing import switch_off  # imports the ledger: import late

    return dict(switch_off(conn, policy, request_id, now=now, key=_recipient_key(policy, key)).outcome)


HANDLERS: dict[str, Handler] = {
    "access": _answer_export,  # ACC-1
    "portability": _answer_export,  # POR-1
    "erasure": _answer_erasure,  # ERA-1
    "account_deletion": _answer_erasure,  # RET-7: an erasure of the categories chosen
    "rectification": _answer_rectification,  # REC-1
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
    conn: connection,
    s3: S3Client,
    smtp: SmtpServer,
    policy: Policy,
    request_id: int,
    *,
    now: datetime,
    key: KeySource = pseudonym_key,
) -> dict[str, int]:
    """Run the handler of the request's kind; RequestError when no handler answers that kind yet.
    ``key``: where the recipient pseudonym key comes from (the DAG: its Airflow connection)."""
    with transaction(conn, read_only=True) as cur:
        kind = fetch(cur, request_id).kind
    handler = HANDLERS.get(kind)
    if handler is None:
        raise RequestError(
            f"request {request_id} is {kind}: the platform answers {', '.join(handled_kinds())} requests so far; "
            "a request of another kind is answered by hand within its deadline (docs/runbook.md, "
            "'A data-subject request is late')"
        )
    return handler(conn, s3, smtp, policy, request_id, now=now, key=key)
