"""The independent check of an erasure (ERA-1): plain SQL and an object listing, not the erasure's
own selection, proving nothing of the person is left except what is held or anonymised.

Traces of the person, per store, written from the data map's person columns in another form than
the person finder's, each on an index so that one request's check stays fast however large the
shop: any account column (the store's account column, an account store's key) equal to one of the
person's account ids; the store's address column normalised (``lower(btrim())``, the column's
index) equal to the address the person gave, in a row without an account where the store has an
account column (a guest's; the guest-address indexes are partial, as the person finder reads
them); an account store's address column also by its pseudonym (the pseudonym index on its
address) equal to one of the person's; for a store without person
columns, rows whose link column points at a trace of the store it links to. Then the records the
erasure recorded before it began (``governance.erasure_work``): each must be gone, or anonymised
(every masked column holds its strategy's value, the marker set), or kept (a dependent of an
anonymised record, a copy an open request needs), or held by a legal hold in force (RET-8, the
sweep's hold logic). Their objects: ``list_object_versions`` on each recorded key finds no version
and no delete marker. Counts only, per table. An account deletion's kept categories (RET-7, from the
request's own choices on the ledger): every trace in their stores is counted kept; the deleted
categories are checked as any erasure's.

What a per-request check cannot do on an index, a scan of whole tables, is the retention audit's:
its rights check ``include/sql/audit/rights/erased_persons_left.sql`` looks, for every erased
person at once, for their account ids and e-mail pseudonyms in every person column and for their
addresses written inside every personal text column (a message body quoting the address).
A person known only by pseudonyms (a replay after a restore, ``governance.erasure.replay``: the
ledger keeps no address) is looked for by the pseudonym of every address column instead, a scan
that a replay's one check over all its subjects pays once.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import botocore.exceptions
from psycopg2 import sql
from psycopg2.extensions import connection, cursor

from governance.db import ident, transaction
from governance.erasure.batches import WORK_TABLE
from governance.erasure.plan import StorePlan, erasure_plan, held_sql
from governance.person.records import columns, person_stores
from governance.policy import Policy, Store
from governance.requests import contact, fetch
from governance.requests.model import OPEN_STATES
from governance.requests.scope import kept_categories
from governance.sweep.held import Holds
from governance.windows import as_utc

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# (table, column) -> the column's values (as text) in the table's traces of the person, for the
# stores linking to it: a linked store's traces are read by their link column's index.
Traced = dict[tuple[str, str], list[str]]


@dataclass
class ErasureCheck:
    """Per table: records of the person left (``left``), held, anonymised, kept; objects left."""

    request_id: int
    left: dict[str, int] = field(default_factory=dict)
    held: dict[str, int] = field(default_factory=dict)
    anonymised: dict[str, int] = field(default_factory=dict)
    kept: dict[str, int] = field(default_factory=dict)
    objects_left: int = 0

    @property
    def ok(self) -> bool:
        return not any(self.left.values()) and self.objects_left == 0

    def counts(self) -> dict[str, int]:
        """``<what>.<table>`` -> n (non-zero) and ``objects_left``: evidence and the request's outcome."""
        out = {
            f"{what}.{table}": n
            for what in ("left", "held", "anonymised", "kept")
            for table, n in getattr(self, what).items()
            if n
        }
        out["objects_left"] = self.objects_left
        return out

    def describe(self) -> str:
        left = [f"{table}: {n}" for table, n in sorted(self.left.items()) if n]
        if self.objects_left:
            left.append(f"objects: {self.objects_left}")
        return ", ".join(left) or "nothing"


@dataclass(frozen=True)
class Person:
    """Whom the check looks for: account ids, e-mail pseudonyms, addresses given (if any)."""

    accounts: list[int]
    pseudonyms: list[str]
    addresses: list[str]  # the address the person gave (personal data: a query parameter only)

    def __repr__(self) -> str:  # never the addresses
        return f"Person(accounts={len(self.accounts)}, pseudonyms={len(self.pseudonyms)})"


