"""Which records a rule may remove at "now": the sweep's own selection SQL (never the audit's).

A record is due when every rule on its table that applies to it has expired: each clock view
(``governance_clocks.*``, ``record_id, clock``, possibly several rows per record) gives an expiry
``(clock AT TIME ZONE 'UTC' + window) AT TIME ZONE 'UTC'`` (RET-10, calendar arithmetic in UTC),
and the latest one must be ``<= now``. On a table several rules share (the CAT-5 uploads), a
record belongs to the rule whose expiry is the latest (ties: the first rule in policy order), so
the rules' tasks never work the same record.

Held records (RET-8, ``governance.holds_at(now)``) are never selected: a hold on any rule that
applies to the record, on the record itself (table_name, record_key), or on its person (account
id or e-mail pseudonym, from the store's ``person`` columns). A record whose removal would
cascade to, or rewrite, a held record of another table (a deleted account's held calendar event)
is kept as well.

A clock view may expose an optional integer column ``chunk`` (the clock view contract,
include/sql/clocks/README.md): a function of the record's clock group (e.g. a hash of the customer)
that is part of every window's PARTITION BY. The sweep then computes the due set in N chunks
(``mod(chunk, N)``), each its own short transaction: PostgreSQL pushes such a qual below the window
function, so each chunk costs ~1/N of the whole (RET-3 at scale).

Everything here composes SQL: identifiers from the policy go through ``psycopg2.sql.Identifier``,
values (now, windows, hold keys) are named parameters.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from psycopg2 import sql

from governance.db import advisory_key
from governance.policy import AnonymiseAction, Policy, PurgeObjectsAction, Rule, Store
from governance.windows import Window, as_utc

log = logging.getLogger(__name__)

# A clock view that is a plain projection of one column of the rule's own table: then the due
# predicate can be evaluated on each row (block-range batches, whole-partition drops).
_PLAIN_VIEW = re.compile(
    r"^\s*SELECT\s+(?:(?P<a1>\w+)\.)?(?P<key>\w+)\s+AS\s+record_id,\s*(?:(?P<a2>\w+)\.)?(?P<col>\w+)\s+AS\s+clock"
    r"\s+FROM\s+(?P<schema>\w+)\.(?P<table>\w+)(?:\s+(?P<alias>\w+))?\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)

# Adding months or years clamps the day of the month (31 -> 28 at most), so for such windows
# "clock + window <= now" implies "clock <= now - window + 4 days"; the bound lets the planner use
# an index or prune partitions, the exact predicate still decides.
_CLAMP_MARGIN = timedelta(days=4)

# The optional chunking column of a clock view (include/sql/clocks/README.md) and the types it may have.
CHUNK_COLUMN = "chunk"
_CHUNK_TYPES = ("smallint", "integer", "bigint")


def split_name(qualified: str) -> tuple[str, str]:
    schema, _, name = qualified.partition(".")
    return schema, name


def ident(qualified: str) -> sql.Identifier:
    return sql.Identifier(*split_name(qualified))


def lock_key(rule_id: str) -> int:
    """A stable 32-bit advisory-lock key for a rule (pg_try_advisory_lock(namespace, key))."""
    return advisory_key(rule_id)


def index_bound(now: datetime, window: Window) -> datetime:
    """A clock value no due record exceeds: exact for fixed windows, with a margin for months/years."""
    bound = as_utc(now) - window.relativedelta
    if not window.fixed:
        bound += _CLAMP_MARGIN
    return bound


@dataclass(frozen=True)
class Holds:
    """The legal holds in force at the run's "now" or when the sweep executes (RET-8): identifiers
    and pseudonyms only, no personal data."""

    rules: frozenset[str] = frozenset()
    records: dict[str, tuple[str, ...]] = field(default_factory=dict)  # table -> record keys (text)
    accounts: tuple[int, ...] = ()
    emails: tuple[str, ...] = ()  # email_sha256

    @classmethod
    def at(cls, conn: Any, now: datetime) -> Holds:
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
        rules, records, accounts, emails = set(), {}, set(), set()
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
        return cls(
            rules=frozenset(rules),
            records={t: tuple(sorted(keys)) for t, keys in records.items()},
            accounts=tuple(sorted(accounts)),
            emails=tuple(sorted(emails)),
        )

    def any_for(self, tables: set[str]) -> bool:
        return bool(self.rules or self.accounts or self.emails or any(t in self.records for t in tables))


@dataclass(frozen=True)
class Child:
    """A table of the data map whose rows reference the rule's table (a foreign key).

    Removing a parent cascades to (``on_delete='c'``) or rewrites (``'n'``, SET NULL) these rows,
    so a held child keeps its parent.
    """

    table: str
    column: str
    on_delete: str  # 'c' cascade, 'n' set null
    store: Store
    rules: tuple[str, ...]


@dataclass
class Target:
    """A rule and everything about its table the engine needs, read once per sweep."""

    policy: Policy
    rule: Rule
    store: Store
    window: Window
    siblings: list[Rule]  # rules on the same table, policy order; the record goes to the latest expiry
    rank: int  # this rule's position among the siblings
    direct_clock: str | None = None  # column, when the clock view is a plain projection of it
    partitioned: bool = False
    partition_key: str | None = None  # the RANGE key column of a partitioned table
    children: list[Child] = field(default_factory=list)
    account_store: Store | None = None  # where an account's e-mail lives (CAT-2 person holds)
    chunked: bool = False  # every clock view of the table exposes an integer ``chunk`` column

    @property
    def table(self) -> str:
        return self.rule.table

    @property
    def key(self) -> str:
        return self.store.key

    @property
    def action(self) -> str:
        return self.rule.action.type

    @property
    def shared(self) -> bool:
        return len(self.siblings) > 1

    @property
    def marker(self) -> str | None:
        return self.rule.action.marker_column if isinstance(self.rule.action, AnonymiseAction) else None

    @property
    def purges_objects(self) -> bool:
        return isinstance(self.rule.action, PurgeObjectsAction)

    @property
    def drops_partitions(self) -> bool:
        return self.partitioned and self.direct_clock is not None and self.partition_key == self.direct_clock


def load_target(conn: Any, policy: Policy, rule_id: str) -> Target:
    rule = policy.rule(rule_id)
    siblings = policy.rules_by_table[rule.table]
    target = Target(
        policy=policy,
        rule=rule,
        store=policy.store(rule.table),
        window=policy.window(rule),
        siblings=list(siblings),
        rank=[r.id for r in siblings].index(rule.id),
    )
    schema, name = split_name(rule.table)
    with conn.cursor() as cur:
        cur.execute("SELECT pg_get_viewdef(%s::regclass, true)", (rule.clock.view,))
        viewdef = cur.fetchone()[0]
        cur.execute(
            "SELECT c.relkind = 'p', CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
            (schema, name),
        )
        target.partitioned, partkeydef = cur.fetchone()
        # Tables of the data map whose rows reference this one: a held child keeps its parent.
        cur.execute(
            """
            SELECT cn.nspname || '.' || cc.relname, a.attname, con.confdeltype
            FROM pg_constraint con
            JOIN pg_class cc ON cc.oid = con.conrelid JOIN pg_namespace cn ON cn.oid = cc.relnamespace
            JOIN pg_class pc ON pc.oid = con.confrelid JOIN pg_namespace pn ON pn.oid = pc.relnamespace
            JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = con.conkey[1]
            WHERE con.contype = 'f' AND pn.nspname = %s AND pc.relname = %s
              AND cardinality(con.conkey) = 1 AND con.confdeltype IN ('c', 'n')
            ORDER BY 1, 2
            """,
            (schema, name),
        )
        fks = cur.fetchall()
        target.chunked = all(_chunk_type(cur, r.clock.view) in _CHUNK_TYPES for r in siblings)
    target.direct_clock = _plain_clock_column(viewdef, rule.table, target.key) if not target.shared else None
    match = re.fullmatch(r"RANGE \((\w+)\)", partkeydef or "")
    target.partition_key = match.group(1) if match else None
    for table, column, on_delete in fks:
        try:
            store = policy.store(table)
        except KeyError:
            continue  # link tables outside the data map hold no personal data of their own
        rules = tuple(r.id for r in policy.rules_by_table.get(table, []))
        target.children.append(Child(table, column, on_delete, store, rules))
    target.account_store = _account_store_for(policy, target.store)
    return target


def _chunk_type(cur: Any, view: str) -> str | None:
    """The type of the view's ``chunk`` column, or None without one."""
    cur.execute(
        "SELECT format_type(a.atttypid, NULL) FROM pg_attribute a "
        "WHERE a.attrelid = %s::regclass AND a.attname = %s AND a.attnum > 0 AND NOT a.attisdropped",
        (view, CHUNK_COLUMN),
    )
    row = cur.fetchone()
    if row and row[0] not in _CHUNK_TYPES:
        log.warning(
            "clock view %s: column %s is %s, not an integer; the due set is computed in one pass",
            view,
            CHUNK_COLUMN,
            row[0],
        )
    return row[0] if row else None


