"""Who a request is about (REQ-1): the accounts and normalised e-mail addresses that name one person.

A person is given by an account id and/or an e-mail address. The data map's account stores
(``Policy.account_stores``: keyed by the account id, with an e-mail column) join the two: the
account's own address is theirs, and an account whose address is the one given is theirs. Records
are then the person's when they carry one of the accounts, or, having no account, one of the
addresses after ``lower(btrim(...))`` (guests, grouped as RET-3 groups them). The addresses are
personal data: a ``Subject`` is never logged, put in evidence or in an exception message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from psycopg2 import sql
from psycopg2.extensions import cursor

from governance.db import ident
from governance.errors import RequestError
from governance.policy import Policy

EMAIL_SHAPE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class Subject:
    """One person's keys: account ids and normalised addresses (personal data: never log it)."""

    account_ids: tuple[int, ...]
    emails: tuple[str, ...]
    found: bool

    def params(self) -> dict[str, Any]:
        """The query parameters every person query of ``governance.person`` takes."""
        return {"accounts": list(self.account_ids), "emails": list(self.emails)}

    def __repr__(self) -> str:  # never the addresses, even in a traceback's locals
        return f"Subject(accounts={len(self.account_ids)}, emails={len(self.emails)}, found={self.found})"


def check_email(email: str, flag: str = "--email") -> None:
    """Refuse what is not an address, without echoing it back."""
    if not EMAIL_SHAPE.match(email.strip()):
        raise RequestError(f"{flag} is not an e-mail address (expected name@domain.tld)")


def resolve_subject(cur: cursor, policy: Policy, *, account_id: int | None, email: str | None) -> Subject:
    """The person named by ``account_id`` and/or ``email``, widened through the account stores."""
    if account_id is None and not email:
        raise RequestError("a request needs the subject's account id or e-mail address (or both)")
    emails: set[str] = set()
    if email:
        check_email(email)
        cur.execute("SELECT lower(btrim(%s))", (email,))
        emails.add(str(_one(cur)))
    accounts: set[int] = set()
    cur.execute(
        sql.SQL(
            "SELECT account_id, email FROM ({}) a WHERE account_id = %(account)s OR email = ANY(%(emails)s)"
        ).format(account_addresses(policy)),
        {"account": account_id, "emails": sorted(emails)},
    )
    for found_account, found_email in cur.fetchall():
        accounts.add(int(found_account))
        emails.add(str(found_email))
    return Subject(tuple(sorted(accounts)), tuple(sorted(emails)), bool(accounts) or _guest_found(cur, policy, emails))


def account_addresses(policy: Policy) -> sql.Composable:
    """``(account_id, email)`` of every account, the address normalised ``lower(btrim())``, from the
    data map's account stores (``Policy.account_stores``): the one link between an account and its
    address, shared by requests, breach notices and the sweep's person holds."""
    parts = [
        sql.SQL("SELECT {key}::bigint AS account_id, lower(btrim({email})) AS email FROM {table}").format(
            key=sql.Identifier(s.key), email=sql.Identifier(s.person.email), table=ident(s.table)
        )
        for s in policy.account_stores()
        if s.person is not None and s.person.email
    ]
    if not parts:
        return sql.SQL("SELECT NULL::bigint AS account_id, NULL::text AS email WHERE false")
    return sql.SQL(" UNION ALL ").join(parts)


def _guest_found(cur: cursor, policy: Policy, emails: set[str]) -> bool:
    """Whether any store naming its person by address holds a record of one of ``emails``."""
    if not emails:
        return False
    for category in policy.categories:
        for store in category.stores:
            if store.person is None or not store.person.email:
                continue
            cur.execute(
                sql.SQL("SELECT EXISTS (SELECT 1 FROM {table} WHERE lower(btrim({email})) = ANY(%s))").format(
                    table=ident(store.table), email=sql.Identifier(store.person.email)
                ),
                (sorted(emails),),
            )
            if _one(cur):
                return True
    return False


def _one(cur: cursor) -> Any:
    row = cur.fetchone()
    assert row is not None
    return row[0]
