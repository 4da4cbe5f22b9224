"""
### erasure_replay — after a restore from a backup, apply the erasures again (ERA-1)

Triggered by hand only (no schedule), with conf `{"since": "<the dump's instant, ISO 8601>", "dry_run": true}`:

- **check_policy**: the policy validates and every table it names exists (the shared task; fails at once).
- **replay**: every erasure the ledger outside the database (`object_store.erasure_ledger_bucket`, S3 Object
  Lock) recorded at or after `since`, applied again set-based across all of them: records deleted, order
  records anonymised with the RET-8 strategies, photos purged (every version), legal holds in force honoured,
  each batch committing with its evidence (`erasure_replayed`); then the erasure's independent check. With
  `dry_run` the counts only, nothing changes. A second run finds nothing and records nothing.

Logs and XComs carry request ids and counts, never a person.

**On failure**: a bad `since` (not an instant, in the future) fails at once naming it; an altered ledger entry
refuses the whole replay; records left after the replay fail the run with their tables and counts. See
docs/runbook.md, 'Restoring the database from a backup: replay the erasures'.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

import governance_airflow

governance_airflow.load_policy()  # a bad policy file is an import error (CONTRIBUTING.md habit 3)


@task
def replay(**context) -> dict:
    """Replay the ledger since ``params.since``; returns the request ids and counts."""
    from contextlib import closing

    from airflow.sdk.exceptions import AirflowFailException

    from governance.erasure.replay import replay as run
    from governance.errors import GovernanceError
    from governance.windows import WindowError, parse_instant
    from governance_airflow.anchoring import evidence_key

    params = context["params"]
    if not params.get("since"):
        raise AirflowFailException('param since is required: trigger with conf {"since": "<the dump\'s instant>"}')
    try:
        since = parse_instant(str(params.get("since") or ""))
    except WindowError as exc:
        raise AirflowFailException(f"param since: {exc}") from None
    policy, now = governance_airflow.load_policy(), governance_airflow.run_now(context)
    with closing(governance_airflow.db_connection()) as conn:
        try:
            outcome = run(
                conn,
                governance_airflow.s3_client(),
                policy,
                since,
                now=now,
                dry_run=bool(params.get("dry_run")),
                key=evidence_key(),
                allow_unsigned=bool(params.get("allow_unsigned")),
            )
        except GovernanceError as exc:
            if exc.retryable:
                raise
            raise AirflowFailException(str(exc).replace("--since", "param since")) from None
    result = outcome.to_dict()
    print(f"erasure replay: {result}")  # ids and counts only
    return result


@dag(
    dag_id="erasure_replay",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=governance_airflow.default_args(),
    params={
        "since": Param(
            None, type=["null", "string"], description="Required: the instant of the dump restored (ISO 8601, offset)."
        ),
        "dry_run": Param(False, type="boolean", description="Count what would be erased; change nothing."),
        "allow_unsigned": Param(
            False, type="boolean", description="Accept entries without a MAC (written before the evidence key was set)."
        ),
    },
    tags=["governance", "gdpr", "erasure", "ERA-1"],
    doc_md=__doc__,
)
def erasure_replay():
    governance_airflow.check_policy() >> replay()


erasure_replay()
