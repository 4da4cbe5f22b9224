"""Every record and object of one person, found from the data map (#10: ACC-1, POR-1, ERA-1).

A row of a store with ``person`` is the person's when its account column is one of the subject's
accounts, or when its account column is NULL (or the store has none) and its e-mail column,
``lower(btrim())``, is one of the subject's addresses (guests, grouped as RET-3 groups them). A row
of a linked store is the person's when its link column matches a row of the person's in the store
linked to, directly or through the link's join table; a store with both matches on either. Stores
that say ``unidentifiable`` are not searched. Legal holds do not matter here: a held record is
still the person's.

Every query takes ``%(accounts)s`` and ``%(emails)s`` (``Subject.params()``); identifiers come from
the policy through ``psycopg2.sql`` (CONTRIBUTING.md habit 4). Rows are streamed by a server-side
cursor inside the caller's transaction; ``snapshot`` opens the read-only REPEATABLE READ one in
which every store is read as of one instant.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from psycopg2 import sql
from psycopg2.extensions import connection, cursor

from governance.db import ident, transaction
from governance.errors import PolicyError
from governance.person.columns import Column
from governance.person.subject import Subject
from governance.policy import Category, Link, PersonKey, Policy, Store

# Rows fetched per round trip from a server-side cursor: memory stays flat in the person's size.
ITERSIZE = 2000

_cursor_names = itertools.count(1)


@dataclass(frozen=True)
class ObjectRef:
    """An object (photo or text bytes) of one of the person's records: its store's table and the
    record's key, and where the bytes are."""

    table: str
    record_key: str
    bucket: str
    key: str


@contextmanager
def snapshot(conn: connection) -> Iterator[cursor]:
    """A read-only REPEATABLE READ transaction: the person's stores read in it agree with each other.
    Its server-side cursors are planned for all their rows, as they are always read to the end: with
    the default ``cursor_tuple_fraction`` (0.1) PostgreSQL may plan a person's uploads as a walk of
    the whole table in key order, to return the first rows soonest (bench/README.md, #10)."""
    with transaction(conn, read_only=True) as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; SET LOCAL cursor_tuple_fraction = 1")
        yield cur


@dataclass(frozen=True)
class Keys:
    """How a query names the person: the condition on an account column and on an address column
    (each given the column). ``PARAMS``, the default, takes ``%(accounts)s`` and ``%(emails)s``; an
    erasure replay names the accounts and e-mail pseudonyms of a scratch table instead."""

    account: Callable[[sql.Composable], sql.Composable]
    email: Callable[[sql.Composable], sql.Composable]


PARAMS = Keys(
    account=lambda c: sql.SQL("{} = ANY(%(accounts)s::bigint[])").format(c),
    email=lambda c: sql.SQL("lower(btrim({})) = ANY(%(emails)s::text[])").format(c),
)


def person_stores(policy: Policy) -> list[tuple[Category, Store]]:
    """Every store of the data map that can hold a person's records, in data-map order (the
    ``unidentifiable`` ones, such as visits, are left out)."""
    return [
        (category, store) for category in policy.categories for store in category.stores if not store.unidentifiable
    ]


def person_predicate(policy: Policy, store: Store, keys: Keys = PARAMS) -> sql.Composable:
    """The condition on alias ``t`` that a row of ``store`` is the person's."""
    return _matches(policy, store, "t", 0, keys)


def selection(policy: Policy, store: Store) -> sql.Composable:
    """The person's rows of ``store``, every column, in key order."""
    return sql.SQL("SELECT t.* FROM {table} t WHERE {matches} ORDER BY t.{key}").format(
        table=ident(store.table), matches=person_predicate(policy, store), key=sql.Identifier(store.key)
    )


