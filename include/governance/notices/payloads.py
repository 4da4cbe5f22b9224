"""The window of a notice's payload (RET-9, TP-5): an acknowledged notice's pseudonyms and order
ids (pseudonymous personal data, kept only so a notice can be sent again) are removed once the
policy's ``decisions: RET-9-notices`` window has passed since the acknowledgement; the row stays,
ids, tables, counts and times, as the proof the recipient was told. Set-based, one transaction with
its evidence entry (counts and notice ids); a rerun removes nothing twice.
"""

from __future__ import annotations

from datetime import datetime

from psycopg2.extensions import connection

from governance import evidence
from governance.db import transaction
from governance.errors import SettingsError
from governance.policy import Policy
from governance.windows import Window, as_utc, iso

DECISION = "RET-9-notices"

_EXPIRE = (
    "UPDATE governance.recipient_outbox SET subject_pseudonyms = '{}', order_ids = '{}', "
    "payload_removed_at = %(now)s WHERE state = 'acknowledged' AND payload_removed_at IS NULL "
    "AND acked_at + %(window)s::interval <= %(now)s RETURNING notice_id"
)


def payload_window(policy: Policy) -> Window:
    decision = policy.decisions.get(DECISION)
    if decision is None or not decision.window:
        raise SettingsError(
            f"the policy has no 'decisions: {DECISION}: {{window: ...}}': how long an acknowledged notice keeps its "
            "pseudonyms and order ids (RET-9); add it, e.g. P30D"
        )
    return Window.parse(decision.window)


def expire_payloads(conn: connection, policy: Policy, *, now: datetime) -> list[int]:
    """Remove the payload of notices acknowledged before ``now`` minus the window; their ids."""
    now = as_utc(now)
    window = payload_window(policy)
    with transaction(conn) as cur:
        cur.execute(_EXPIRE, {"now": now, "window": window.iso})  # RET-10: acked_at + window <= now
        ids = sorted(int(i) for (i,) in cur.fetchall())
        if ids:
            evidence.append(
                cur,
                kind="notice_payloads_removed",
                run_id=f"notice-payloads-{iso(now)}",
                requirements=["RET-9", "TP-5"],
                as_of=now,
                policy_version=policy.version,
                counts={"notices": len(ids)},
                details={"notice_ids": ids, "window": window.iso},
            )
    return ids