@dataclass(frozen=True)
class Scope:
    """Where the erasure recorded its records (``work_table``, rows of ``request_id``), and the
    disposition of a trace it did not record (``fallback``: none for a request's erasure, whose
    recorded set is complete; a replay's is the plan's, as it records only what is left to do)."""

    work_table: str = WORK_TABLE
    fallback: Callable[[StorePlan], sql.Composable] | None = None


def verify_erasure(
    conn: connection,
    s3: S3Client | None,
    policy: Policy,
    request_id: int,
    *,
    now: datetime,
    keep_categories: Collection[str] | None = None,
) -> ErasureCheck:
    """Check, independently of the erasure, that nothing of the request's person is left outside
    ``keep_categories`` (default: an account deletion's, from its choices on the ledger, RET-7)."""
    with transaction(conn, read_only=True) as cur:
        person = _person(cur, request_id)
        if keep_categories is None:
            request = fetch(cur, request_id)
            keep_categories = kept_categories(policy, request.kind, request.choices)
        plans = erasure_plan(cur, policy, keep_categories=keep_categories)
    return check_person(conn, s3, policy, person, plans, ErasureCheck(request_id), Scope(), now=now)


def check_person(
    conn: connection,
    s3: S3Client | None,
    policy: Policy,
    person: Person,
    plans: list[StorePlan],
    check: ErasureCheck,
    scope: Scope,
    *,
    now: datetime,
) -> ErasureCheck:
    """Fill ``check`` with what is left of ``person`` (one person, or a replay's many) in every store."""
    holds = Holds.at(conn, as_utc(now), policy)
    with transaction(conn, read_only=True) as cur:
        traced: Traced = {}
        for plan in reversed(plans):  # a store after those it links to: their traces are known
            _check_store(cur, policy, plan, person, holds, check, traced, scope)
        objects = _recorded_objects(cur, policy, plans, check.request_id, holds, scope)
    check.objects_left = sum(1 for bucket, key in objects if s3 is not None and _has_versions(s3, bucket, key))
    if s3 is None and objects:
        check.objects_left = len(objects)  # not checked is not proven gone
    return check


def _person(cur: cursor, request_id: int) -> Person:
    """The person as the ledger and the erasure's subject record name them, and the address given."""
    request = fetch(cur, request_id)
    cur.execute(
        "SELECT account_ids, email_sha256s FROM governance.erasure_subjects WHERE request_id = %s", (request_id,)
    )
    row = cur.fetchone()
    accounts = set(row[0]) if row else set()
    pseudonyms = set(row[1]) if row else set()
    if request.account_id is not None:
        accounts.add(request.account_id)
    if request.email_sha256:
        pseudonyms.add(request.email_sha256)
    given = contact(cur, request_id).subject_email
    cur.execute("SELECT lower(btrim(%s))", (given,))
    address = cur.fetchone()
    return Person(sorted(accounts), sorted(pseudonyms), [str(address[0])] if address and address[0] else [])


def _traces(
    cur: cursor, policy: Policy, store: Store, alias: str, traced: Traced, params: dict[str, Any]
) -> sql.Composable:
    """True for a row of ``store`` (as ``alias``) that carries the person (see the module); the
    values of the stores it links to come from ``traced`` (as parameters added to ``params``)."""
    a = sql.Identifier(alias)
    found: list[sql.Composable] = []
    account_columns = {store.person.account_id} if store.person and store.person.account_id else set()
    if store in policy.account_stores():
        account_columns.add(store.key)
    found += [
        sql.SQL("{a}.{c} = ANY(%(accounts)s::bigint[])").format(a=a, c=sql.Identifier(c))
        for c in sorted(account_columns)
    ]
    if store.person is not None and store.person.email:
        found.append(_address_trace(policy, store, a, by_address=bool(params.get("addresses"))))
    types = {c.name: c.type_name for c in columns(cur, store)}
    for link in store.links:
        if link.via is not None:
            continue  # through a join table: the objects' own listing covers them
        name = f"traced_{len(params)}"
        params[name] = traced.get((link.to, link.to_column), [])
        found.append(
            sql.SQL("{a}.{c} = ANY(CAST({p} AS {type}[]))").format(
                a=a, c=sql.Identifier(link.column), p=sql.Placeholder(name), type=sql.SQL(types[link.column])
            )
        )
    return sql.SQL("({})").format(sql.SQL(" OR ").join(found)) if found else sql.SQL("false")