def _matches(policy: Policy, store: Store, alias: str, depth: int, keys: Keys) -> sql.Composable:
    """The person's rows of ``store`` as ``alias``; ``depth`` keeps the aliases of nested links apart."""
    linked = [(link, _linked_values(policy, link, depth + 1, keys)) for link in store.links]
    if not linked:
        return _own(store.person, alias, keys) if store.person is not None else sql.SQL("false")
    if store.person is None and len(linked) == 1:
        link, values = linked[0]
        return sql.SQL("{a}.{column} IN ({values})").format(
            a=sql.Identifier(alias), column=sql.Identifier(link.column), values=values
        )
    # Several ways to the person: the keys each way finds, so that each is planned as its own
    # semi-join on an index (an OR around a sub-select would read the whole table).
    inner = f"s{depth}"
    whole = sql.SQL("SELECT {s}.{key} FROM {table} {s} WHERE ").format(
        s=sql.Identifier(inner), key=sql.Identifier(store.key), table=ident(store.table)
    )
    ways: list[sql.Composable] = [] if store.person is None else [whole + _own(store.person, inner, keys)]
    for link, values in linked:
        if link.column == store.key:
            ways.append(values)
        else:
            ways.append(
                whole
                + sql.SQL("{s}.{column} IN ({values})").format(
                    s=sql.Identifier(inner), column=sql.Identifier(link.column), values=values
                )
            )
    return sql.SQL("{a}.{key} IN ({ways})").format(
        a=sql.Identifier(alias), key=sql.Identifier(store.key), ways=sql.SQL(" UNION ALL ").join(ways)
    )


def _own(person: PersonKey, alias: str, keys: Keys) -> sql.Composable:
    """The row names the person itself: one of the accounts, or, without an account, an address."""
    a = sql.Identifier(alias)
    email = (
        keys.email(sql.SQL("{a}.{column}").format(a=a, column=sql.Identifier(person.email))) if person.email else None
    )
    if person.account_id is None:
        assert email is not None  # PersonKey names one at least
        return email
    account = sql.Identifier(person.account_id)
    if email is None:
        return keys.account(sql.SQL("{a}.{account}").format(a=a, account=account))
    return sql.SQL("({own} OR ({a}.{account} IS NULL AND {email}))").format(
        own=keys.account(sql.SQL("{a}.{account}").format(a=a, account=account)), a=a, account=account, email=email
    )


def _linked_values(policy: Policy, link: Link, depth: int, keys: Keys) -> sql.Composable:
    """The values of ``link.column`` that lead to one of the person's rows of ``link.to``."""
    target = policy.store(link.to)
    alias = f"t{depth}"
    values = sql.SQL("SELECT {t}.{to_column} FROM {table} {t} WHERE {matches}").format(
        t=sql.Identifier(alias),
        to_column=sql.Identifier(link.to_column),
        table=ident(target.table),
        matches=_matches(policy, target, alias, depth, keys),
    )
    if link.via is None:
        return values
    via = sql.Identifier(f"v{depth}")
    return sql.SQL("SELECT {v}.{column} FROM {table} {v} WHERE {v}.{to_column} IN ({values})").format(
        v=via,
        column=sql.Identifier(link.via.column),
        table=ident(link.via.table),
        to_column=sql.Identifier(link.via.to_column),
        values=values,
    )


def columns(cur: cursor, store: Store) -> list[Column]:
    """The store's columns as the catalog describes them, in the table's column order."""
    return columns_of(cur, [store])[store.table]


# Every store's columns by the tables' oids (to_regclass: NULL for a missing table, not an error that
# would end the caller's transaction), each row with the oids in the order asked; an index scan of
# pg_attribute, ~0.4 ms where joining pg_class and pg_namespace by name took ~1.7 ms (#10 bench).
_RELATIONS = (
    "ARRAY(SELECT to_regclass(u.name) FROM unnest(%(tables)s::text[]) WITH ORDINALITY AS u(name, n) ORDER BY u.n)"
)
_COLUMNS_OF = (
    "SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod), " + _RELATIONS + "::oid[] "
    "FROM pg_attribute a WHERE a.attrelid = ANY(" + _RELATIONS + ") AND a.attnum > 0 AND NOT a.attisdropped "
    "ORDER BY a.attrelid, a.attnum"
)