def _plain_clock_column(viewdef: str, table: str, key: str) -> str | None:
    match = _PLAIN_VIEW.match(viewdef or "")
    if not match:
        return None
    qualifier = match.group("alias") or match.group("table")
    if any(a not in (None, qualifier) for a in (match.group("a1"), match.group("a2"))):
        return None
    if f"{match.group('schema')}.{match.group('table')}" != table or match.group("key") != key:
        return None
    return match.group("col")


def _account_store_for(policy: Policy, store: Store) -> Store | None:
    """For a store naming its person only by account, in the account's own category (CAT-2), the
    account store (key = its person.account_id, with an e-mail column): a person hold by e-mail
    then covers that account's records too. Other categories name their person by their own
    columns (as the reference and the audit do)."""
    if store.person is None or store.person.account_id is None or store.person.email is not None:
        return None
    for category in policy.categories:
        if store not in category.stores:
            continue
        for candidate in category.stores:
            person = candidate.person
            if person and person.email and person.account_id == candidate.key:
                return candidate
    return None


# --- SQL fragments ------------------------------------------------------------------------------


def expiry_sql(column: sql.Composable, window_param: str) -> sql.Composed:
    """RET-10: clock + window in UTC calendar arithmetic, whatever the session's time zone."""
    return sql.SQL("(({col} AT TIME ZONE 'UTC') + {w}::interval) AT TIME ZONE 'UTC'").format(
        col=column, w=sql.Placeholder(window_param)
    )


