"""The recipients' notices of a completed erasure or account deletion (TP-5, GDPR art. 19; ERA-1,
RET-7): queued in the completion's transaction, one per recipient receiving a category of a table
whose records of the person were erased or anonymised (``governance.erasure_work``: the whole
request's, whatever run did them). The person is named by the per-recipient pseudonyms recorded
before the erasure (``erasure.work.record_names``), deleted once copied into the outbox; a
recipient of the orders' category is also given the ids of the orders changed. A kept category
(RET-7) changes nothing and tells nobody.
"""

from __future__ import annotations

from datetime import datetime

from psycopg2.extensions import cursor

from governance.notices.outbox import ORDER_KEY, RecipientName, queue_notices
from governance.policy import Policy
from governance.requests import fetch


def _changed(cur: cursor, request_id: int) -> dict[str, int]:
    cur.execute(
        "SELECT table_name, count(*) FROM governance.erasure_work WHERE request_id = %s "
        "AND disposition IN ('erase', 'anonymise') AND state = 'done' GROUP BY 1",
        (request_id,),
    )
    return {str(table): int(n) for table, n in cur.fetchall()}


def _order_ids(cur: cursor, policy: Policy, request_id: int) -> list[int]:
    tables = [s.table for c in policy.categories for s in c.stores if s.key == ORDER_KEY and s.person is not None]
    cur.execute(
        "SELECT record_key::bigint FROM governance.erasure_work WHERE request_id = %s AND table_name = ANY(%s) "
        "AND disposition IN ('erase', 'anonymise') AND state = 'done' ORDER BY 1",
        (request_id, tables),
    )
    return [int(key) for (key,) in cur.fetchall()]


def _names(cur: cursor, request_id: int) -> dict[str, RecipientName]:
    cur.execute(
        "SELECT recipient_id, subject_pseudonyms, pseudonym_key_id FROM governance.erasure_recipient_names "
        "WHERE request_id = %s",
        (request_id,),
    )
    return {str(r): (list(p), str(k)) for r, p, k in cur.fetchall()}


def queue_erasure_notices(cur: cursor, policy: Policy, request_id: int, *, now: datetime) -> int:
    """Queue the erasure's notices in the caller's transaction (event ``erasure``); how many now
    (0 on a rerun: one per request, recipient and event)."""
    named = _names(cur, request_id)
    if not named:
        cur.execute(
            "SELECT EXISTS (SELECT 1 FROM governance.recipient_outbox WHERE request_id = %s AND event = 'erasure')",
            (request_id,),
        )
        row = cur.fetchone()
        if row and row[0]:
            return 0  # queued by the completion, which removed the names with it
    queued = queue_notices(
        cur,
        policy,
        fetch(cur, request_id),
        event="erasure",
        tables_changed=_changed(cur, request_id),
        order_ids=_order_ids(cur, policy, request_id),
        now=now,
        named=named,
    )
    cur.execute("DELETE FROM governance.erasure_recipient_names WHERE request_id = %s", (request_id,))
    return queued
