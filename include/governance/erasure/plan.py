"""What an erasure (ERA-1) does to each store of the data map, and in which order.

Derived from the policy and the catalogue, never from table names: the store of the rule whose
action is ``anonymise`` with decision RET-8 (the order records bookkeeping law keeps) is
anonymised with that rule's masking strategies; a store that names no person and reaches one only
through links to such a store (the order lines) is kept with its anonymised record; a store with
``objects:`` has its objects purged (every version), then its rows; every other store's records
are deleted. Rows of a store referencing the request ledger (the copies a request makes, CAT-7)
are kept while their request is open: the erasure's own answer address is one of them (REQ-1).
Stores come children first: a store before the stores it links to (its records are found through
them) and before the stores its foreign keys reference (a cascade or SET NULL would change its
rows unrecorded).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from typing import Any

from psycopg2 import sql
from psycopg2.extensions import cursor

from governance.db import ident
from governance.errors import PolicyError
from governance.person.records import columns, person_stores
from governance.policy import AnonymiseAction, Policy, Store
from governance.sweep.held import HeldPredicates, Holds
from governance.sweep.target import Child, referencing_children

LEDGER = "governance.subject_requests"
NOT_HELD = sql.SQL("false")  # held_sql when no hold in force can keep the store's rows
MAX_LINK_DEPTH = 4  # links are acyclic (the policy model checks); a bound all the same

_LEDGER_COLUMN = """
    SELECT a.attname FROM pg_constraint con
    JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = con.conkey[1]
    WHERE con.contype = 'f' AND cardinality(con.conkey) = 1
      AND con.conrelid = to_regclass(%s) AND con.confrelid = to_regclass(%s)
    ORDER BY 1 LIMIT 1
