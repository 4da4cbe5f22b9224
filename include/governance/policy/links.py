"""The data map's links checked across stores (#10): a link names a store of the data map; every
store reaches a person, by its own ``person`` columns or a chain of links to a store that has them,
unless it says why it cannot (``unidentifiable``); and links form no cycle, since a person's
records are found by following them. Problems name the category, the store and the field.
"""

from __future__ import annotations

from collections.abc import Sequence

from governance.policy.datamap import Category, Store


def link_problems(categories: Sequence[Category]) -> list[str]:
    """Every problem with the data map's links; empty when a person's records can all be found."""
    stores = {store.table: store for category in categories for store in category.stores}
    where = {
        store.table: f"category {category.id!r}, store {store.table!r}"
        for category in categories
        for store in category.stores
    }
    problems = [
        f"{where[table]}, field 'links[{i}].to': {link.to!r} is not a store of the data map; "
        f"link to one of: {', '.join(stores)}"
        for table, store in stores.items()
        for i, link in enumerate(store.links)
        if link.to not in stores
    ]
    problems += [f"{where[table]}, field 'links': {text}" for table, text in _cycles(stores)]
    reached = _reaching_a_person(stores)
    problems += [
        f"{where[table]}: store {table} names no person and no link reaches one; add person: or links: "
        "(or, for records no one can be tied to, unidentifiable: WHY)"
        for table, store in stores.items()
        if table not in reached and store.unidentifiable is None
    ]
    return problems


def _reaching_a_person(stores: dict[str, Store]) -> set[str]:
    """The stores that name their person, and those linking, link by link, to one of them."""
    reached = {table for table, store in stores.items() if store.person is not None}
    grown = True
    while grown:
        more = {
            table
            for table, store in stores.items()
            if table not in reached and any(link.to in reached for link in store.links)
        }
        reached |= more
        grown = bool(more)
    return reached


def _cycles(stores: dict[str, Store]) -> list[tuple[str, str]]:
    """(store, message) for each cycle of links, reported at the store where it closes."""
    state: dict[str, str] = {}
    found: list[tuple[str, str]] = []

    def visit(table: str, path: list[str]) -> None:
        if state.get(table) == "done" or table not in stores:
            return
        if state.get(table) == "active":
            cycle = path[path.index(table) :] + [table]
            found.append((path[-1], f"links form a cycle ({' -> '.join(cycle)}); a link must lead towards a person"))
            return
        state[table] = "active"
        for link in stores[table].links:
            visit(link.to, path + [table])
        state[table] = "done"

    for table in stores:
        visit(table, [])
    return found
