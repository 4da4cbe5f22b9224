"""Rectification (REC-1, GDPR art. 16 and 19): correct named personal columns of one person's
records, with its evidence, the recipients' notices (TP-5) and the request's completion in one
transaction.

The person's records are those the finder reaches (``governance.person.records``), selected by key
before anything changes, so correcting the very address that finds them changes nothing about
which rows are corrected. A table the corrections name that holds none of the person's records is
refused. Legal holds (RET-8) keep a record from removal, not from correction: a held record is
corrected too and counted (``held_rows``); accuracy (art. 5(1)(d)) applies to kept data as well.
Evidence names tables, columns and row counts, never an old or a new value; a value the database
rejects is reported by table and column only.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import connection, cursor

from governance.db import ident, transaction
from governance.errors import RequestError
from governance.notices.outbox import ORDER_KEY, queue_notices
from governance.notices.pseudonyms import PseudonymKey, pseudonym_key
from governance.person.records import person_predicate
from governance.person.subject import Subject, resolve_subject
from governance.policy import Policy, Store
from governance.requests.corrections import (
    Corrections,
    check_corrections,
    columns_of,
    rectification_request,
    stored_corrections,
)
from governance.requests.ledger import complete, start
from governance.requests.model import SubjectRequest
from governance.requests.store import contact, fetch, record
from governance.windows import as_utc

_HELD = (
    "SELECT count(*) FROM unnest(%(keys)s::text[]) AS k(key) WHERE EXISTS (SELECT 1 FROM governance.holds_at(%(now)s) h "
    "WHERE (h.scope = 'record' AND h.table_name = %(table)s AND h.record_key = k.key) "
    "OR (h.scope = 'rule' AND h.rule_id = ANY(%(rules)s)) "
    "OR (h.scope = 'person' AND (h.account_id = ANY(%(accounts)s::bigint[]) OR h.email_sha256 IN "
    "(SELECT governance.email_pseudonym(e) FROM unnest(%(emails)s::text[]) AS e))))"
)


def rectify(
    conn: connection,
    policy: Policy,
    request_id: int,
    *,
    corrections: Mapping[str, Any],
    now: datetime,
    key: PseudonymKey | None = None,
) -> SubjectRequest:
    """Apply ``corrections`` to the person of a verified rectification request and complete it:
    the UPDATEs, the evidence, the outbox notices and the completion commit together. ``key``: the
    recipient pseudonym key (default: from the environment; in Airflow, from its connection)."""
    now = as_utc(now)
    checked = check_corrections(policy, dict(corrections))
    if key is None and policy.recipients:
        key = pseudonym_key()  # a missing key is refused before anything starts
    with transaction(conn, read_only=True) as cur:
        rectification_request(cur, request_id, lock=False)  # the kind, before the request is started
    start(conn, policy, request_id, now=now)  # refuses a request that is not verified (REQ-1)
    with transaction(conn) as cur:
        request = rectification_request(cur, request_id)
        subject = resolve_subject(
            cur, policy, account_id=request.account_id, email=contact(cur, request_id).subject_email
        )
        keys = {table: _person_keys(cur, policy, policy.store(table), subject) for table in checked}
        empty = sorted(table for table, found in keys.items() if not found)
        if empty:
            raise RequestError(
                f"request {request_id}: {', '.join(empty)} hold(s) none of the person's records; "
                "remove those tables from the corrections"
            )
        rows = {table: _update(cur, policy.store(table), changes, keys[table]) for table, changes in checked.items()}
        held = sum(held_rows(cur, policy, table, keys[table], subject, now) for table in checked)
        columns = columns_of(checked)
        notices = queue_notices(
            cur,
            policy,
            request,
            subject=subject,
            event="rectification",
            tables_changed=rows,
            order_ids=person_order_ids(cur, policy, subject),
            now=now,
            columns=columns,
            key=key,
        )
        total = sum(rows.values())
        counts = {"rows": total, "held_rows": held, "tables": len(rows), "notices": notices}
        record(cur, policy, "request_rectified", request, now, counts=counts, columns=columns, rows_by_table=rows)
        cur.execute("DELETE FROM governance.request_corrections WHERE request_id = %s", (request_id,))
        columns_total = sum(len(c) for c in columns.values())
        outcome = {"rows_rectified": total, "held_rows": held, "columns": columns_total, "notices": notices}
        return complete(cur, policy, request_id, outcome=outcome, now=now)


def answer_rectification(
    conn: connection,
    policy: Policy,
    request_id: int,
    *,
    corrections: Mapping[str, Any] | None = None,
    now: datetime,
    key: PseudonymKey | None = None,
) -> SubjectRequest:
    """The ``subject_requests`` DAG's handler: apply ``corrections``, or those recorded at intake
    (``record_corrections``); a request already completed is returned as it is (a retry after the
    commit does nothing twice)."""
    with transaction(conn, read_only=True) as cur:
        request = fetch(cur, request_id)
        if request.kind == "rectification" and request.state == "completed":
            return request
        wanted: Corrections | None = (
            dict(corrections) if corrections is not None else stored_corrections(cur, request_id)
        )
    if wanted is None:
        raise RequestError(
            f"request {request_id} has no corrections recorded: record them with "
            f"`governance request rectify {request_id} --set SCHEMA.TABLE.COLUMN=VALUE` (or --from-json PATH)"
        )
    return rectify(conn, policy, request_id, corrections=wanted, now=now, key=key)


def _person_keys(cur: cursor, policy: Policy, store: Store, subject: Subject) -> list[Any]:
    """The keys of the person's rows of ``store``, locked until the correction commits."""
    cur.execute(
        sql.SQL("SELECT t.{key} FROM {table} t WHERE {matches} ORDER BY t.{key} FOR UPDATE").format(
            key=sql.Identifier(store.key), table=ident(store.table), matches=person_predicate(policy, store)
        ),
        subject.params(),
    )
    return [key for (key,) in cur.fetchall()]


