"""The RES-1 decision: a restriction in force keeps the person's records from retention deletion.

GDPR art. 18(2): restricted data may only be stored, and deleting it is processing too; art.
18(1)(b)/(c) restrict precisely so that the data is kept for the person. With the policy's
``decisions: RES-1: {restriction_holds_records: true}`` (the default) a restriction places person
holds (RET-8: one per account id and per e-mail pseudonym, scope ``person``, naming the request in
``legal_holds.request_id``) in the transaction of its register rows, so every sweep and the erasure
keep the person's records while it is in force; lifting the restriction lifts them. Each hold added
or lifted records its ``hold_added`` / ``hold_lifted`` evidence, as ``governance.holds`` does.
"""

from __future__ import annotations

from datetime import datetime

from psycopg2 import sql
from psycopg2.extensions import cursor

from governance.holds import HOLD_COLUMNS, Hold, record_hold
from governance.person.subject import Subject
from governance.policy import Policy

DECISION = "RES-1"


def restriction_holds_records(policy: Policy) -> bool:
    """The policy's RES-1 decision; true when the policy does not say (the safe way: keep)."""
    decision = policy.decisions.get(DECISION)
    return (
        True if decision is None or decision.restriction_holds_records is None else decision.restriction_holds_records
    )


def hold_reason(request_id: int) -> str:
    return f"restriction of processing (RES-1, GDPR art. 18), request {request_id}: stored only, not deleted"


def add_restriction_holds(cur: cursor, policy: Policy, request_id: int, subject: Subject, now: datetime) -> int:
    """Person holds for the request's subject (in the caller's transaction), unless the request
    has them already (a rerun); how many were added."""
    cur.execute("SELECT EXISTS (SELECT 1 FROM governance.legal_holds WHERE request_id = %s)", (request_id,))
    row = cur.fetchone()
    if row is not None and row[0]:
        return 0
    by = f"request-{request_id}"
    cur.execute(
        sql.SQL(
            "INSERT INTO governance.legal_holds (scope, account_id, email_sha256, reason, set_by, set_at, request_id) "
            "SELECT 'person', a, e, %(reason)s, %(by)s, %(now)s, %(request)s FROM ("
            "SELECT unnest(%(accounts)s::bigint[]) AS a, NULL::text AS e UNION "
            "SELECT NULL, governance.email_pseudonym(x) FROM unnest(%(emails)s::text[]) AS x) ids "
            "ORDER BY a, e RETURNING {}"
        ).format(HOLD_COLUMNS),
        {"reason": hold_reason(request_id), "by": by, "now": now, "request": request_id, **subject.params()},
    )
    added = [Hold(*row) for row in cur.fetchall()]
    for hold in added:
        record_hold(cur, policy, "hold_added", hold, now, actor=by)
    return len(added)


def lift_restriction_holds(cur: cursor, policy: Policy, request_id: int, *, by: str, now: datetime) -> int:
    """Lift the request's holds still in place (in the caller's transaction); how many."""
    cur.execute(
        sql.SQL(
            "UPDATE governance.legal_holds SET lifted_at = %s, lifted_by = %s "
            "WHERE request_id = %s AND lifted_at IS NULL RETURNING {}"
        ).format(HOLD_COLUMNS),
        (now, by, request_id),
    )
    lifted = [Hold(*row) for row in cur.fetchall()]
    for hold in lifted:
        record_hold(cur, policy, "hold_lifted", hold, now, actor=by)
    return len(lifted)
