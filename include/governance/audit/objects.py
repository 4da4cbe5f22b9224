"""The object-store check (CAT-5, RET-9): the completed listing joined to the rows and their findings.

An object is overdue when no row points at it (an orphan) or when its row is overdue per the audit
predicates' findings; it is held when every finding of its row is held (RET-8). One result per
store, reported under the rule id ``<table>-object-store``.
"""

from __future__ import annotations

from datetime import datetime

from psycopg2 import sql
from psycopg2.extensions import cursor

from governance.audit.listing import ListedStore
from governance.audit.report import OBJECT_STORE_CHECK, OBJECT_STORE_SUFFIX, RuleAudit
from governance.audit.scratch import Scratch
from governance.db import ident
from governance.errors import AuditError
from governance.windows import as_utc

_NO_FINDINGS = sql.SQL(
    "SELECT NULL::bigint AS record_id, NULL::bigint AS overdue_seconds, NULL::boolean AS held WHERE false"
)

# A record is overdue when any of its findings is unheld, held when all of them are held.
_CHECK = """
        WITH finding AS (
            SELECT f.record_id, bool_and(f.held) AS held, max(f.overdue_seconds) FILTER (WHERE NOT f.held) AS overdue_seconds
            FROM ({past}) AS f GROUP BY f.record_id
        ), linked AS (
            SELECT o.last_modified, r.{key} AS record_id
            FROM {objects} o
            LEFT JOIN {table} r ON r.{bucket_col} = o.bucket AND r.{key_col} = o.object_key
        )
        SELECT count(*) FILTER (WHERE l.record_id IS NULL),
               max(greatest(0, floor(extract(epoch FROM %(now)s::timestamptz - l.last_modified))))
                   FILTER (WHERE l.record_id IS NULL),
               count(*) FILTER (WHERE f.record_id IS NOT NULL AND NOT f.held),
               max(f.overdue_seconds) FILTER (WHERE NOT f.held),
               count(*) FILTER (WHERE f.held)
        FROM linked l
        LEFT JOIN finding f ON f.record_id = l.record_id
    """


def object_store_rule_id(table: str) -> str:
    """'shop.uploads' -> 'uploads-object-store' (OBJECT_STORE_RULE for the photo shop);
    'governance.request_exports' -> 'request-exports-object-store'."""
    return table.split(".", 1)[1].replace("_", "-") + OBJECT_STORE_SUFFIX


def object_store_requirements(item: ListedStore) -> list[str]:
    """What a store's object-store check enforces: its category, its rules' requirements (RET-10's
    calendar arithmetic aside: an orphan has no clock) and RET-9 (copies count too). For the
    uploads: OBJECT_STORE_REQUIREMENTS."""
    ids = [item.category] if item.category else []
    ids += [r for rule in item.rules for r in rule.requirements if r != "RET-10" and r != item.category]
    return list(dict.fromkeys([*ids, "RET-9"]))


def _past_findings(tables: list[sql.Identifier]) -> sql.Composable:
    """Every finding of the store's rules, from the findings tables of their predicate files."""
    if not tables:
        return _NO_FINDINGS
    return sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT record_id, overdue_seconds, held FROM {} WHERE rule_id = ANY(%(rules)s)").format(t)
        for t in tables
    )


def check_object_store(
    cur: cursor, scratch: Scratch, item: ListedStore, findings: dict[str, sql.Identifier], now: datetime
) -> RuleAudit:
    """Objects with no row (orphans) or whose row is overdue per the audit predicates' findings.

    ``oldest_overdue_seconds`` is the larger of the oldest overdue row's age past its window and,
    for orphans, the time since the object was last modified (as of ``now``, never negative): an
    orphan has no clock of its own, and that is how long it has been stored without one.
    """
    store, link = item.store, item.link
    objects = scratch.table(item.table_name)
    cur.execute(sql.SQL("ANALYZE {}").format(objects))
    tables = [findings[name] for name in dict.fromkeys(rule.audit for rule in item.rules)]
    cur.execute(
        sql.SQL(_CHECK).format(
            past=_past_findings(tables),
            key=sql.Identifier(store.key),
            objects=objects,
            table=ident(store.table),
            bucket_col=sql.Identifier(link.bucket_column),
            key_col=sql.Identifier(link.key_column),
        ),
        {"rules": [rule.id for rule in item.rules], "now": as_utc(now)},
    )
    row = cur.fetchone()
    if row is None:  # an aggregate always returns one row
        raise AuditError(f"the object-store check of {store.table} returned no row")
    orphans, oldest_orphan, overdue_objects, oldest_row, held = row
    ages = [int(a) for a in (oldest_orphan, oldest_row) if a is not None]
    total = int(orphans) + int(overdue_objects)
    return RuleAudit(
        rule=object_store_rule_id(store.table),
        requirements=object_store_requirements(item),
        overdue=total,
        oldest_overdue_seconds=max(ages) if total and ages else None,
        held=int(held),
        check=OBJECT_STORE_CHECK,
        gx_success=None,
        details={
            "objects_listed": item.listed,
            "orphans": int(orphans),
            "objects_of_overdue_records": int(overdue_objects),
            "buckets": list(link.buckets),
            "prefix": link.prefix,
            "table": store.table,
        },
    )