"""


@dataclass
class StorePlan:
    """One store as the erasure treats it: ``disposition`` erase | anonymise | keep."""

    store: Store
    disposition: str
    key_type: str  # the key column's SQL type, from the catalogue (record keys are stored as text)
    children: list[Child] = field(default_factory=list)
    anonymise: AnonymiseAction | None = None
    request_column: str | None = None  # references the request ledger: rows of open requests stay
    linked: dict[str, StorePlan] = field(default_factory=dict)  # the plans of the stores it links to
    chosen_keep: bool = False  # kept because the person chose to keep its category (RET-7)

    @property
    def table(self) -> str:
        return self.store.table

    @property
    def key(self) -> str:
        return self.store.key

    @property
    def purges_objects(self) -> bool:
        return self.disposition == "erase" and self.store.objects is not None


def anonymised_stores(policy: Policy) -> dict[str, AnonymiseAction]:
    """Table -> the RET-8 anonymise action of its rule (order records inside the bookkeeping obligation)."""
    return {
        rule.table: rule.action
        for rule in policy.rules
        if isinstance(rule.action, AnonymiseAction) and rule.action.decision == "RET-8"
    }


def erasure_plan(cur: cursor, policy: Policy, *, keep_categories: Collection[str] = ()) -> list[StorePlan]:
    """Every store that can hold a person's records, with what the erasure does to it, children first.
    ``keep_categories``: categories the person chose to keep when deleting the account (RET-7):
    their stores are planned ``keep`` (left under their own retention rules)."""
    anonymised = anonymised_stores(policy)
    unknown = sorted(set(keep_categories) - {c.id for c in policy.categories})
    if unknown:
        raise PolicyError("<erasure>", [f"category {c!r} to keep is not a category of the data map" for c in unknown])
    plans: dict[str, StorePlan] = {}
    for category, store in person_stores(policy):
        key_type = next((c.type_name for c in columns(cur, store) if c.name == store.key), None)
        if key_type is None:
            raise PolicyError("<data map>", [f"store {store.table!r}: key column {store.key!r} is not in the table"])
        if category.id in keep_categories:
            disposition = "keep"  # RET-7: the person chose to keep this category
        elif store.table in anonymised:
            disposition = "anonymise"
        elif store.person is None and store.links and all(link.to in anonymised for link in store.links):
            disposition = "keep"  # a dependent of an anonymised record (order lines): kept with it
        else:
            disposition = "erase"
        cur.execute(_LEDGER_COLUMN, (store.table, LEDGER))
        row = cur.fetchone()
        plans[store.table] = StorePlan(
            store=store,
            disposition=disposition,
            key_type=key_type,
            children=referencing_children(cur, policy, store.table),
            anonymise=anonymised.get(store.table),
            request_column=str(row[0]) if row else None,
            chosen_keep=category.id in keep_categories,
        )
    for plan in plans.values():
        plan.linked = {link.to: plans[link.to] for link in plan.store.links if link.to in plans}
    return _children_first(plans)


def _children_first(plans: dict[str, StorePlan]) -> list[StorePlan]:
    """The plans ordered so that a store comes before those it links to or references."""
    before: dict[str, set[str]] = {table: set() for table in plans}  # table -> tables that go first
    for table, plan in plans.items():
        for link in plan.store.links:
            if link.to in plans:
                before[link.to].add(table)
        for child in plan.children:
            if child.table in plans and child.table != table:
                before[table].add(child.table)
    try:
        order = list(TopologicalSorter(before).static_order())
    except CycleError as exc:
        tables = " -> ".join(str(t) for t in exc.args[1])
        raise PolicyError(
            "<data map>", [f"links and foreign keys form a cycle ({tables}); an erasure needs an order"]
        ) from None
    return [plans[table] for table in order]


def held_sql(
    policy: Policy, plan: StorePlan, holds: Holds, params: dict[str, Any], alias: str = "t", depth: int = 0
) -> sql.Composable:
    """True when a legal hold in force keeps the row (RET-8), as the sweep decides it: a hold on the
    record, on its person, on a row its removal would change (``HeldPredicates``), or on a rule of
    its table (a rule hold keeps the rule's records); and, for the erasure, a hold on the record it
    links to (a held order keeps its lines, and their photos): a hold never loses what it reaches."""
    if any(rule.id in holds.rules for rule in policy.rules_by_table.get(plan.table, [])):
        return sql.SQL("true")
    clauses = HeldPredicates(plan, holds, params, prefix=f"d{depth}{alias}_").clauses(alias)
    for i, link in enumerate(plan.store.links):
        parent = plan.linked.get(link.to)
        if parent is None or depth > MAX_LINK_DEPTH:
            continue
        # Correlated on the link's column, so a batch reads the rows it links to by their key.
        inner = sql.Identifier(f"{alias}h{i}")
        parent_held = held_sql(policy, parent, holds, params, f"{alias}h{i}", depth + 1)
        if parent_held == NOT_HELD:
            continue  # no hold can reach the parent: no sub-select per row to find that out
        a, to = sql.Identifier(alias), sql.Identifier(link.to_column)
        if link.via is None:
            clauses.append(
                sql.SQL("EXISTS (SELECT 1 FROM {table} {p} WHERE {p}.{to} = {a}.{c} AND {held})").format(
                    table=ident(link.to), p=inner, to=to, a=a, c=sql.Identifier(link.column), held=parent_held
                )
            )
            continue
        via = sql.Identifier(f"{alias}v{i}")
        clauses.append(
            sql.SQL(
                "EXISTS (SELECT 1 FROM {via_table} {v} JOIN {table} {p} ON {p}.{to} = {v}.{via_to} "
                "WHERE {v}.{via_column} = {a}.{c} AND {held})"
            ).format(
                via_table=ident(link.via.table),
                v=via,
                table=ident(link.to),
                p=inner,
                to=to,
                via_to=sql.Identifier(link.via.to_column),
                via_column=sql.Identifier(link.via.column),
                a=a,
                c=sql.Identifier(link.column),
                held=parent_held,
            )
        )
    return sql.SQL("({})").format(sql.SQL(" OR ").join(clauses)) if clauses else NOT_HELD
