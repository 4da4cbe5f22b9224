"""The policy's ``switch_off`` changes applied to one person's rows (RES-1, OBJ-1, MKT-1, CON-1).

Each ``Switch`` of a purpose is one set-based UPDATE of the person's rows of its table (the finder's
``person_predicate``): ``set`` column -> value (``now``: the run's instant), narrowed by ``where``
(column IS NOT DISTINCT FROM value) and ``only_where_null`` (a row already switched off keeps when
it was). The columns are checked against the catalogue before the request is started, so a policy
naming a column the table lacks is refused naming purpose, table and column, and nothing changes.
Legal holds (RET-8) keep a record from removal, not from being switched off: switching off is what
the person asked and changes no kept fact; held rows are changed and counted (as REC-1 decides).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import cursor

from governance.db import ident
from governance.errors import RequestError
from governance.person.records import columns_of, person_predicate
from governance.person.subject import Subject
from governance.policy import Policy, Purpose
from governance.policy.purposes import NOW, Switch


def purposes_of(policy: Policy, ids: Sequence[str]) -> list[Purpose]:
    known = {p.id: p for p in policy.purposes}
    missing = [i for i in ids if i not in known]
    if missing:
        raise RequestError(
            f"purpose {', '.join(missing)} is not in the policy's 'purposes:' any more; "
            "restore it or refuse the request (governance request refuse)"
        )
    return [known[i] for i in ids]


def check_switches(cur: cursor, policy: Policy, purposes: Sequence[Purpose]) -> None:
    """RequestError naming purpose, table and column for every column a switch names that the
    table lacks (one catalogue query)."""
    switches = [(p, s) for p in purposes for s in p.switch_off]
    found = columns_of(cur, [policy.store(s.table) for _, s in switches]) if switches else {}
    problems = []
    for purpose, switch in switches:
        names = {c.name for c in found[switch.table]}
        for column in switch.column_names():
            if column not in names:
                problems.append(f"purpose {purpose.id!r}, switch_off {switch.table}: no column {column!r}")
    if problems:
        raise RequestError(
            "; ".join(problems) + " — fix the policy's 'purposes:' (governance policy check) before answering"
        )


def apply_switches(
    cur: cursor, policy: Policy, purposes: Sequence[Purpose], subject: Subject, now: datetime
) -> tuple[dict[str, dict[str, int]], dict[str, set[str]]]:
    """Every switch of every purpose on the person's rows: rows changed per purpose and table, and
    the keys changed per table (for counting the held ones)."""
    rows: dict[str, dict[str, int]] = {}
    keys: dict[str, set[str]] = {}
    for purpose in purposes:
        for switch in purpose.switch_off:
            changed = _update(cur, policy, switch, subject, now)
            per_table = rows.setdefault(purpose.id, {})
            per_table[switch.table] = per_table.get(switch.table, 0) + len(changed)
            keys.setdefault(switch.table, set()).update(changed)
    return rows, keys


def _update(cur: cursor, policy: Policy, switch: Switch, subject: Subject, now: datetime) -> list[str]:
    """One UPDATE of the person's rows of the switch's table; the keys it changed."""
    store = policy.store(switch.table)
    params: dict[str, Any] = subject.params()
    assignments = []
    for n, (column, value) in enumerate(switch.set.items()):
        params[f"set{n}"] = now if value == NOW else value
        assignments.append(sql.SQL("{} = %({})s").format(sql.Identifier(column), sql.SQL(f"set{n}")))
    conditions = [person_predicate(policy, store)]
    for n, (column, value) in enumerate(switch.where.items()):
        params[f"where{n}"] = value
        conditions.append(
            sql.SQL("t.{} IS NOT DISTINCT FROM %({})s").format(sql.Identifier(column), sql.SQL(f"where{n}"))
        )
    if switch.only_where_null:
        conditions.append(sql.SQL("t.{} IS NULL").format(sql.Identifier(switch.only_where_null)))
    query = sql.SQL("UPDATE {table} t SET {assignments} WHERE {conditions} RETURNING t.{key}::text").format(
        table=ident(store.table),
        assignments=sql.SQL(", ").join(assignments),
        conditions=sql.SQL(" AND ").join(conditions),
        key=sql.Identifier(store.key),
    )
    try:
        cur.execute(query, params)
    except (psycopg2.DataError, psycopg2.IntegrityError) as exc:
        raise RequestError(
            f"switch_off {switch.table} ({', '.join(switch.set)}): the table refuses a value the policy sets "
            f"({exc.pgcode}); fix the policy's 'purposes:' and answer the request again (nothing was changed)"
        ) from None
    return [str(key) for (key,) in cur.fetchall()]