def columns_of(cur: cursor, stores: Iterable[Store]) -> dict[str, list[Column]]:
    """Table -> its columns as the catalog describes them (table order), for every one of
    ``stores``, in one catalog query. Read each time, not cached: a column added or dropped since
    the last export is described as it is now (one query for all stores costs about what one
    validation of a cache would)."""
    tables = list(dict.fromkeys(store.table for store in stores))
    cur.execute(_COLUMNS_OF, {"tables": tables})
    found: dict[str, list[Column]] = {}
    relations: dict[int, str] = {}
    for relation, column, type_name, oids in cur.fetchall():
        relations = relations or {int(oid): table for oid, table in zip(oids, tables, strict=True) if oid is not None}
        found.setdefault(relations[int(relation)], []).append(Column(str(column), str(type_name)))
    missing = [table for table in tables if table not in found]
    if missing:
        raise PolicyError(
            "<data map>",
            [
                f"store {table!r}: the table does not exist in the database; run `governance policy check`"
                for table in missing
            ],
        )
    return {table: found[table] for table in tables}


def count_records(cur: cursor, policy: Policy, subject: Subject) -> dict[str, int]:
    """Table -> how many of the person's records it holds, for every store of ``person_stores``, in
    data-map order (one statement)."""
    stores = [store for _, store in person_stores(policy)]
    counts = [
        sql.SQL("(SELECT count(*) FROM {table} t WHERE {matches})").format(
            table=ident(store.table), matches=person_predicate(policy, store)
        )
        for store in stores
    ]
    cur.execute(sql.SQL("SELECT ") + sql.SQL(", ").join(counts), subject.params())
    row = cur.fetchone()
    assert row is not None
    return {store.table: int(count) for store, count in zip(stores, row, strict=True)}


def read_store(cur: cursor, policy: Policy, subject: Subject, store: Store) -> Iterator[tuple[Any, ...]]:
    """The person's rows of ``store`` (every column, ``columns`` order), streamed in key order."""
    yield from _stream(cur, selection(policy, store), subject.params())


def person_objects(cur: cursor, policy: Policy, subject: Subject) -> Iterator[ObjectRef]:
    """The objects of the person's records, store by store (those with ``objects:``), in key order."""
    for _, store in person_stores(policy):
        if store.objects is not None:
            yield from store_objects(cur, policy, subject, store)


def store_objects(cur: cursor, policy: Policy, subject: Subject, store: Store) -> Iterator[ObjectRef]:
    """The objects of the person's records of ``store`` (one with ``objects:``), in key order."""
    link = store.objects
    if link is None:
        return
    query = sql.SQL(
        "SELECT t.{key}::text, t.{bucket}, t.{object_key} FROM {table} t WHERE {matches} "
        "AND t.{bucket} IS NOT NULL AND t.{object_key} IS NOT NULL ORDER BY t.{key}"
    ).format(
        key=sql.Identifier(store.key),
        bucket=sql.Identifier(link.bucket_column),
        object_key=sql.Identifier(link.key_column),
        table=ident(store.table),
        matches=person_predicate(policy, store),
    )
    for record_key, bucket, key in _stream(cur, query, subject.params()):
        yield ObjectRef(store.table, str(record_key), str(bucket), str(key))


def _stream(cur: cursor, query: sql.Composable, params: dict[str, Any]) -> Iterator[tuple[Any, ...]]:
    """Rows of ``query`` from a server-side cursor in ``cur``'s transaction, ``ITERSIZE`` at a time:
    DECLARE, FETCH until a batch comes back short (no extra FETCH that finds nothing), CLOSE."""
    with cur.connection.cursor(name=f"governance_person_{next(_cursor_names)}") as named:
        size = ITERSIZE
        named.execute(query, params)
        while True:
            batch = named.fetchmany(size)
            yield from batch
            if len(batch) < size:
                return
