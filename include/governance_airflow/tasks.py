"""What the DAGs' tasks share: the policy each task loads once, the run's "now" from the Airflow
context, the one ``check_policy`` task, and turning errors a retry cannot fix into an immediate
failure. Heavy imports stay inside the functions (DAG files import this at parse time).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from governance_airflow.connections import db_connection

if TYPE_CHECKING:
    from governance.policy import Policy
    from governance.windows import Window

RUNBOOK_HINT = "Apply the schema or fix the policy; see docs/runbook.md."


def policy_path() -> str | None:
    """The policy file: GOVERNANCE_POLICY, or None for the shipped one."""
    from governance.settings import POLICY_ENV

    return os.environ.get(POLICY_ENV) or None


def load_policy() -> Policy:
    """The policy, validated (a PolicyError names the file, the rule and the field). A task loads
    it once and hands that one object to everything it calls."""
    from governance.policy import load_policy as load

    return load(policy_path())


def run_now(context: Mapping[str, Any], *, tolerated_lateness: Window | None = None) -> datetime:
    """RET-10 "now" of this run (``governance.instants.run_now`` from the context's pieces): the
    triggering sweep's own "now", else the data interval end, logical date or run_after; a
    scheduled run looks back by ``tolerated_lateness`` when given (the audit)."""
    from governance.instants import AssetEvent
    from governance.instants import run_now as resolve

    dag_run = context["dag_run"]
    events = [
        AssetEvent(event.timestamp, (event.extra or {}).get("now"))
        for asset_events in (context.get("triggering_asset_events") or {}).values()
        for event in asset_events
    ]
    now = resolve(
        run_after=dag_run.run_after,
        data_interval_end=context.get("data_interval_end"),
        logical_date=context.get("logical_date"),
        asset_events=events,
        scheduled=str(getattr(dag_run, "run_type", "")).lower().endswith("scheduled"),
        tolerated_lateness=tolerated_lateness,
    )
    guard_now(context, now)
    return now


# The run conf key that lets a refused "now" through: {"allow_now_override": "REASON"}.
NOW_OVERRIDE_CONF = "allow_now_override"


def guard_now(context: Mapping[str, Any], now: datetime) -> None:
    """Fail the task at once when ``now`` is ahead of the wall clock or before the policy applies,
    unless the run's conf gives ``allow_now_override`` (a reason), which is recorded as evidence
    once per run (``governance.guards``)."""
    from airflow.sdk.exceptions import AirflowFailException

    from governance.guards import NowRefused, check_now, record_override

    policy = load_policy()
    conf = getattr(context["dag_run"], "conf", None) or {}
    reason = str(conf.get(NOW_OVERRIDE_CONF) or "")
    try:
        problem = check_now(now, policy, override=reason, how=f'trigger with conf {{"{NOW_OVERRIDE_CONF}":')
    except NowRefused as exc:
        raise AirflowFailException(str(exc)) from None
    if problem is not None:
        dag_id = getattr(context.get("dag"), "dag_id", "dag")
        with closing(db_connection()) as conn:
            record_override(
                conn,
                now=now,
                reason=reason,
                command=dag_id,
                run_id=f"now-override/{context['run_id']}",
                policy=policy,
                problem=problem,
            )


@contextmanager
def fail_fast_on_policy_and_sweep_errors() -> Iterator[None]:
    """Turn errors a retry cannot fix into AirflowFailException (no retries, on-call is told at once).

    A PolicyError, an UnknownRule (the policy changed under a running DAG), or a SweepError that is
    not ``retryable`` (verify failed, objects refused), fails the task at once; a retryable
    SweepError (lock or timeout) propagates so Airflow retries it.
    """
    from airflow.sdk.exceptions import AirflowFailException

    from governance.errors import PolicyError, UnknownRule
    from governance.sweep import SweepError

    try:
        yield
    except (PolicyError, UnknownRule) as exc:
        raise AirflowFailException(str(exc)) from None
    except SweepError as exc:
        if exc.retryable:
            raise
        raise AirflowFailException(str(exc)) from None


def check_policy() -> Any:
    """The ``check_policy`` task both DAGs start with: the policy file validates, and every table,
    column, clock column and clock view it names exists in the database. A mismatch fails at once
    (no retry can fix it). Returns the policy version and the number of rules."""
    from airflow.sdk import task

    @task(task_id="check_policy")
    def check() -> dict[str, Any]:
        """The policy validates and its tables, columns and clocks exist; a mismatch cannot be retried away."""
        from airflow.sdk.exceptions import AirflowFailException

        from governance.errors import PolicyError
        from governance.policy import require_database_match

        policy = load_policy()
        with closing(db_connection()) as conn:
            try:
                require_database_match(policy, conn)
            except PolicyError as exc:
                raise AirflowFailException(f"{exc}\n{RUNBOOK_HINT}") from None
        return {"policy_version": policy.version, "rules": len(policy.rules)}

    return check()
