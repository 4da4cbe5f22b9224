"""Guards on a run's "now" (RET-10, #9): an instant ahead of the wall clock, or before the policy
applies, would delete too early or audit a world that never was. Every command and DAG run checks
its "now" here; an explicit override (a reason) lets it through and is recorded as evidence
(kind ``now_override``, the reason and the instants only).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from governance.errors import GovernanceError
from governance.windows import iso

if TYPE_CHECKING:
    from psycopg2.extensions import connection

    from governance.policy import Policy

# How far ahead of this machine's clock a "now" may be (clock skew between scheduler and worker).
NOW_TOLERANCE = timedelta(minutes=5)
RUNBOOK_SECTION = "docs/runbook.md, 'A \"now\" was refused'"
OVERRIDE_KIND = "now_override"
MAX_REASON = 200


class NowRefused(GovernanceError):
    """A "now" in the future or before the policy applies, without an override."""

    exit_code = 2


def now_problem(now: datetime, policy: Policy, *, wall_clock: datetime | None = None) -> str | None:
    """Why ``now`` must not be decided for, or None when it may."""
    wall = wall_clock or datetime.now(UTC)
    if now > wall + NOW_TOLERANCE:
        return (
            f"now {iso(now)} is ahead of the wall clock {iso(wall)} by more than "
            f"{int(NOW_TOLERANCE.total_seconds() // 60)} minutes"
        )
    starts = policy.policy.starts
    if starts is not None and now < starts:
        return f"now {iso(now)} is before the policy {policy.policy.name} applies ({iso(starts)})"
    return None


def check_now(
    now: datetime, policy: Policy, *, override: str | None = None, wall_clock: datetime | None = None, how: str
) -> str | None:
    """Raise NowRefused unless ``now`` may be decided for or ``override`` gives a reason; returns
    the problem an override let through (the caller records it with ``record_override``). ``how``
    names the override in the message (a CLI flag or a DAG run conf key)."""
    problem = now_problem(now, policy, wall_clock=wall_clock)
    if problem is None:
        return None
    if not (override or "").strip():
        raise NowRefused(
            f"{problem}: refused, nothing was run. Give the current time (omit --now), or, to decide for "
            f"this instant on purpose, {how} REASON (recorded as evidence); see {RUNBOOK_SECTION}"
        )
    return problem


def record_override(
    conn: connection, *, now: datetime, reason: str, command: str, run_id: str, policy: Policy, problem: str
) -> None:
    """Record that ``now`` was decided for on purpose (evidence kind ``now_override``)."""
    from governance.db import transaction
    from governance.evidence import append

    with transaction(conn) as cur:
        append(
            cur,
            kind=OVERRIDE_KIND,
            run_id=run_id,
            step=command,
            requirements=["RET-10"],
            as_of=now,
            policy_version=policy.version,
            details={"reason": reason.strip()[:MAX_REASON], "problem": problem, "command": command},
        )
