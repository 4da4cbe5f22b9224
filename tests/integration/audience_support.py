"""A small shop for the advertising audience tests (TP-1, TP-3; MKT-1, OBJ-1, CON-1, RES-1): one
account per situation an audience must handle, and register rows written directly (with a real,
verified request behind each, as the processing register requires)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from governance import requests

PURPOSE = "advertising_audiences"
BUCKET = "advertising-audiences"

# account label -> (address, consent: None (never) | 'active' | 'withdrawn', deleted)
PEOPLE = {
    "consents": ("Kari.Nordmann@Example.no ", "active", False),
    "also_consents": ("per.olsen@example.no", "active", False),
    "objects_by_account": ("ola.hansen@example.no", "active", False),
    "objects_by_address": ("  Siri.Dahl@example.NO", "active", False),
    "withdrew_in_register": ("lise.berg@example.no", "active", False),
    "restricted": ("nils.moe@example.no", "active", False),
    "withdrew_in_shop": ("anne.lie@example.no", "withdrawn", False),
    "never_consented": ("jon.vik@example.no", None, False),
    "deleted": ("eva.strand@example.no", "active", True),
}


def pseudonym(address: str) -> str:
    """What governance.email_pseudonym computes, written independently: SHA-256 of trim+lower."""
    return hashlib.sha256(address.strip().lower().encode()).hexdigest()


@dataclass
class Shop:
    accounts: dict[str, int] = field(default_factory=dict)

    def address(self, label: str) -> str:
        return PEOPLE[label][0]


def seed(conn: Any, now: datetime) -> Shop:
    """The accounts of PEOPLE, their consents given 30 days before ``now``; no register rows yet."""
    shop = Shop()
    given = now - timedelta(days=30)
    with conn.cursor() as cur:
        for label, (address, consent, deleted) in PEOPLE.items():
            cur.execute(
                "INSERT INTO shop.accounts (email, password_hash, first_name, created_at, deleted_at) "
                "VALUES (%s, 'x', 'Navn', %s, %s) RETURNING account_id",
                (address, given - timedelta(days=1), given if deleted else None),
            )
            shop.accounts[label] = cur.fetchone()[0]
            if consent is not None:
                cur.execute(
                    "INSERT INTO shop.marketing_consents (account_id, purpose, given_at, withdrawn_at) "
                    "VALUES (%s, %s, %s, %s)",
                    (
                        shop.accounts[label],
                        PURPOSE,
                        given,
                        given + timedelta(days=1) if consent == "withdrawn" else None,
                    ),
                )
    conn.commit()
    return shop


def switch_off(
    conn: Any,
    policy: Any,
    now: datetime,
    *,
    effect: str,
    account_id: int | None = None,
    address: str | None = None,
    purpose: str = PURPOSE,
) -> int:
    """A register row in force from ``now`` for the purpose, behind a verified request of the kind."""
    kind = {"objected": "objection", "withdrawn": "consent_withdrawal", "restricted": "restriction"}[effect]
    request = requests.open_request(
        conn,
        policy,
        kind=kind,
        account_id=account_id,
        email=address,
        channel="email",
        opened_by="support",
        purposes=[purpose],
        now=now - timedelta(days=1),
    )
    requests.verify(conn, policy, request.request_id, verified_by="support", method="id_document", now=now)
    request_id = request.request_id
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO governance.processing_register (request_id, purpose, effect, account_ids, email_sha256s, "
            "starts_at) VALUES (%s, %s, %s, %s, %s, %s) RETURNING entry_id",
            (
                request_id,
                purpose,
                effect,
                [account_id] if account_id else [],
                [pseudonym(address)] if address else [],
                now,
            ),
        )
        entry = cur.fetchone()[0]
    conn.commit()
    return entry


def lines(s3: Any, key: str) -> list[str]:
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
    return body.splitlines()
