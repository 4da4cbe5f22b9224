"""The corrections of a rectification request (REC-1): what they may touch, and where they wait.

A correction is ``{table: {column: new value or None}}``. It may touch only a personal column
(``personal_columns``) of a store of the data map that can hold a person's records (not the
platform's own copies in schema ``governance``), and never a
column that places, keys or links a record: the key, the person's account column, link columns
(and columns other stores link to), the breach clock, a rule's clock or anonymisation marker, the
object columns. Anything else is refused naming table and column, never a value.

Between intake and the run that applies them, corrections wait in
``governance.request_corrections`` (personal data, apart from the ledger like the answer address,
RET-9): deleted in the transaction that applies them, or by a trigger when the request is refused
or withdrawn. New values are query parameters only; they are never logged or evidenced.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from psycopg2.extensions import connection, cursor
from psycopg2.extras import Json

from governance.db import transaction
from governance.errors import RequestError
from governance.policy import Policy, Store
from governance.requests.ledger import fetch
from governance.requests.model import OPEN_STATES, SubjectRequest
from governance.requests.store import record
from governance.windows import as_utc, iso

Corrections = dict[str, dict[str, str | None]]
PLATFORM_SCHEMA = "governance."


def fixed_columns(policy: Policy, store: Store) -> set[str]:
    """The store's columns a correction may never touch (they key, place or link the record)."""
    fixed = {store.key, *(link.column for link in store.links)}
    if store.person is not None and store.person.account_id:
        fixed.add(store.person.account_id)
    if store.breach_clock:
        fixed.add(store.breach_clock)
    if store.objects is not None:
        fixed |= {store.objects.bucket_column, store.objects.key_column}
    for category in policy.categories:
        for other in category.stores:
            fixed |= {link.to_column for link in other.links if link.to == store.table}
    for rule in policy.rules:
        if rule.table == store.table:
            if rule.clock.column:
                fixed.add(rule.clock.column)
            marker = getattr(rule.action, "marker_column", None)
            if marker:
                fixed.add(str(marker))
    return fixed


def correctable_store(store: Store) -> bool:
    """A store a rectification may name: it holds a person's records and is the shop's own."""
    return not store.unidentifiable and not store.table.startswith(PLATFORM_SCHEMA)


def rectifiable_columns(policy: Policy, store: Store) -> list[str]:
    """The columns of ``store`` a rectification may correct: none for an unidentifiable store, nor
    for the platform's own copies (CAT-7, schema ``governance``: the request's address and
    corrections are changed through the request, not by rectifying them)."""
    if not correctable_store(store):
        return []
    fixed = fixed_columns(policy, store)
    return [column for column in store.personal_columns if column not in fixed]


def check_corrections(policy: Policy, corrections: Any) -> Corrections:
    """``corrections`` as a valid ``Corrections``, or RequestError listing every problem by table
    and column (never a value)."""
    if not isinstance(corrections, dict) or not corrections:
        raise RequestError("no corrections: give at least one TABLE.COLUMN=VALUE (REC-1)")
    stores = {s.table: s for c in policy.categories for s in c.stores if correctable_store(s)}
    problems: list[str] = []
    checked: Corrections = {}
    for table, changes in corrections.items():
        store = stores.get(str(table))
        if store is None:
            problems.append(f"table {table!r} is not a store of the data map that holds a person's records")
            continue
        if not isinstance(changes, dict) or not changes:
            problems.append(f"table {table!r}: give at least one column to correct")
            continue
        fixed = fixed_columns(policy, store)
        for column, value in changes.items():
            where = f"{table}.{column}"
            if column in fixed:
                problems.append(f"{where} keys, places or links the record: it cannot be rectified")
            elif column not in store.personal_columns:
                problems.append(
                    f"{where} is not a personal column of the data map (personal: "
                    f"{', '.join(rectifiable_columns(policy, store))})"
                )
            elif value is not None and not isinstance(value, str):
                problems.append(f"{where}: a new value is text or null")
            else:
                checked.setdefault(store.table, {})[str(column)] = value
    if problems:
        raise RequestError("corrections refused (REC-1):\n" + "\n".join(f"  - {p}" for p in problems))
    return checked


def parse_assignments(assignments: list[str]) -> Corrections:
    """``TABLE.COLUMN=VALUE`` (TABLE is ``schema.name``) as corrections; the value may contain '='."""
    corrections: Corrections = {}
    for number, text in enumerate(assignments, 1):
        target, sep, value = text.partition("=")
        table, dot, column = target.strip().rpartition(".")
        if not sep or not dot or not table or not column:
            raise RequestError(f"--set number {number} is not SCHEMA.TABLE.COLUMN=VALUE")
        corrections.setdefault(table, {})[column] = value
    return corrections


def load_corrections(path: Path) -> Corrections:
    """Corrections from a JSON file ``{"schema.table": {"column": "value" or null}}`` (so new values
    stay out of the shell's history)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RequestError(f"--from-json {path}: cannot read it ({exc.strerror})") from None
    except ValueError:
        raise RequestError(f'--from-json {path}: not JSON (expected {{"schema.table": {{"column": ...}}}})') from None
    if not isinstance(data, dict):
        raise RequestError(f'--from-json {path}: expected an object {{"schema.table": {{"column": ...}}}}')
    return data


def columns_of(corrections: Corrections) -> dict[str, list[str]]:
    """Table -> the column names corrected (what evidence and notices may carry)."""
    return {table: sorted(changes) for table, changes in corrections.items()}


def record_corrections(
    conn: connection, policy: Policy, request_id: int, corrections: Any, *, now: datetime
) -> SubjectRequest:
    """Keep the corrections of an open rectification request until it is worked (replacing any
    kept before), with evidence naming tables and columns."""
    now = as_utc(now)
    checked = check_corrections(policy, corrections)
    with transaction(conn) as cur:
        request = rectification_request(cur, request_id)
        cur.execute(
            "INSERT INTO governance.request_corrections (request_id, corrections, created_at) VALUES (%s, %s, %s) "
            "ON CONFLICT (request_id) DO UPDATE SET corrections = EXCLUDED.corrections, created_at = EXCLUDED.created_at",
            (request_id, Json(checked), now),
        )
        columns = columns_of(checked)
        record(
            cur,
            policy,
            "request_corrections_recorded",
            request,
            now,
            step=f"request_corrections_recorded:{iso(now)}",
            counts={"tables": len(columns), "columns": sum(len(c) for c in columns.values())},
            columns=columns,
        )
    return request


def rectification_request(cur: cursor, request_id: int, *, lock: bool = True) -> SubjectRequest:
    """The request (locked unless ``lock`` is false); RequestError unless it is an open rectification."""
    request = fetch(cur, request_id, lock=lock)
    if request.kind != "rectification":
        raise RequestError(f"request {request_id} is a {request.kind} request, not a rectification (REC-1)")
    if request.state not in OPEN_STATES:
        raise RequestError(f"request {request_id} is {request.state}: corrections apply to an open request only")
    return request


def stored_corrections(cur: cursor, request_id: int) -> Corrections | None:
    cur.execute("SELECT corrections FROM governance.request_corrections WHERE request_id = %s", (request_id,))
    row = cur.fetchone()
    return None if row is None else dict(row[0])
