"""Answering an erasure request (ERA-1, REQ-1): start, erase, check independently, complete.

``answer_erasure`` is the handler for requests of kind ``erasure``. One run at a time per request:
a session advisory lock; a second run waits for the first, then finds the request completed and
returns its outcome, never erasing twice. Once the check passed, the erasure's entry is written to
the ledger outside the database (``erasure.ledger``: a restore cannot roll it back); the request
then completes (``requests.complete``) in the same transaction as the check's evidence and the
recipients' notices (TP-5, ``erasure.notices``), and only when the check passed and the entry was
written; otherwise ``ErasureFailed`` names the request and the tables and counts left, with the
failed check's evidence recorded. It also answers account deletions (RET-7): an erasure of the
categories the person chose to delete.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING

from psycopg2.extensions import connection

from governance import evidence, requests
from governance.db import advisory_key, transaction
from governance.erasure.check import ErasureCheck, verify_erasure
from governance.erasure.erase import ERASURE_KINDS, ErasureOutcome, erase_person, kept_by
from governance.erasure.ledger import write_entry
from governance.erasure.notices import queue_erasure_notices
from governance.erasure.work import run_id
from governance.errors import ErasureFailed, RequestError
from governance.notices.pseudonyms import PseudonymKey, pseudonym_key
from governance.policy import Policy
from governance.requests.scope import check_kept_records
from governance.windows import as_utc

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

LOCK_NAMESPACE = 0x60FE_0011  # pg_advisory_lock(namespace, key) of one request's erasure
KIND_CHECKED = "erasure_checked"
KIND_CHECK_FAILED = "erasure_check_failed"


@contextmanager
def erasure_lock(conn: connection, name: str) -> Iterator[None]:
    """Hold the session advisory lock ``name`` of the erasures' namespace (waiting for another run
    holding it to finish) while the block runs."""
    key = advisory_key(name)
    with transaction(conn) as cur:
        cur.execute("SELECT pg_advisory_lock(%s, %s)", (LOCK_NAMESPACE, key))
    try:
        yield
    finally:
        if not conn.closed:
            conn.rollback()
            with transaction(conn) as cur:
                cur.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_NAMESPACE, key))


def request_lock(conn: connection, request_id: int) -> contextlib.AbstractContextManager[None]:
    """The request's erasure lock: one run at a time per request."""
    return erasure_lock(conn, f"erasure:{request_id}")


def complete_erasure(
    conn: connection, policy: Policy, check: ErasureCheck, outcome: ErasureOutcome, *, now: datetime
) -> dict[str, int]:
    """Complete the request when ``check`` passed, with its evidence and the recipients' notices
    (TP-5), in one transaction; the recorded object keys go with it. A failed check is evidenced
    and raised as ``ErasureFailed``."""
    rid = check.request_id
    counts = {**outcome.flat(), **{f"check.{k}": v for k, v in check.counts().items()}}
    with transaction(conn) as cur:
        evidence.append(
            cur,
            kind=KIND_CHECKED if check.ok else KIND_CHECK_FAILED,
            run_id=run_id(rid),
            step="check",
            requirements=["ERA-1", "RET-8"],
            as_of=now,
            policy_version=policy.version or None,
            counts=check.counts(),
            details={"request_id": rid, "ok": check.ok},
            numbered=True,
        )
        if check.ok:
            cur.execute(
                "UPDATE governance.erasure_work SET object_key = NULL, bucket = NULL WHERE request_id = %s", (rid,)
            )
            counts["notices"] = queue_erasure_notices(cur, policy, rid, now=now)
            requests.complete(cur, policy, rid, outcome=counts, now=now)
    if not check.ok:
        raise ErasureFailed(
            f"erasure of request {rid}: the independent check found records of the person left ({check.describe()}); "
            f"the request stays in progress; run `governance request erase {rid}` again, and if the same records "
            "stay, see docs/runbook.md 'Erasure not finished or its check failed'"
        )
    return counts


def answer_erasure(
    conn: connection,
    s3: S3Client | None,
    policy: Policy,
    request_id: int,
    *,
    now: datetime,
    key: PseudonymKey | None = None,
) -> dict[str, int]:
    """start -> erase -> verify -> complete; the request's outcome (counts per table). An account
    deletion keeps the categories it chose to keep (RET-7). ``key``: the recipient pseudonym key
    (TP-5; default from the environment, in Airflow from its connection)."""
    now = as_utc(now)
    with request_lock(conn, request_id):
        with transaction(conn, read_only=True) as cur:
            request = requests.fetch(cur, request_id)
        if request.kind not in ERASURE_KINDS:
            raise RequestError(f"request {request_id} is a request of kind {request.kind}, not an erasure")
        if request.state == "completed":
            return dict(request.outcome)  # another run finished it while this one waited
        keep = kept_by(policy, request)
        if key is None and policy.recipients:
            key = pseudonym_key()  # a missing key is refused before anything starts
        if request.kind == "account_deletion":
            with transaction(conn, read_only=True) as cur:
                check_kept_records(cur, policy, request.choices)  # RET-7: as at intake, the catalogue now
        requests.start(conn, policy, request_id, now=now)
        outcome = erase_person(conn, s3, policy, request_id, now=now, keep_categories=keep, key=key)
        check = verify_erasure(conn, s3, policy, request_id, now=now, keep_categories=keep)
        if check.ok:  # the ledger outside the database, before the completion commits (ERA-1)
            write_entry(conn, s3, policy, request_id, now=now, keep_categories=keep)
        return complete_erasure(conn, policy, check, outcome, now=now)
