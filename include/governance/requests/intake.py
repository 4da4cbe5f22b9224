"""Intake (REQ-1): record a data-subject request as it arrives, with its answer address kept apart.

Bad input is refused with a message saying what to fix and never echoing an address: an unknown
kind or channel, a malformed address, a receipt in the future, no address to answer to, a
duplicate of an open request of the same kind for the same person (widened through the person's
accounts and addresses, and, whoever inserts, the ledger's unique index). A subject that matches
nobody is recorded anyway (``subject_found`` false: the answer is "no data held"). Purposes
and an account deletion's choices are checked against the policy (``requests.scope``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from psycopg2 import errors as pg_errors
from psycopg2 import sql
from psycopg2.extensions import connection, cursor
from psycopg2.extras import Json

from governance.db import ident, transaction
from governance.errors import RequestError
from governance.person.subject import check_email, resolve_subject
from governance.policy import Policy
from governance.requests import model
from governance.requests.model import CHANNELS, KINDS, SubjectRequest
from governance.requests.scope import check_choices, check_kept_records, check_purposes
from governance.requests.store import SELECT_COLUMNS, actor, open_duplicate, record, returned
from governance.windows import as_utc, iso

INTAKE_LOCK_KEY = 0x60FE_0010  # pg_advisory_xact_lock: one intake at a time, so the duplicate check holds


def check_choice(value: str, valid: tuple[str, ...], what: str, flag: str) -> str:
    if value not in valid:
        raise RequestError(f"unknown {what} {value!r}; give {flag} one of: {', '.join(valid)}")
    return value


def check_text(value: str | None, flag: str, what: str) -> str:
    if value is None or not value.strip():
        raise RequestError(f"missing {what}: give {flag} TEXT")
    return value.strip()


def _account_address(cur: cursor, policy: Policy, account_id: int | None) -> str | None:
    """The account's own address, from the data map's account stores."""
    if account_id is None:
        return None
    for store in policy.account_stores():
        assert store.person is not None and store.person.email
        cur.execute(
            sql.SQL("SELECT {email} FROM {table} WHERE {key} = %s AND {email} IS NOT NULL").format(
                email=sql.Identifier(store.person.email), table=ident(store.table), key=sql.Identifier(store.key)
            ),
            (account_id,),
        )
        row = cur.fetchone()
        if row is not None and str(row[0]).strip():
            return str(row[0]).strip()
    return None


def _duplicate_message(kind: str, request: SubjectRequest) -> str:
    return (
        f"a {kind} request for this person is already open: request {request.request_id} ({request.state}, due "
        f"{iso(request.deadline)}); see `governance request show {request.request_id}` instead of opening another"
    )


def _insert(cur: cursor, values: dict[str, object]) -> SubjectRequest:
    """INSERT the ledger row; a duplicate the unique index refuses (another writer) names the open one."""
    cur.execute("SAVEPOINT governance_request_intake")
    try:
        cur.execute(
            sql.SQL(
                "INSERT INTO governance.subject_requests (kind, account_id, email_sha256, channel, opened_by, "
                "received_at, opened_at, due_at, subject_found, purposes, choices) VALUES (%(kind)s, %(account_id)s, "
                "governance.email_pseudonym(%(email)s), %(channel)s, %(opened_by)s, %(received_at)s, %(now)s, "
                "%(due_at)s, %(subject_found)s, %(purposes)s, %(choices)s) RETURNING {}"
            ).format(SELECT_COLUMNS),
            values,
        )
    except pg_errors.UniqueViolation:
        cur.execute("ROLLBACK TO SAVEPOINT governance_request_intake")
        cur.execute(
            sql.SQL(
                "SELECT {} FROM governance.subject_requests WHERE kind = %(kind)s "
                "AND state IN ('received', 'verified', 'in_progress') AND account_id IS NOT DISTINCT FROM "
                "%(account_id)s AND email_sha256 IS NOT DISTINCT FROM governance.email_pseudonym(%(email)s)"
            ).format(SELECT_COLUMNS),
            values,
        )
        raise RequestError(_duplicate_message(str(values["kind"]), returned(cur))) from None
    return returned(cur)


def open_request(
    conn: connection,
    policy: Policy,
    *,
    kind: str,
    account_id: int | None = None,
    email: str | None = None,
    reply_to: str | None = None,
    channel: str,
    opened_by: str,
    received_at: datetime | None = None,
    purposes: Sequence[str] | None = None,
    choices: Mapping[str, str] | None = None,
    now: datetime,
) -> SubjectRequest:
    """Record a request received at ``received_at`` (default ``now``), due one calendar month later,
    its contact and its evidence in one transaction (REQ-1)."""
    now = as_utc(now)
    check_choice(kind, KINDS, "kind", "--kind")
    check_choice(channel, CHANNELS, "channel", "--channel")
    chosen_purposes = check_purposes(policy, kind, purposes)
    chosen = check_choices(policy, kind, choices)
    by = check_text(opened_by, "--by", "who opens the request")
    email = email.strip() if email and email.strip() else None
    for address, flag in ((email, "--email"), (reply_to, "--reply-to")):
        if address is not None:
            check_email(address, flag)
    if account_id is not None and account_id < 1:
        raise RequestError(f"--account-id {account_id} is not an account id (a whole number from 1)")
    received = as_utc(received_at) if received_at is not None else now
    if received > now:
        raise RequestError(f"--received-at {iso(received)} is after now ({iso(now)}); give when it arrived")
    with transaction(conn) as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (INTAKE_LOCK_KEY,))
        check_kept_records(cur, policy, chosen)  # RET-7: nothing kept is destroyed or orphaned
        subject = resolve_subject(cur, policy, account_id=account_id, email=email)
        answer = reply_to.strip() if reply_to else email or _account_address(cur, policy, account_id)
        if answer is None:
            raise RequestError(
                "no address to answer to: the request names no e-mail address and the account has none; "
                "give --reply-to ADDRESS"
            )
        accounts = sorted({*subject.account_ids, *([account_id] if account_id is not None else [])})
        duplicate = open_duplicate(cur, kind, accounts, list(subject.emails))
        if duplicate is not None:
            raise RequestError(_duplicate_message(kind, duplicate))
        values: dict[str, object] = {"kind": kind, "account_id": account_id, "email": email, "channel": channel}
        values |= {"opened_by": by, "received_at": received, "now": now, "due_at": model.due_at(received)}
        values |= {"purposes": chosen_purposes, "choices": Json(chosen)}
        request = _insert(cur, values | {"subject_found": subject.found})
        cur.execute(
            "INSERT INTO governance.request_contacts (request_id, reply_to, subject_email, created_at) "
            "VALUES (%s, %s, %s, %s)",
            (request.request_id, answer, email, now),
        )
        counts = {"accounts_found": len(subject.account_ids), "emails_found": len(subject.emails)}
        record(cur, policy, "request_opened", request, now, counts=counts, by=actor(by))
    return request
