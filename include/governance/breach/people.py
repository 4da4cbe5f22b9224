"""The people a breach concerns, found from the data map (SEC-2), and their addresses at send time.

A breach names categories and a time window. Every store of those categories that names its
person (``person:``) contributes the rows whose ``breach_clock`` falls in the window
(``from <= clock < to``). A row with an account is that account's; a row without one is a guest's,
grouped by the normalised address ``lower(btrim(email))``. A guest address that is the address of
an account concerned is that account. A notice keeps the account id and the e-mail pseudonym
(``governance.email_pseudonym``), never the address: ``addresses`` reads it from the shop's tables
when the notice is sent. No per-table code: everything comes from the policy's data map.
"""

from __future__ import annotations

from datetime import datetime

from psycopg2 import sql
from psycopg2.extensions import cursor

from governance.db import ident
from governance.errors import BreachError
from governance.person.subject import account_addresses
from governance.policy import Policy
from governance.policy.datamap import Store


def person_stores(policy: Policy, categories: list[str]) -> list[Store]:
    """The stores of ``categories`` that name a person; each must have a breach_clock."""
    stores = [s for c in policy.categories if c.id in categories for s in c.stores if s.person is not None]
    missing = [s.table for s in stores if s.breach_clock is None]
    if missing:
        raise BreachError(
            f"store(s) {', '.join(missing)} name a person but have no breach_clock in policy {policy.policy.name}; "
            "add `breach_clock: COLUMN` (the timestamp placing a record in time) to the data map"
        )
    return stores


def _concerned_rows(stores: list[Store]) -> sql.Composable:
    """UNION ALL of (account_id, normalised email) of every row in the window, store by store."""
    parts = []
    for store in stores:
        assert store.person is not None and store.breach_clock is not None
        account = sql.Identifier(store.person.account_id) if store.person.account_id else sql.SQL("NULL")
        email = (
            sql.SQL("lower(btrim({}))").format(sql.Identifier(store.person.email))
            if store.person.email
            else sql.SQL("NULL")
        )
        parts.append(
            sql.SQL(
                "SELECT {account}::bigint AS account_id, {email}::text AS email FROM {table} "
                "WHERE {clock} >= %(from)s AND {clock} < %(to)s"
            ).format(account=account, email=email, table=ident(store.table), clock=sql.Identifier(store.breach_clock))
        )
    return sql.SQL(" UNION ALL ").join(parts)


_PEOPLE = """
WITH concerned AS ({rows}),
     addresses AS ({addresses}),
     accounts AS (
        SELECT DISTINCT ON (c.account_id) c.account_id, governance.email_pseudonym(a.email) AS email_sha256
        FROM (SELECT DISTINCT account_id FROM concerned WHERE account_id IS NOT NULL) c
        LEFT JOIN addresses a ON a.account_id = c.account_id
        ORDER BY c.account_id, a.email),
     guests AS (
        SELECT DISTINCT governance.email_pseudonym(email) AS email_sha256
        FROM concerned WHERE account_id IS NULL AND email IS NOT NULL)
INSERT INTO governance.breach_notices (breach_id, person_key, account_id, email_sha256)
SELECT %(breach)s, 'account:' || account_id, account_id, email_sha256 FROM accounts
UNION ALL
SELECT %(breach)s, 'email:' || g.email_sha256, NULL, g.email_sha256 FROM guests g
WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.email_sha256 = g.email_sha256)
ON CONFLICT (breach_id, person_key) DO NOTHING
"""


def queue_notices(
    cur: cursor, policy: Policy, breach_id: int, categories: list[str], window_from: datetime, window_to: datetime
) -> int:
    """Queue one notice per person concerned (in the caller's transaction); how many were queued."""
    stores = person_stores(policy, categories)
    if not stores:
        return 0
    query = sql.SQL(_PEOPLE).format(rows=_concerned_rows(stores), addresses=account_addresses(policy))
    cur.execute(query, {"from": window_from, "to": window_to, "breach": breach_id})
    return int(cur.rowcount)


def addresses(cur: cursor, policy: Policy, notice_ids: list[int]) -> dict[int, str]:
    """The address to send each notice to, read from the shop's tables now (never stored): an
    account's own address, or a guest's address as found under its pseudonym. A notice whose
    person's data is gone has none."""
    if not notice_ids:
        return {}
    parts: list[sql.Composable] = [
        sql.SQL(
            "SELECT n.notice_id, btrim(a.email) AS email FROM governance.breach_notices n "
            "JOIN ({accounts}) a ON a.account_id = n.account_id WHERE n.notice_id = ANY(%(ids)s)"
        ).format(accounts=account_addresses(policy))
    ]
    email_stores = [s for c in policy.categories for s in c.stores if s.person is not None and s.person.email]
    for store in email_stores:
        assert store.person is not None and store.person.email
        parts.append(
            sql.SQL(
                "SELECT n.notice_id, btrim(t.{email}) AS email FROM governance.breach_notices n "
                "JOIN {table} t ON governance.email_pseudonym(t.{email}) = n.email_sha256 "
                "WHERE n.notice_id = ANY(%(ids)s) AND n.account_id IS NULL"
            ).format(email=sql.Identifier(store.person.email), table=ident(store.table))
        )
    query = sql.SQL("SELECT DISTINCT ON (notice_id) notice_id, email FROM ({}) found ORDER BY notice_id").format(
        sql.SQL(" UNION ALL ").join(parts)
    )
    cur.execute(query, {"ids": notice_ids})
    return {int(notice_id): str(email) for notice_id, email in cur.fetchall() if email}
