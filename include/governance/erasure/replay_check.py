"""The independent check after a replay (ERA-1): the erasure's own check (``erasure.check``: plain
SQL traces by account ids and e-mail pseudonyms, the recorded records gone, masked, kept or held,
their objects listed) over all the replayed subjects at once, committed with its evidence (kind
``erasure_replay_checked``, or ``erasure_replay_check_failed`` and ``ErasureFailed``). Counts only.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from psycopg2.extensions import connection

from governance import evidence
from governance.db import transaction
from governance.erasure import replay_work
from governance.erasure.check import ErasureCheck, Person, Scope, check_person
from governance.erasure.ledger import RUNBOOK, LedgerEntry
from governance.erasure.work import disposition_sql
from governance.errors import ErasureFailed
from governance.policy import Policy

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from governance.erasure.replay import ReplayOutcome

KIND_CHECKED = "erasure_replay_checked"
KIND_CHECK_FAILED = "erasure_replay_check_failed"


def check_replay(
    conn: connection,
    s3: S3Client,
    policy: Policy,
    outcome: ReplayOutcome,
    plans: list[Any],
    group: list[LedgerEntry],
    number: int,
    run_name: str,
    *,
    now: datetime,
) -> None:
    """The erasure's independent check over the group's subjects, committed with its evidence."""
    with transaction(conn, read_only=True) as cur:
        stuck = replay_work.stuck(cur, number)
    person = Person(
        sorted({a for e in group for a in e.account_ids}), sorted({p for e in group for p in e.email_sha256s}), []
    )
    scope = Scope(replay_work.WORK, fallback=disposition_sql)
    check = check_person(conn, s3, policy, person, plans, ErasureCheck(number), scope, now=now)
    add_counts(outcome.check, {"": check.counts()})
    ok = check.ok and not stuck
    with transaction(conn) as cur:
        evidence.append(
            cur,
            kind=KIND_CHECKED if ok else KIND_CHECK_FAILED,
            run_id=run_name,
            step="check",
            requirements=["ERA-1", "RET-8"],
            as_of=now,
            policy_version=policy.version or None,
            counts={**check.counts(), **{f"stuck.{t}": n for t, n in stuck.items()}},
            details={"since": outcome.since, "ok": ok, "request_ids": [e.request_id for e in group]},
        )
    if not ok:
        left = check.describe() if not check.ok else ", ".join(f"{t}: {n}" for t, n in sorted(stuck.items()))
        raise ErasureFailed(
            f"erasure replay {run_name}: records of the erased persons are left ({left}); run the replay again, and "
            f"if they stay see {RUNBOOK}"
        )


def add_counts(into: dict[str, Any], more: dict[str, dict[str, int]]) -> None:
    """Sum per-table counts into ``into`` (the check's counts go in flat)."""
    for table, counts in more.items():
        target = into if table == "" else into.setdefault(table, {})
        for name, n in counts.items():
            target[name] = target.get(name, 0) + n
