"""The account of an account deletion whose category the person keeps (RET-7, RET-2): marked
deleted, which starts RET-2's clock (its ``deleted_at`` column), instead of erased.

The account stores are the data map's (``Policy.account_stores``); the accounts are those the
erasure recorded for the person (``governance.erasure_subjects``). An account already marked keeps
its instant (the clock never moves); the mark commits with its evidence (kind ``account_deleted``,
counts only). Not a removal, so no hold is asked here: the RET-2 sweep asks before it deletes.
When the person chose to delete the account's category, the erasure removes the rows instead.
"""

from __future__ import annotations

from datetime import datetime

from psycopg2 import sql
from psycopg2.extensions import connection

from governance import evidence
from governance.db import ident, transaction
from governance.erasure.plan import StorePlan
from governance.erasure.work import run_id
from governance.errors import PolicyError
from governance.person.records import columns
from governance.policy import Policy

DELETED_AT = "deleted_at"  # the RET-2 clock's column of an account store (include/sql/clocks/ret_2_accounts.sql)
KIND_ACCOUNT_DELETED = "account_deleted"


def mark_accounts_deleted(
    conn: connection, policy: Policy, plans: list[StorePlan], request_id: int, *, now: datetime
) -> dict[str, int]:
    """Set ``deleted_at = now`` on the person's accounts in every kept account store; table -> rows marked now."""
    accounts = {store.table for store in policy.account_stores()}
    kept = [plan for plan in plans if plan.chosen_keep and plan.table in accounts]
    marked: dict[str, int] = {}
    if not kept:
        return marked
    with transaction(conn) as cur:
        for plan in kept:
            if DELETED_AT not in {c.name for c in columns(cur, plan.store)}:
                raise PolicyError(
                    "<data map>",
                    [f"account store {plan.table!r} has no {DELETED_AT!r} column to mark it deleted (RET-2)"],
                )
            cur.execute(
                sql.SQL(
                    "UPDATE {table} t SET {deleted} = %(now)s FROM governance.erasure_subjects s "
                    "WHERE s.request_id = %(request)s AND t.{key} = ANY(s.account_ids) AND t.{deleted} IS NULL"
                ).format(table=ident(plan.table), deleted=sql.Identifier(DELETED_AT), key=sql.Identifier(plan.key)),
                {"now": now, "request": request_id},
            )
            if cur.rowcount:
                marked[plan.table] = int(cur.rowcount)
        if marked:
            evidence.append(
                cur,
                kind=KIND_ACCOUNT_DELETED,
                run_id=run_id(request_id),
                step="account_deleted",
                requirements=["RET-7", "RET-2"],
                as_of=now,
                policy_version=policy.version or None,
                counts=marked,
                details={"request_id": request_id},
                numbered=True,
            )
    return marked
