"""Legal holds as the sweep sees them (RET-8): the holds in force, and the SQL predicates that keep
held rows out of a rule's selection.

A row is held by a hold on the record itself (table_name, record_key), on its person (account id
or e-mail pseudonym, from the store's ``person`` columns), or on a row of another table that its
removal would cascade to or rewrite (a deleted account's held calendar event), or a row of another
table under a held rule that the removal would cascade to or rewrite (ADR 0006). Rule holds on the
rule's own rows are the selection's business (``Selection.rule_held``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from psycopg2 import sql
from psycopg2.extensions import connection

from governance.person.subject import account_addresses
from governance.policy import Policy, Store
from governance.sweep.target import Child, ident
from governance.windows import as_utc


@dataclass(frozen=True)
class Holds:
    """The legal holds in force at the run's "now" or when the sweep executes (RET-8): identifiers
    and pseudonyms only, no personal data."""

    rules: frozenset[str] = frozenset()
    records: dict[str, tuple[str, ...]] = field(default_factory=dict)  # table -> record keys (text)
    accounts: tuple[int, ...] = ()
    emails: tuple[str, ...] = ()  # email_sha256

    @classmethod
    def at(cls, conn: connection, now: datetime, policy: Policy | None = None) -> Holds:
        """The holds in force; with ``policy``, person holds cover the whole person (``_people``)."""
        with conn.cursor() as cur:
            # In force at the run's "now" OR now, as the sweep executes: a hold placed after a run's
            # "now" still protects its records when that run is rerun later (RET-8).
            cur.execute(
                "SELECT scope, rule_id, table_name, record_key, account_id, email_sha256 FROM ("
                " SELECT * FROM governance.holds_at(%s) UNION SELECT * FROM governance.holds_at(now())"
                ") h ORDER BY hold_id",
                (as_utc(now),),
            )
            rows = cur.fetchall()
        rules: set[str] = set()
        records: dict[str, set[str]] = {}
        accounts: set[int] = set()
        emails: set[str] = set()
        for scope, rule_id, table_name, record_key, account_id, email_sha256 in rows:
            if scope == "rule":
                rules.add(rule_id)
            elif scope == "record":
                records.setdefault(table_name, set()).add(str(record_key))
            elif scope == "person":
                if account_id is not None:
                    accounts.add(int(account_id))
                if email_sha256:
                    emails.add(email_sha256)
        if policy is not None and (accounts or emails):
            _people(conn, policy, accounts, emails)
        return cls(
            rules=frozenset(rules),
            records={t: tuple(sorted(keys)) for t, keys in records.items()},
            accounts=tuple(sorted(accounts)),
            emails=tuple(sorted(emails)),
        )

    def any_for(self, tables: set[str]) -> bool:
        return bool(self.rules or self.accounts or self.emails or any(t in self.records for t in tables))


def _people(conn: connection, policy: Policy, accounts: set[int], emails: set[str]) -> None:
    """A person hold names an account or an address; it keeps everything the data map reaches for
    that person (RET-8): a held account's address (from the account stores, compared normalised,
    lower(btrim()), as its pseudonym) holds the records naming that address, such as contact
    messages (CAT-4, e-mail only); a held address holds the records of the accounts that have it.
    Adds to ``accounts`` and ``emails`` in place."""
    if not policy.account_stores():
        return
    query = sql.SQL(
        "SELECT a, e FROM (SELECT account_id, governance.email_pseudonym(email) FROM ({}) addresses) x(a, e) "
        "WHERE e IS NOT NULL AND (a = ANY(%(a)s::bigint[]) OR e = ANY(%(e)s::text[]))"
    ).format(account_addresses(policy))
    with conn.cursor() as cur:
        cur.execute(query, {"a": sorted(accounts), "e": sorted(emails)})
        found = cur.fetchall()
    for account_id, pseudonym in found:
        accounts.add(int(account_id))
        emails.add(str(pseudonym))


class HeldTable(Protocol):
    """What the hold predicates need of a table: a rule's ``Target``, or an erasure's store (ERA-1)."""

    @property
    def table(self) -> str: ...

    @property
    def key(self) -> str: ...

    @property
    def store(self) -> Store: ...

    @property
    def children(self) -> list[Child]: ...


class HeldPredicates:
    """The SQL that says a row of the target's table is held (rule holds aside). The hold keys go
    into ``params`` (the selection's named parameters) as they are needed."""

    def __init__(self, target: HeldTable, holds: Holds, params: dict[str, Any], *, prefix: str = ""):
        """``prefix`` keeps the parameter names of several tables' predicates in one statement apart."""
        self.target, self.holds, self.params, self.prefix = target, holds, params, prefix

    def held(self, alias: str = "t") -> sql.Composable:
        """True when a record, person or dependent hold keeps the row."""
        clauses = self.clauses(alias)
        if not clauses:
            return sql.SQL("false")
        return sql.SQL("({})").format(sql.SQL(" OR ").join(clauses))

    def clauses(self, alias: str = "t") -> list[sql.Composable]:
        clauses = self._own_clauses(self.target.table, self.target.store, alias, "")
        for i, child in enumerate(self.target.children):
            child_clauses = self._own_clauses(child.table, child.store, "ch", f"c{i}_")
            if child.on_delete in ("c", "n") and any(r in self.holds.rules for r in child.rules):
                # removal would cascade into a held rule's records, or rewrite one (SET NULL: a
                # deleted account's upload would become a guest upload, swept by another rule);
                # dependents their own rules removed earlier in the run are gone by then
                child_clauses.append(sql.SQL("true"))
            if child_clauses:
                clauses.append(
                    sql.SQL("EXISTS (SELECT 1 FROM {child} ch WHERE ch.{fk} = {alias}.{key} AND ({any}))").format(
                        child=ident(child.table),
                        fk=sql.Identifier(child.column),
                        alias=sql.Identifier(alias),
                        key=sql.Identifier(self.target.key),
                        any=sql.SQL(" OR ").join(child_clauses),
                    )
                )
        return clauses

    def _own_clauses(self, table: str, store: Store, alias: str, prefix: str) -> list[sql.Composable]:
        """Record and person holds on rows of ``table`` (alias ``alias``)."""
        holds = self.holds
        clauses: list[sql.Composable] = []
        a = sql.Identifier(alias)
        if holds.records.get(table):
            self.params[f"{self.prefix}{prefix}held_keys"] = list(holds.records[table])
            clauses.append(
                sql.SQL("{a}.{key}::text = ANY({p}::text[])").format(
                    a=a, key=sql.Identifier(store.key), p=sql.Placeholder(f"{self.prefix}{prefix}held_keys")
                )
            )
        person = store.person
        if person and person.account_id and holds.accounts:
            self.params["held_accounts"] = list(holds.accounts)
            clauses.append(
                sql.SQL("coalesce({a}.{col} = ANY(%(held_accounts)s::bigint[]), false)").format(
                    a=a, col=sql.Identifier(person.account_id)
                )
            )
        if holds.emails:
            clauses += self._email_clauses(store, a)
        return clauses

    def _email_clauses(self, store: Store, a: sql.Identifier) -> list[sql.Composable]:
        """Person holds by e-mail pseudonym on the row's own e-mail (a held address's accounts are
        in ``holds.accounts``, a held account's address in ``holds.emails``: ``_people``)."""
        self.params["held_emails"] = list(self.holds.emails)
        person = store.person
        if not (person and person.email):
            return []
        return [
            sql.SQL("coalesce(governance.email_pseudonym({a}.{col}) = ANY(%(held_emails)s::text[]), false)").format(
                a=a, col=sql.Identifier(person.email)
            )
        ]
