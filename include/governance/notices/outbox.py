"""The recipients outbox (TP-5, GDPR art. 19): a notice per recipient and event, queued in the
transaction of the effect it reports, so both commit or neither; delivered by issue #12.

A recipient is told when a changed table belongs to a category it receives (the registry,
``Policy.recipients``). The notice names the person by that recipient's pseudonyms
(``governance.notices.pseudonyms``) and the order ids it already knows (only a recipient of the
orders' category gets them); the tables, categories, column names and row counts concerned; never
a value. Queueing is idempotent per (request, recipient, event): a rerun adds nothing and records
no evidence twice.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from psycopg2 import sql
from psycopg2.extensions import cursor
from psycopg2.extras import Json

from governance import evidence
from governance.errors import RequestError
from governance.notices.pseudonyms import PseudonymKey, pseudonym_key
from governance.person.subject import Subject
from governance.policy import Policy
from governance.requests.model import KIND_REQUIREMENTS, SubjectRequest
from governance.windows import as_utc, iso

EVENTS = (
    "erasure",
    "rectification",
    "restriction",
    "restriction_lifted",
    "objection",
    "consent_withdrawal",
    "retention_ended",
)
RecipientName = tuple[list[str], str]  # a recipient's pseudonyms of the person and its key id
_HEX = re.compile(r"[0-9a-f]{64}")
ORDER_KEY = "order_id"  # the key of the store whose ids a recipient of its category knows (CAT-3)

_INSERT = (
    "INSERT INTO governance.recipient_outbox (request_id, run_id, recipient_id, event, categories, tables, columns, "
    "record_counts, subject_pseudonyms, pseudonym_key_id, order_ids, idempotency_key, created_at, next_attempt_at) "
    "VALUES (%(request_id)s, %(run_id)s, %(recipient_id)s, %(event)s, %(categories)s, %(tables)s, %(columns)s, "
    "%(counts)s, %(pseudonyms)s::text[], %(key_id)s, %(order_ids)s::bigint[], %(idempotency_key)s, %(now)s, %(now)s) "
    "ON CONFLICT DO NOTHING RETURNING notice_id"
)


@dataclass(frozen=True)
class Notice:
    """One outbox row as listed: ids, states and counts (the pseudonyms are counted, not shown)."""

    notice_id: int
    request_id: int | None
    run_id: str | None  # a retention sweep's run (event retention_ended), else None
    recipient_id: str
    event: str
    categories: list[str]
    tables: list[str]
    columns: dict[str, list[str]]
    record_counts: dict[str, int]
    pseudonyms: int
    order_ids: list[int]
    idempotency_key: str
    created_at: datetime
    state: str
    attempts: int
    next_attempt_at: datetime
    sent_at: datetime | None
    acked_at: datetime | None
    dead_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {k: iso(v) if isinstance(v, datetime) else v for k, v in asdict(self).items()}


def idempotency_key(request_id: int, recipient_id: str, event: str) -> str:
    """The message id a recipient deduplicates on: one per (request, recipient, event)."""
    return f"request-{request_id}.{recipient_id}.{event}"


def queue_notices(
    cur: cursor,
    policy: Policy,
    request: SubjectRequest,
    *,
    subject: Subject | None = None,
    event: str,
    tables_changed: Mapping[str, int],
    order_ids: Sequence[int],
    now: datetime,
    columns: Mapping[str, Sequence[str]] | None = None,
    key: PseudonymKey | None = None,
    recipients: Collection[str] | None = None,
    named: Mapping[str, RecipientName] | None = None,
) -> int:
    """Queue one notice per recipient receiving a category of the tables changed (count > 0), in
    the caller's transaction; how many were queued now (0 on a rerun). ``subject`` is the person
    as found before the effect, named with ``key``; or ``named``, each recipient's pseudonyms and
    key id computed before the effect (an erasure leaves nothing to find afterwards).
    ``recipients``: only these (an objection's purposes' recipients, OBJ-1); None: every recipient
    of the registry."""
    if event not in EVENTS:
        raise RequestError(f"unknown notice event {event!r}; valid: {', '.join(EVENTS)}")
    category_of = {store.table: category.id for category in policy.categories for store in category.stores}
    changed = {table: int(n) for table, n in tables_changed.items() if n > 0}
    unknown = sorted(set(changed) - set(category_of))
    if unknown:
        raise RequestError(f"table(s) {', '.join(unknown)} are not in the data map: no recipient can be chosen")
    order_categories = orders_categories(policy)
    queued: list[str] = []
    for recipient in policy.recipients:
        if recipients is not None and recipient.id not in recipients:
            continue
        tables = sorted(t for t in changed if category_of[t] in recipient.categories)
        if not tables:
            continue
        pseudonyms, key_id = recipient_name(recipient.id, subject, key, named)
        if not pseudonyms:
            raise RequestError(f"request {request.request_id}: the person has no address or account to name")
        knows_orders = bool(order_categories & set(recipient.categories))
        notice_id = insert_notice(
            cur,
            request_id=request.request_id,
            recipient_id=recipient.id,
            event=event,
            categories=sorted({category_of[t] for t in tables}),
            tables=tables,
            columns={t: sorted(columns[t]) for t in tables if columns and t in columns},
            counts={t: changed[t] for t in tables},
            pseudonyms=pseudonyms,
            key_id=key_id,
            order_ids=order_ids if knows_orders else [],
            idempotency_key=idempotency_key(request.request_id, recipient.id, event),
            now=now,
        )
        if notice_id is not None:
            queued.append(recipient.id)
    if queued:
        _record(cur, policy, request, event, queued, sorted(changed), now)
    return len(queued)


def orders_categories(policy: Policy) -> set[str]:
    """The categories whose recipients know the shop's order ids (a store keyed by ``order_id``
    naming its person, CAT-3): only they are given order ids in a notice."""
    return {c.id for c in policy.categories for s in c.stores if s.key == ORDER_KEY and s.person}


def insert_notice(
    cur: cursor,
    *,
    recipient_id: str,
    event: str,
    categories: Sequence[str],
    tables: Sequence[str],
    columns: Mapping[str, Sequence[str]],
    counts: Mapping[str, int],
    pseudonyms: Sequence[str],
    key_id: str,
    order_ids: Iterable[int],
    idempotency_key: str,
    now: datetime,
    request_id: int | None = None,
    run_id: str | None = None,
) -> int | None:
    """One outbox row for a request's effect (``request_id``) or a sweep's (``run_id``), in the
    caller's transaction; its notice id, or None when its idempotency key was queued before."""
    cur.execute(
        _INSERT,
        {
            "request_id": request_id,
            "run_id": run_id,
            "recipient_id": recipient_id,
            "event": event,
            "categories": list(categories),
            "tables": list(tables),
            "columns": Json({t: list(c) for t, c in columns.items()}),
            "counts": Json(dict(counts)),
            "pseudonyms": _array_literal(pseudonyms, _HEX),
            "key_id": key_id,
            "order_ids": _array_literal(str(i) for i in sorted({int(i) for i in order_ids})),
            "idempotency_key": idempotency_key,
            "now": as_utc(now),
        },
    )
    row = cur.fetchone()
    return None if row is None else int(row[0])