def _address_trace(policy: Policy, store: Store, a: sql.Identifier, *, by_address: bool) -> sql.Composable:
    """The store's address column carrying the person: normalised (``lower(btrim())``, its index)
    equal to the address given, in a row without an account where the store has an account column
    (a guest's; the guest-address indexes are partial, as the person finder reads them); an account
    store's also by its pseudonym (its pseudonym index). Without an address given (a replay), by the
    pseudonym of the column in every row."""
    assert store.person is not None and store.person.email
    email = sql.Identifier(store.person.email)
    pseudonym = sql.SQL("governance.email_pseudonym({a}.{c}) = ANY(%(pseudonyms)s::text[])").format(a=a, c=email)
    if not by_address:
        return pseudonym
    address = sql.SQL("lower(btrim({a}.{c})) = ANY(%(addresses)s::text[])").format(a=a, c=email)
    if store in policy.account_stores():  # the pseudonym index on the accounts' address (050_erasure.sql)
        return sql.SQL("({} OR {})").format(address, pseudonym)
    if store.person.account_id:
        return sql.SQL("({a}.{account} IS NULL AND {address})").format(
            a=a, account=sql.Identifier(store.person.account_id), address=address
        )
    return address


def _linked_columns(policy: Policy, table: str) -> list[str]:
    """The columns of ``table`` that other stores' direct links point at."""
    return sorted(
        {
            link.to_column
            for _, store in person_stores(policy)
            for link in store.links
            if link.to == table and link.via is None
        }
    )


def _check_store(  # noqa: PLR0913 - the check's state, passed down store by store
    cur: cursor,
    policy: Policy,
    plan: StorePlan,
    person: Person,
    holds: Holds,
    check: ErasureCheck,
    traced: Traced,
    scope: Scope,
) -> None:
    """Count the store's traces and recorded records: held, anonymised, kept, left; record in
    ``traced`` the values its linking stores need."""
    params: dict[str, Any] = {"accounts": person.accounts, "pseudonyms": person.pseudonyms, "open": list(OPEN_STATES)}
    params.update(addresses=person.addresses, request=check.request_id, table=plan.table)
    linked = _linked_columns(policy, plan.table)
    cur.execute(
        sql.SQL("SELECT s.{key}::text{more} FROM {table} s WHERE {traces}").format(
            key=sql.Identifier(plan.key),
            more=sql.SQL("").join(sql.SQL(", s.{}::text").format(sql.Identifier(c)) for c in linked),
            table=ident(plan.table),
            traces=_traces(cur, policy, plan.store, "s", traced, params),
        ),
        params,
    )
    rows = cur.fetchall()
    for i, column in enumerate(linked, start=1):
        traced[(plan.table, column)] = sorted({str(row[i]) for row in rows if row[i] is not None})
    params["traces"] = [str(row[0]) for row in rows]
    masked, mask_params = masked_sql(plan)
    params.update(mask_params)
    query = sql.SQL(
        "SELECT count(*) FILTER (WHERE h), count(*) FILTER (WHERE NOT h AND d = 'anonymise' AND m), "
        "count(*) FILTER (WHERE NOT h AND d = 'keep'), "
        "count(*) FILTER (WHERE NOT h AND NOT (coalesce(d, '') = 'keep' OR (coalesce(d, '') = 'anonymise' AND m))) "
        "FROM (SELECT {held} AS h, coalesce({disposition}, {fallback}) AS d, {masked} AS m FROM {table} t "
        "LEFT JOIN {work} w ON w.request_id = %(request)s AND w.table_name = %(table)s "
        "AND w.record_key = t.{key}::text "
        "WHERE t.{key} IN (SELECT unnest(CAST(%(traces)s AS {type}[])) "
        "UNION SELECT CAST(r.record_key AS {type}) FROM {work} r "
        "WHERE r.request_id = %(request)s AND r.table_name = %(table)s)) x"
    ).format(
        held=held_sql(policy, plan, holds, params),
        disposition=_kept(plan),
        masked=masked,
        fallback=scope.fallback(plan) if scope.fallback else sql.SQL("NULL"),
        work=ident(scope.work_table),
        table=ident(plan.table),
        key=sql.Identifier(plan.key),
        type=sql.SQL(plan.key_type),
    )
    cur.execute(query, params)
    row = cur.fetchone()
    assert row is not None
    for what, n in zip(("held", "anonymised", "kept", "left"), row, strict=True):
        if n:
            getattr(check, what)[plan.table] = int(n)