def _update(cur: cursor, store: Store, changes: dict[str, str | None], keys: list[Any]) -> int:
    """UPDATE the rows by key; a value the column refuses names the table and columns, never the
    value (PostgreSQL's own message would quote it)."""
    assignments = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(column)) for column in changes)
    query = sql.SQL("UPDATE {table} t SET {assignments} WHERE t.{key} = ANY(%s)").format(
        table=ident(store.table), assignments=assignments, key=sql.Identifier(store.key)
    )
    try:
        cur.execute(query, [*changes.values(), keys])
    except psycopg2.DataError as exc:
        raise RequestError(_refused(store, changes, "is not a valid value for the column's type", exc)) from None
    except psycopg2.IntegrityError as exc:
        raise RequestError(_refused(store, changes, "breaks a constraint of the table", exc)) from None
    return int(cur.rowcount)


def _refused(store: Store, changes: dict[str, str | None], why: str, exc: psycopg2.Error) -> str:
    column = getattr(exc.diag, "column_name", None)
    named = f"{store.table}.{column}" if column else f"{store.table} ({', '.join(sorted(changes))})"
    return f"correction of {named} refused: a new value {why} ({exc.pgcode}); correct the value and run it again"


def held_rows(cur: cursor, policy: Policy, table: str, keys: list[Any], subject: Subject, now: datetime) -> int:
    rules = [rule.id for rule in policy.rules if rule.table == table]
    cur.execute(_HELD, {"keys": [str(k) for k in keys], "now": now, "table": table, "rules": rules, **subject.params()})
    row = cur.fetchone()
    return int(row[0]) if row else 0


def person_order_ids(cur: cursor, policy: Policy, subject: Subject) -> list[int]:
    """The person's order ids: references a recipient of the orders' category already knows."""
    ids: list[int] = []
    for category in policy.categories:
        for store in category.stores:
            if store.key == ORDER_KEY and store.person is not None:
                cur.execute(
                    sql.SQL("SELECT t.{key} FROM {table} t WHERE {matches} ORDER BY 1").format(
                        key=sql.Identifier(store.key), table=ident(store.table), matches=person_predicate(policy, store)
                    ),
                    subject.params(),
                )
                ids += [int(key) for (key,) in cur.fetchall()]
    return ids
