"""The policy against a live database: every table, column, link (both sides and its join table),
clock column and clock view the policy names must exist, with the shape the sweep and the audit
rely on. Problems name the rule (or category and store) and the field; ``require_database_match``
adds the file.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from governance.errors import PolicyError
from governance.policy.datamap import Store
from governance.policy.model import Policy
from governance.policy.rules import AnonymiseAction, Rule

if TYPE_CHECKING:
    from psycopg2.extensions import connection

# A clock column is compared with "now" in UTC (RET-10): only an instant will do.
CLOCK_COLUMN_TYPE = "timestamp with time zone"

# relation -> column -> data type
Catalogue = dict[str, dict[str, str]]


def check_against_database(policy: Policy, conn: connection) -> list[str]:
    """Every table and column the policy names must exist; returns problems (empty when fine).
    Reads the catalogue in a read-only transaction of its own."""
    from governance.db import transaction  # governance.db imports the policy model

    with transaction(conn, read_only=True) as cur:
        cur.execute("SELECT table_schema || '.' || table_name, column_name, data_type FROM information_schema.columns")
        existing: Catalogue = defaultdict(dict)
        for relation, column, data_type in cur.fetchall():
            existing[relation][column] = data_type
    problems: list[str] = []
    reads = _view_reads(conn)
    for category in policy.categories:
        for store in category.stores:
            where = f"category {category.id!r}, store {store.table!r}"
            if store.table not in existing:
                problems.append(f"{where}, field 'table': table {store.table!r} does not exist in the database")
                continue
            for column in sorted(store.columns() - existing[store.table].keys()):
                problems.append(f"{where}: column {column!r} does not exist in {store.table}")
            problems += _link_problems(store, where, existing)
    for rule in policy.rules:
        problems += _rule_problems(rule, existing) or _clock_table_problems(rule, reads)
    return problems


def _link_problems(store: Store, where: str, existing: Catalogue) -> list[str]:
    """The other side of each link (#10): the target's column and the join table with both columns.
    The link's own column is one of ``store.columns()``; a missing target store is reported as a store."""
    problems: list[str] = []
    for i, link in enumerate(store.links):
        field = f"{where}, field 'links[{i}]"
        if link.to in existing and link.to_column not in existing[link.to]:
            problems.append(f"{field}.to_column': column {link.to_column!r} does not exist in {link.to}")
        if link.via is None:
            continue
        if link.via.table not in existing:
            problems.append(f"{field}.via.table': table {link.via.table!r} does not exist in the database")
            continue
        for name in ("column", "to_column"):
            column = getattr(link.via, name)
            if column not in existing[link.via.table]:
                problems.append(f"{field}.via.{name}': column {column!r} does not exist in {link.via.table}")
    return problems


# view -> the tables and views it selects from directly (its rewrite rule's dependencies); and
# table -> the tables whose foreign keys reference it (a link table, e.g. order_line_uploads)
# Names as the policy writes them, schema.name unquoted (regclass::text would quote a keyword
# such as "select"."limit").
_REFERENCED_BY = """
SELECT DISTINCT pn.nspname || '.' || p.relname, cn.nspname || '.' || c.relname
FROM pg_constraint AS con
JOIN pg_class AS p ON p.oid = con.confrelid JOIN pg_namespace AS pn ON pn.oid = p.relnamespace
JOIN pg_class AS c ON c.oid = con.conrelid JOIN pg_namespace AS cn ON cn.oid = c.relnamespace
WHERE con.contype = 'f'
"""
_VIEW_READS = """
SELECT DISTINCT vn.nspname || '.' || view.relname, un.nspname || '.' || used.relname
FROM pg_rewrite AS rewrite
JOIN pg_class AS view ON view.oid = rewrite.ev_class AND view.relkind IN ('v', 'm')
JOIN pg_namespace AS vn ON vn.oid = view.relnamespace
JOIN pg_depend AS dep ON dep.objid = rewrite.oid AND dep.classid = 'pg_rewrite'::regclass
    AND dep.refclassid = 'pg_class'::regclass
JOIN pg_class AS used ON used.oid = dep.refobjid AND used.oid <> view.oid
JOIN pg_namespace AS un ON un.oid = used.relnamespace
"""


def _view_reads(conn: connection) -> dict[str, set[str]]:
    from governance.db import transaction

    reads: dict[str, set[str]] = defaultdict(set)
    with transaction(conn, read_only=True) as cur:
        cur.execute(_VIEW_READS)
        for view, used in cur.fetchall():
            reads[view].add(used)
        cur.execute(_REFERENCED_BY)
        for table, referencing in cur.fetchall():
            reads[f"referenced:{table}"].add(referencing)
    return reads


def _clock_table_problems(rule: Rule, reads: dict[str, set[str]]) -> list[str]:
    """A clock view must select from the rule's own table or a table whose foreign key references
    it (directly or through other views): a view over another table would expire this table's
    records by someone else's clock (#9)."""
    if rule.clock.view is None:
        return []
    seen: set[str] = set()
    todo = [rule.clock.view]
    while todo:
        relation = todo.pop()
        for used in reads.get(relation, set()) - seen:
            seen.add(used)
            todo.append(used)
    if seen & ({rule.table} | reads.get(f"referenced:{rule.table}", set())):
        return []
    return [
        f"rule {rule.id!r}, field 'clock.view': {rule.clock.view} does not select from the rule's table "
        f"{rule.table} nor a table referencing it (it reads {', '.join(sorted(seen)) or 'no table'}); "
        f"name the clock view of {rule.table}"
    ]


def require_database_match(policy: Policy, conn: connection) -> None:
    """Raise PolicyError (naming the file, the rules and the fields) unless the database has every
    table, column and clock the policy names."""
    problems = check_against_database(policy, conn)
    if problems:
        raise PolicyError(policy.source_path or "<policy>", problems)


def _rule_problems(rule: Rule, existing: Catalogue) -> list[str]:
    where = f"rule {rule.id!r}"
    problems: list[str] = []
    columns = existing.get(rule.table)
    if columns is not None and isinstance(rule.action, AnonymiseAction):
        for column in sorted({rule.action.marker_column, *rule.action.columns} - columns.keys()):
            problems.append(f"{where}, field 'action.columns': column {column!r} does not exist in {rule.table}")
    return problems + _clock_problems(rule, existing)


def _clock_problems(rule: Rule, existing: Catalogue) -> list[str]:
    where = f"rule {rule.id!r}"
    column, view = rule.clock.column, rule.clock.view or ""
    if column is not None:
        columns = existing.get(rule.table)
        if columns is None:
            return []  # the missing table is reported with its store
        if column not in columns:
            return [
                f"{where}, field 'clock.column': column {column!r} does not exist in {rule.table} "
                f"(name a {CLOCK_COLUMN_TYPE} column of the rule's own table, or a clock view)"
            ]
        if columns[column] != CLOCK_COLUMN_TYPE:
            return [
                f"{where}, field 'clock.column': {rule.table}.{column} is {columns[column]}, not {CLOCK_COLUMN_TYPE}"
            ]
        return []
    if view not in existing:
        return [f"{where}, field 'clock.view': view {view!r} does not exist (apply the schema)"]
    if not {"record_id", "clock"} <= existing[view].keys():
        return [f"{where}, field 'clock.view': {view!r} must have columns record_id and clock"]
    kept = rule.clock.kept
    if kept is not None:
        columns = existing.get(kept.table)
        if columns is None:
            return [f"{where}, field 'clock.kept.table': table {kept.table!r} does not exist (apply the schema)"]
        if kept.key not in columns:
            return [f"{where}, field 'clock.kept.key': column {kept.key!r} does not exist in {kept.table}"]
        if columns.get(kept.clock) != CLOCK_COLUMN_TYPE:
            return [
                f"{where}, field 'clock.kept.clock': {kept.table}.{kept.clock} must be a {CLOCK_COLUMN_TYPE} column"
            ]
    return []