class Selection:
    """The SQL of one rule's selection at one "now", with its parameters."""

    def __init__(self, target: Target, now: datetime, holds: Holds):
        self.target = target
        self.now = as_utc(now)
        self.holds = holds
        self.params: dict[str, Any] = {"now": self.now, "rank": target.rank}
        for i, rule in enumerate(target.siblings):
            self.params[f"w{i}"] = target.policy.window(rule).iso
        self.params["index_bound"] = index_bound(self.now, target.window)
        held_ranks = [i for i, r in enumerate(target.siblings) if r.id in holds.rules]
        self.params["held_ranks"] = held_ranks
        # On a table of one rule, a hold on the rule holds every record.
        self.rule_held = not target.shared and target.rule.id in holds.rules

    # --- per-record clocks (views) ---

    def due_records(self, *, governed_only: bool = False, chunked: bool = False) -> sql.Composed:
        """(record_id, rule_held): records this rule governs that are due (every applicable rule
        expired), or, with ``governed_only``, every record it governs whatever the clock.

        ``chunked`` (only for a chunked target) keeps the records of one chunk: parameters
        ``chunks`` (N) and ``chunk`` (0..N-1). The qual names only the view's ``chunk`` column, so
        PostgreSQL pushes it below the view's window function (it is in every PARTITION BY): the
        chunk's rows are filtered in the scan, before the sort and the window."""
        t = self.target
        if chunked and not t.chunked:
            raise ValueError(f"the clock views of rule {t.rule.id!r} have no integer {CHUNK_COLUMN!r} column")
        where = sql.SQL(" WHERE {}").format(self.chunk_qual("c")) if chunked else sql.SQL("")
        parts = []
        for i, rule in enumerate(t.siblings):
            parts.append(
                sql.SQL("SELECT c.record_id, {i} AS rank, {expiry} AS expires_at FROM {view} c{where}").format(
                    i=sql.Literal(i),
                    expiry=expiry_sql(sql.SQL("c.clock"), f"w{i}"),
                    view=ident(rule.clock.view),
                    where=where,
                )
            )
        having = []
        if not governed_only:
            # every applicable rule has expired; a clock that is NULL has not started: not expired
            having.append(sql.SQL("max(e.expires_at) <= %(now)s AND bool_and(e.expires_at IS NOT NULL)"))
        if t.shared:
            having.append(sql.SQL("(array_agg(e.rank ORDER BY e.expires_at DESC NULLS FIRST, e.rank))[1] = %(rank)s"))
            rule_held = sql.SQL("coalesce(bool_or(e.rank = ANY(%(held_ranks)s::int[])), false)")
        else:
            rule_held = sql.Literal(self.rule_held)
        query = sql.SQL("SELECT e.record_id, {rule_held} AS rule_held FROM ({union}) e GROUP BY e.record_id").format(
            rule_held=rule_held, union=sql.SQL(" UNION ALL ").join(parts)
        )
        if having:
            query += sql.SQL(" HAVING ") + sql.SQL(" AND ").join(having)
        return query

    @staticmethod
    def chunk_qual(alias: str = "c") -> sql.Composed:
        """Rows of chunk %(chunk)s of %(chunks)s: every integer (and NULL, in chunk 0) in exactly one."""
        return sql.SQL("coalesce(abs(mod({col}, %(chunks)s)), 0) = %(chunk)s").format(
            col=sql.Identifier(alias, CHUNK_COLUMN)
        )

    # --- per-row predicates (alias t) ---

    def direct_due(self, alias: str = "t") -> sql.Composed:
        """The due predicate on a row, for a clock that is a column of the table. For a window of
        fixed length (PT24H, RET-1) ``clock <= now - window`` is exact (``index_bound``): the UTC
        calendar arithmetic (two time-zone conversions per row, ~0.1 ms per 1,000 rows) is only
        needed for months and years, where the bound has a margin and the expiry decides."""
        col = sql.Identifier(alias, self.target.direct_clock)
        if self.target.window.fixed:
            return sql.SQL("{col} <= %(index_bound)s").format(col=col)
        return sql.SQL("{col} <= %(index_bound)s AND {expiry} <= %(now)s").format(
            col=col, expiry=expiry_sql(col, f"w{self.target.rank}")
        )

    def row_filter(self, alias: str = "t") -> sql.Composable:
        """Rows the action still has to handle: not yet anonymised, not already being purged."""
        t = self.target
        if t.marker:
            return sql.SQL("{} IS NULL").format(sql.Identifier(alias, t.marker))
        if t.purges_objects:
            return sql.SQL("{} = 'stored'").format(sql.Identifier(alias, "state"))
        return sql.SQL("true")

    def held(self, alias: str = "t") -> sql.Composable:
        """True when a record, person or dependent hold keeps the row (rule holds aside)."""
        clauses = self.held_clauses(alias)
        if not clauses:
            return sql.SQL("false")
        return sql.SQL("({})").format(sql.SQL(" OR ").join(clauses))

    def held_clauses(self, alias: str = "t") -> list[sql.Composable]:
        clauses = self._held_clauses(self.target.table, self.target.store, alias, "")
        for i, child in enumerate(self.target.children):
            child_clauses = self._held_clauses(child.table, child.store, "ch", f"c{i}_")
            if child.on_delete == "c" and any(r in self.holds.rules for r in child.rules):
                child_clauses.append(sql.SQL("true"))  # removal would cascade into a held rule's records
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

    def _held_clauses(self, table: str, store: Store, alias: str, prefix: str) -> list[sql.Composable]:
        holds, clauses = self.holds, []
        a = sql.Identifier(alias)
        if holds.records.get(table):
            self.params[f"{prefix}held_keys"] = list(holds.records[table])
            clauses.append(
                sql.SQL("{a}.{key}::text = ANY({p}::text[])").format(
                    a=a, key=sql.Identifier(store.key), p=sql.Placeholder(f"{prefix}held_keys")
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
            self.params["held_emails"] = list(holds.emails)
            if person and person.email:
                clauses.append(
                    sql.SQL(
                        "coalesce(governance.email_pseudonym({a}.{col}) = ANY(%(held_emails)s::text[]), false)"
                    ).format(a=a, col=sql.Identifier(person.email))
                )
            account_store = _account_store_for(self.target.policy, store)
            if person and person.account_id and account_store is not None:
                clauses.append(
                    sql.SQL(
                        "EXISTS (SELECT 1 FROM {accounts} acc WHERE acc.{acc_key} = {a}.{col} "
                        "AND governance.email_pseudonym(acc.{email}) = ANY(%(held_emails)s::text[]))"
                    ).format(
                        accounts=ident(account_store.table),
                        acc_key=sql.Identifier(account_store.key),
                        a=a,
                        col=sql.Identifier(person.account_id),
                        email=sql.Identifier(account_store.person.email),
                    )
                )
        return clauses

    # --- whole statements ---

    def rule_held_sql(self) -> sql.Composable:
        return sql.Literal(self.rule_held) if self.target.direct_clock else sql.SQL("d.rule_held")

    def candidates(
        self,
        columns: Callable[[sql.Composable], sql.Composable],
        *,
        relation: sql.Composable | None = None,
        not_held: bool = False,
        chunked: bool = False,
    ) -> sql.Composed:
        """SELECT columns FROM the table (alias t) for due rows still to handle; ``columns`` gets
        the rule-hold expression. ``not_held`` leaves held rows out; ``relation`` is a partition;
        ``chunked``: one chunk of the records (``due_records``)."""
        t = self.target
        rel = relation if relation is not None else ident(t.table)
        rule_held = self.rule_held_sql()
        conds = [self.row_filter("t")]
        if t.direct_clock:
            query = sql.SQL("SELECT {cols} FROM {rel} t").format(cols=columns(rule_held), rel=rel)
            conds.append(self.direct_due("t"))
        else:
            query = sql.SQL("SELECT {cols} FROM {rel} t JOIN ({due}) d ON d.record_id = t.{key}").format(
                cols=columns(rule_held), rel=rel, due=self.due_records(chunked=chunked), key=sql.Identifier(t.key)
            )
        if not_held:
            conds.append(sql.SQL("NOT ({rh} OR {held})").format(rh=rule_held, held=self.held("t")))
        return query + sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conds)

    def counts(self, relation: sql.Composable | None = None, *, chunked: bool = False) -> sql.Composed:
        """(due and not held, due but held) among rows still to handle (of one chunk, ``chunked``)."""
        held = self.held("t")
        return self.candidates(
            lambda rh: sql.SQL(
                "count(*) FILTER (WHERE NOT ({rh} OR {held})), count(*) FILTER (WHERE {rh} OR {held})"
            ).format(rh=rh, held=held),
            relation=relation,
            chunked=chunked,
        )

    def purging_rows(self, columns: sql.Composable) -> sql.Composed:
        """Rows left in state 'purging' (tombstones of an interrupted purge) that this rule finishes:
        those it governs now, and for the first rule of the table those no rule governs any more."""
        t = self.target
        query = sql.SQL("SELECT {cols} FROM {rel} t").format(cols=columns, rel=ident(t.table))
        if not t.shared:
            return query + sql.SQL(" WHERE t.state = 'purging'")
        governed = self.due_records(governed_only=True)
        if t.rank == 0:
            everyone = sql.SQL(" UNION ALL ").join(
                sql.SQL("SELECT record_id FROM {}").format(ident(r.clock.view)) for r in t.siblings
            )
            return query + sql.SQL(
                " WHERE t.state = 'purging' AND (t.{key} IN (SELECT record_id FROM ({governed}) g)"
                " OR t.{key} NOT IN (SELECT record_id FROM ({everyone}) e WHERE record_id IS NOT NULL))"
            ).format(key=sql.Identifier(t.key), governed=governed, everyone=everyone)
        return query + sql.SQL(
            " WHERE t.state = 'purging' AND t.{key} IN (SELECT record_id FROM ({governed}) g)"
        ).format(key=sql.Identifier(t.key), governed=governed)