def _array_literal(items: Iterable[str], shape: re.Pattern[str] | None = None) -> str:
    """A PostgreSQL array literal of hex pseudonyms or integer ids: one parameter the server parses
    at once (psycopg2 sends a list as ARRAY[...], one constant per element: much slower for a
    sweep's notice of 1,000 orders). Only shapes that need no quoting are accepted."""
    values = list(items)
    if shape is not None and not all(shape.fullmatch(v) for v in values):
        raise ValueError("a pseudonym is not 64 hexadecimal characters")
    return "{" + ",".join(values) + "}"


def recipient_name(
    recipient_id: str,
    subject: Subject | None,
    key: PseudonymKey | None = None,
    named: Mapping[str, RecipientName] | None = None,
) -> RecipientName:
    """How the notice to ``recipient_id`` names the person (or, for a sweep's batch, the persons):
    given (``named``) or computed from ``subject``'s addresses and accounts with ``key``."""
    if named is not None:
        return named.get(recipient_id, ([], ""))
    if subject is None:
        raise RequestError("a notice needs the person (subject) or each recipient's pseudonyms (named)")
    key = key or pseudonym_key()
    return key.pseudonyms(recipient_id, emails=subject.emails, account_ids=subject.account_ids), key.key_id(
        recipient_id
    )


def _record(
    cur: cursor,
    policy: Policy,
    request: SubjectRequest,
    event: str,
    recipients: list[str],
    tables: list[str],
    now: datetime,
) -> None:
    evidence.append(
        cur,
        kind="notices_queued",
        run_id=f"request-{request.request_id}",
        step=f"notices_queued:{event}",
        requirements=[*KIND_REQUIREMENTS[request.kind], "TP-5"],
        as_of=as_utc(now),
        policy_version=policy.version,
        counts={"notices": len(recipients)},
        details={"request_id": request.request_id, "event": event, "recipients": recipients, "tables": tables},
    )


def list_notices(
    cur: cursor, *, request_id: int | None = None, run_id: str | None = None, states: Iterable[str] | None = None
) -> list[Notice]:
    """Outbox rows in the order they were queued, by request, sweep run and state."""
    where: list[sql.Composable] = [sql.SQL("TRUE")]
    params: list[Any] = []
    if request_id is not None:
        where.append(sql.SQL("request_id = %s"))
        params.append(request_id)
    if run_id is not None:
        where.append(sql.SQL("run_id = %s"))
        params.append(run_id)
    if states is not None:
        where.append(sql.SQL("state = ANY(%s)"))
        params.append(list(states))
    cur.execute(
        sql.SQL(
            "SELECT notice_id, request_id, run_id, recipient_id, event, categories, tables, columns, record_counts, "
            "cardinality(subject_pseudonyms), order_ids, idempotency_key, created_at, state, attempts, "
            "next_attempt_at, sent_at, acked_at, dead_at FROM governance.recipient_outbox WHERE {} ORDER BY notice_id"
        ).format(sql.SQL(" AND ").join(where)),
        params,
    )
    return [Notice(*row) for row in cur.fetchall()]