def _kept(plan: StorePlan) -> sql.Composable:
    """A record's disposition as the check accepts it: every record of a kept category is kept
    (RET-7); a recorded ``keep`` counts only where the check's own plan keeps records (dependents
    of anonymised ones, copies an open request needs), never in a store it erases."""
    if plan.chosen_keep:
        return sql.Literal("keep")
    if plan.disposition == "keep" or plan.request_column is not None:
        return sql.SQL("w.disposition")
    return sql.SQL("NULLIF(w.disposition, 'keep')")


def masked_sql(plan: StorePlan) -> tuple[sql.Composable, dict[str, Any]]:
    """True when the row holds every RET-8 masking value and its marker (false for other stores)."""
    action = plan.anonymise
    if action is None:
        return sql.SQL("false"), {}
    parts: list[sql.Composable] = [sql.SQL("t.{} IS NOT NULL").format(sql.Identifier(action.marker_column))]
    params: dict[str, Any] = {}
    for i, (name, strategy) in enumerate(action.columns.items()):
        text, values = strategy.sql_value()
        if text == "NULL":
            parts.append(sql.SQL("t.{} IS NULL").format(sql.Identifier(name)))
        else:
            params[f"check_{i}"] = values[0]
            parts.append(sql.SQL("t.{}::text = %({})s::text").format(sql.Identifier(name), sql.SQL(f"check_{i}")))
    return sql.SQL("({})").format(sql.SQL(" AND ").join(parts)), params


def _recorded_objects(
    cur: cursor, policy: Policy, plans: list[StorePlan], request_id: int, holds: Holds, scope: Scope
) -> list[tuple[str, str]]:
    """(bucket, key) of every object the erasure recorded, except those of records a hold keeps."""
    found: list[tuple[str, str]] = []
    for plan in plans:
        if plan.store.objects is None:
            continue
        params: dict[str, Any] = {"request": request_id, "table": plan.table}
        cur.execute(
            sql.SQL(
                "SELECT w.bucket, w.object_key FROM {work} w LEFT JOIN {table} t "
                "ON t.{key} = CAST(w.record_key AS {type}) WHERE w.request_id = %(request)s AND w.table_name = %(table)s "
                "AND w.disposition <> 'keep' AND w.object_key IS NOT NULL AND (t.{key} IS NULL OR NOT {held})"
            ).format(
                work=ident(scope.work_table),
                table=ident(plan.table),
                key=sql.Identifier(plan.key),
                type=sql.SQL(plan.key_type),
                held=held_sql(policy, plan, holds, params),
            ),
            params,
        )
        found += [(str(b), str(k)) for b, k in cur.fetchall()]
    return found


def _has_versions(s3: S3Client, bucket: str, key: str) -> bool:
    """Whether any version or delete marker of exactly ``key`` is in ``bucket``."""
    try:
        for page in _pages(s3, bucket, key):
            if any(item["Key"] == key for item in page.get("Versions", []) + page.get("DeleteMarkers", [])):
                return True
    except botocore.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NoSuchBucket":
            return False
        raise
    return False


def _pages(s3: S3Client, bucket: str, key: str) -> Iterator[Any]:
    yield from s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=key)
