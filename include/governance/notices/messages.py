"""The message a recipient receives for one outbox row (TP-2, TP-5): a JSON body naming the notice
(id, idempotency key, event), the person by this recipient's pseudonyms and the order ids it already
knows, and the categories, tables, column names and counts concerned. Nothing personal is in clear.

A rectification's corrected values are not in the outbox: they are read from the person's records
when the message is built and travel only inside a JWE (RFC 7516, compact serialisation) encrypted
to the recipient's public JWK (``encryption_key_conn``): RSA-OAEP-256 for an RSA key, ECDH-ES for an
EC or OKP key, content encrypted with A256GCM. A recipient without a registered key is told which
columns changed and that the values were withheld.

The body follows the Standard Webhooks payload shape (``type``, ``timestamp``, ``data``); the same
bytes go to a webhook, into an e-mail and into an object-store drop.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from joserfc import jwe
from joserfc.jwk import ECKey, OKPKey, RSAKey
from psycopg2 import sql
from psycopg2.extensions import cursor

from governance.db import ident
from governance.errors import SettingsError
from governance.person.records import person_predicate
from governance.person.subject import resolve_subject
from governance.policy import Policy
from governance.policy.recipients import Recipient
from governance.requests.store import contact, fetch
from governance.windows import iso

MESSAGE_VERSION = "governance.notice.v1"
CONTENT_ENCRYPTION = "A256GCM"
# joserfc recommends RSA-OAEP (SHA-1) by default; RSA-OAEP-256 and ECDH-ES are allowed explicitly.
ALGORITHMS = ("RSA-OAEP-256", "ECDH-ES", CONTENT_ENCRYPTION)
WITHHELD = "withheld: no encryption key registered for this recipient (TP-2)"


@dataclass(frozen=True)
class OutboxRow:
    """The columns of one outbox row a message is built from."""

    notice_id: int
    request_id: int | None
    recipient_id: str
    event: str
    categories: list[str]
    tables: list[str]
    columns: dict[str, list[str]]
    record_counts: dict[str, int]
    subject_pseudonyms: list[str]
    pseudonym_key_id: str
    order_ids: list[int]
    idempotency_key: str
    created_at: datetime
    attempts: int


def public_key(text: str, conn_id: str) -> RSAKey | ECKey | OKPKey:
    """The recipient's public JWK (JSON) from its connection; a private key is refused."""
    try:
        data = json.loads(text)
        kty = data.get("kty")
        key: RSAKey | ECKey | OKPKey
        if kty == "RSA":
            key = RSAKey.import_key(data)
        elif kty == "EC":
            key = ECKey.import_key(data)
        elif kty == "OKP":
            key = OKPKey.import_key(data)
        else:
            raise ValueError(kty)
    except (ValueError, TypeError, AttributeError):
        raise SettingsError(
            f"the connection '{conn_id}' does not hold a public JWK (JSON with kty RSA, EC or OKP) in its password"
        ) from None
    if key.is_private:
        raise SettingsError(f"the connection '{conn_id}' holds a private key: register only the recipient's public JWK")
    return key


def encrypt(values: dict[str, Any], key: RSAKey | ECKey | OKPKey) -> str:
    """``values`` as a compact JWE to ``key``."""
    alg = "RSA-OAEP-256" if isinstance(key, RSAKey) else "ECDH-ES"
    header = {"alg": alg, "enc": CONTENT_ENCRYPTION, "cty": "application/json"}
    if key.kid:
        header["kid"] = key.kid
    return jwe.encrypt_compact(header, json.dumps(values, sort_keys=True, default=str), key, algorithms=ALGORITHMS)


def corrected_values(cur: cursor, policy: Policy, row: OutboxRow) -> dict[str, dict[str, Any]]:
    """The values a rectification wrote, read now from the person's records: {table: {column: value}}
    (the rows of a table were all set to the same values)."""
    if row.request_id is None:
        return {}
    request = fetch(cur, row.request_id)
    subject = resolve_subject(
        cur, policy, account_id=request.account_id, email=contact(cur, row.request_id).subject_email
    )
    values: dict[str, dict[str, Any]] = {}
    for table, names in sorted(row.columns.items()):
        store = policy.store(table)
        cur.execute(
            sql.SQL("SELECT {cols} FROM {table} t WHERE {matches} ORDER BY t.{key} LIMIT 1").format(
                cols=sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(n)) for n in names),
                table=ident(table),
                matches=person_predicate(policy, store),
                key=sql.Identifier(store.key),
            ),
            subject.params(),
        )
        found = cur.fetchone()
        if found is not None:
            values[table] = dict(zip(names, found, strict=True))
    return values


def body(row: OutboxRow, encrypted: str | None, *, withheld: bool, sent_at: datetime) -> bytes:
    """The message bytes (UTF-8 JSON, keys sorted): the same for every channel."""
    data: dict[str, Any] = {
        "notice_id": row.notice_id,
        "idempotency_key": row.idempotency_key,
        "event": row.event,
        "recipient_id": row.recipient_id,
        "subject": {
            "pseudonyms": row.subject_pseudonyms,
            "pseudonym_key_id": row.pseudonym_key_id,
            "order_ids": row.order_ids,
        },
        "categories": row.categories,
        "tables": row.tables,
        "columns": row.columns,
        "record_counts": row.record_counts,
        "queued_at": iso(row.created_at),
        "acknowledge": {"respond_with": {"acknowledged": row.idempotency_key}},
    }
    if encrypted is not None:
        data["corrected_values_jwe"] = encrypted
    elif withheld:
        data["corrected_values"] = WITHHELD
    message = {"type": f"notice.{row.event}", "version": MESSAGE_VERSION, "timestamp": iso(sent_at), "data": data}
    return json.dumps(message, sort_keys=True, separators=(",", ":")).encode("utf-8")


def needs_values(row: OutboxRow) -> bool:
    """Whether the message carries corrected values (a rectification naming columns)."""
    return row.event == "rectification" and bool(row.columns)


def build(
    cur: cursor | None,
    policy: Policy,
    recipient: Recipient,
    row: OutboxRow,
    key_text: str | None,
    *,
    sent_at: datetime,
) -> bytes:
    """The message for ``row``; ``key_text``: the recipient's public JWK when it registered one;
    ``cur`` reads the corrected values (needed only when ``needs_values``)."""
    if not needs_values(row):
        return body(row, None, withheld=False, sent_at=sent_at)
    if key_text is None or recipient.notify is None or recipient.notify.encryption_key_conn is None:
        return body(row, None, withheld=True, sent_at=sent_at)
    if cur is None:
        raise ValueError("a rectification's values are read from the database: give a cursor")
    key = public_key(key_text, recipient.notify.encryption_key_conn)
    return body(row, encrypt(corrected_values(cur, policy, row), key), withheld=False, sent_at=sent_at)
