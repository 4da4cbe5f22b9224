"""The policy-derived SQL a rights check may ask for with a ``{{ name }}`` marker.

A marker is replaced by SQL rendered from the policy and the catalogue (identifiers through
``psycopg2.sql``, values as literals), so the checks stay generic: a store added to the data map,
or a recipient to the registry, is checked without editing a check. The markers:

- ``person_traces``: one pass per store of the data map that can hold a person's records, as rows
  ``(table_name, category, record_key, placed_at, request_id, rules, identifiers)`` for the rows
  carrying one of the identifiers the check wants (its CTE ``wanted``: one row, columns
  ``accounts bigint[]``, ``emails text[]`` (pseudonyms) and ``any boolean``, false when both are
  empty: then no table is read). A row's identifiers: ``account:<id>`` of every account column,
  ``email:<pseudonym>`` of the address column and of every address written inside a personal text
  column (a column named as a hash, ``*_hash`` or ``*_sha256``, holds none and is not read, so the
  auditor needs no SELECT on a password hash, SEC-4). Also the record's time (``breach_clock``),
  the request it belongs to (a column referencing the request ledger) and the rules of its table;
  RET-8 anonymised records (their marker set) are left out (ERA-1, RET-8).
- ``recipient_categories``: ``VALUES (recipient_id, category)``, the recipients registry (TP-1, TP-5).
- ``store_categories``: ``VALUES (table_name, category)``, the data map's stores.
- ``switch_off_tables``: ``VALUES (purpose, table_name)``, each table a purpose's ``switch_off``
  changes (RES-1, OBJ-1, MKT-1, CON-1).
- ``notice_ack_within``: the policy's ``notices.ack_within_days`` as an ``interval`` literal (TP-5).
- ``notice_payload_window``: the policy's ``decisions: RET-9-notices`` window as an ``interval``
  literal (RET-9, TP-5); a policy without it is refused naming what to add.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from psycopg2 import sql
from psycopg2.extensions import cursor

from governance.db import ident
from governance.errors import AuditError, SettingsError
from governance.notices.payloads import payload_window
from governance.person.columns import Column
from governance.person.records import columns_of, person_stores
from governance.policy import AnonymiseAction, Category, Policy, Store

MARKER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")
# An address written in free text: what governance.email_pseudonym normalises and hashes.
ADDRESS_PATTERN = r"[A-Za-z0-9._+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
TEXT_TYPES = ("text", "character varying", "character", "citext", "json", "jsonb")
HASHED = ("_hash", "_sha256")  # column name endings: a digest, no address inside
LEDGER = "governance.subject_requests"
_LEDGER_COLUMN = (
    "SELECT a.attname FROM pg_constraint con JOIN pg_attribute a ON a.attrelid = con.conrelid "
    "AND a.attnum = con.conkey[1] WHERE con.contype = 'f' AND cardinality(con.conkey) = 1 "
    "AND con.conrelid = to_regclass(%s) AND con.confrelid = to_regclass(%s) ORDER BY 1 LIMIT 1"
)


def render_markers(cur: cursor, policy: Policy, file: str, text: str) -> str:
    """``text`` with each ``{{ name }}`` replaced by its SQL (``%`` doubled for the parameters'
    pass that follows); an unknown marker is refused naming the file."""
    renderers: dict[str, Callable[[cursor, Policy], sql.Composable]] = {
        "person_traces": person_traces,
        "recipient_categories": recipient_categories,
        "store_categories": store_categories,
        "switch_off_tables": switch_off_tables,
        "notice_ack_within": notice_ack_within,
        "notice_payload_window": notice_payload_window,
    }
    unknown = sorted({m for m in MARKER.findall(text) if m not in renderers})
    if unknown:
        raise AuditError(
            f"rights check {file}: unknown marker(s) {unknown}; known: {sorted(renderers)} (include/sql/audit/README.md)"
        )
    rendered = {
        name: renderers[name](cur, policy).as_string(cur).replace("%", "%%") for name in set(MARKER.findall(text))
    }
    return MARKER.sub(lambda m: rendered[m.group(1)], text)


def _values(rows: list[tuple[str, str]], names: tuple[str, str]) -> sql.Composable:
    if not rows:  # an empty registry: no row, the same columns
        return sql.SQL("SELECT NULL::text AS {}, NULL::text AS {} WHERE false").format(*map(sql.Identifier, names))
    return sql.SQL("VALUES ") + sql.SQL(", ").join(
        sql.SQL("({}::text, {}::text)").format(sql.Literal(a), sql.Literal(b)) for a, b in rows
    )


def recipient_categories(cur: cursor, policy: Policy) -> sql.Composable:
    rows = [(r.id, c) for r in policy.recipients for c in r.categories]
    return _values(rows, ("recipient_id", "category"))


def store_categories(cur: cursor, policy: Policy) -> sql.Composable:
    rows = [(s.table, c.id) for c in policy.categories for s in c.stores]
    return _values(rows, ("table_name", "category"))


def switch_off_tables(cur: cursor, policy: Policy) -> sql.Composable:
    rows = list(dict.fromkeys((p.id, s.table) for p in policy.purposes for s in p.switch_off))
    return _values(rows, ("purpose", "table_name"))


def notice_ack_within(cur: cursor, policy: Policy) -> sql.Composable:
    """How long a sent notice may wait for its acknowledgement before compliance is alerted (TP-5)."""
    return sql.SQL("{}::interval").format(sql.Literal(f"P{policy.notices.ack_within_days}D"))


def notice_payload_window(cur: cursor, policy: Policy) -> sql.Composable:
    """How long an acknowledged notice keeps its pseudonyms and order ids (RET-9-notices)."""
    try:
        window = payload_window(policy)
    except SettingsError as exc:
        raise AuditError(f"rights check notice_payloads_expired.sql: {exc}") from None
    return sql.SQL("{}::interval").format(sql.Literal(window.iso))


def person_traces(cur: cursor, policy: Policy) -> sql.Composable:
    """One SELECT per store (see the module), joined by UNION ALL."""
    stores = person_stores(policy)
    types = columns_of(cur, [store for _, store in stores])
    parts = [_store_traces(cur, policy, category, store, types[store.table]) for category, store in stores]
    return sql.SQL("\nUNION ALL\n").join(parts)


def _identifiers(policy: Policy, store: Store, text_columns: list[str]) -> tuple[sql.Composable, sql.Composable] | None:
    """(the identifiers one row of ``store``, alias ``t``, carries as one ``text[]`` expression; the
    cheap test that it carries one of ``wanted``'s): its account columns, its address column's
    pseudonym, and the pseudonym of every address written in its personal text columns (joined by
    a space, which no address holds; the regular expression only where an '@' is)."""
    accounts = {store.person.account_id} if store.person and store.person.account_id else set()
    if store in policy.account_stores():
        accounts.add(store.key)
    own: list[sql.Composable] = [sql.SQL("'account:' || t.{}").format(sql.Identifier(c)) for c in sorted(accounts)]
    tests: list[sql.Composable] = [
        sql.SQL("t.{} = ANY(wanted.accounts)").format(sql.Identifier(c)) for c in sorted(accounts)
    ]
    email = store.person.email if store.person else None
    if email:
        pseudonym = sql.SQL("governance.email_pseudonym(t.{})").format(sql.Identifier(email))
        own.append(sql.SQL("'email:' || ") + pseudonym)
        tests.append(pseudonym + sql.SQL(" = ANY(wanted.emails)"))
    parts: list[sql.Composable] = [sql.SQL("ARRAY[{}]::text[]").format(sql.SQL(", ").join(own))] if own else []
    if text_columns:
        text = sql.SQL("concat_ws(' ', {})").format(
            sql.SQL(", ").join(sql.SQL("t.{}::text").format(sql.Identifier(c)) for c in text_columns)
        )
        written = sql.SQL(
            "ARRAY(SELECT governance.email_pseudonym(m[1]) FROM regexp_matches({text}, {pattern}, 'g') AS m)"
        ).format(text=text, pattern=sql.Literal(f"({ADDRESS_PATTERN})"))
        has_at = sql.SQL(" OR ").join(
            sql.SQL("strpos(t.{}::text, '@') > 0").format(sql.Identifier(c)) for c in text_columns
        )
        parts.append(
            sql.SQL(
                "CASE WHEN {has_at} THEN ARRAY(SELECT 'email:' || e FROM unnest({written}) AS e) "
                "ELSE '{{}}'::text[] END"
            ).format(has_at=has_at, written=written)
        )
        tests.append(sql.SQL("(({has_at}) AND {written} && wanted.emails)").format(has_at=has_at, written=written))
    if not parts:
        return None
    return sql.SQL(" || ").join(parts), sql.SQL("({})").format(sql.SQL(" OR ").join(tests))


def _store_traces(
    cur: cursor, policy: Policy, category: Category, store: Store, columns: list[Column]
) -> sql.Composable:
    """The store's rows carrying one of the identifiers wanted (the check's CTE ``wanted``)."""
    email = store.person.email if store.person else None
    text_columns = [
        c.name
        for c in columns
        if c.name in store.personal_columns
        and c.name != email
        and c.type_name.split("(")[0] in TEXT_TYPES
        and not c.name.endswith(HASHED)
    ]
    found = _identifiers(policy, store, text_columns)
    if found is None:
        return sql.SQL(
            "SELECT NULL::text, NULL::text, NULL::text, NULL::timestamptz, NULL::bigint, NULL::text[], NULL::text[] "
            "WHERE false"
        )
    identifiers, carries = found
    cur.execute(_LEDGER_COLUMN, (store.table, LEDGER))
    ledger = cur.fetchone()
    marker = next(
        (
            r.action.marker_column
            for r in policy.rules
            if r.table == store.table and isinstance(r.action, AnonymiseAction) and r.action.decision == "RET-8"
        ),
        None,
    )
    return sql.SQL(
        "SELECT {table_name}::text, {category}::text, t.{key}::text, {placed}::timestamptz, {request}::bigint, "
        "{rules}::text[], {identifiers}\nFROM {table} t CROSS JOIN wanted\n"
        "WHERE (SELECT w.any FROM wanted w) AND {carries}{anonymised}"
    ).format(
        table_name=sql.Literal(store.table),
        category=sql.Literal(category.id),
        key=sql.Identifier(store.key),
        placed=sql.SQL("t.{}").format(sql.Identifier(store.breach_clock)) if store.breach_clock else sql.SQL("NULL"),
        request=sql.SQL("t.{}").format(sql.Identifier(str(ledger[0]))) if ledger else sql.SQL("NULL"),
        rules=sql.Literal([r.id for r in policy.rules if r.table == store.table]),
        identifiers=identifiers,
        carries=carries,
        table=ident(store.table),
        anonymised=sql.SQL(" AND t.{} IS NULL").format(sql.Identifier(marker)) if marker else sql.SQL(""),
    )
