"""
### advertising_audience — hashed contact details to the advertising partner, after a notice (TP-1, TP-3)

Daily, for every audience of the policy's `audiences:` (the photo shop: `meta-customers`, to the
recipient `advertising-partner`, purpose `advertising_audiences`):

- **check_policy**: the policy validates and every table it names exists (the shared task).
- **notify** (mapped per audience; TP-3): e-mails everyone who would be in the audience but was not
  told yet (Norwegian then English, `include/templates/<notice_template>.{nb,en}.txt`), at most
  `notice_limit` per run; each notice is recorded (`governance.audience_notices`) as it is handed to
  the mail server, so a crash neither loses one nor, but for the one in flight, repeats one.
- **export** (mapped per audience; TP-1): one `COPY` of the SHA-256 pseudonyms of the addresses of
  the persons in the audience (live account, consent given and not withdrawn, nothing in force in the
  processing register for the purpose: objected, withdrawn, restricted — MKT-1, OBJ-1, CON-1, RES-1 —
  and told at least `notice_days` earlier), streamed to the drop (`drop:` bucket and prefix), a manifest of
  counts beside it, the file recorded in `governance.audience_files` with evidence `audience_exported`.
  A rerun of a run overwrites the same key. Then the files older than `keep_files` (decision
  RET-9-audiences) are purged, every version, with evidence `audience_files_purged` (RET-9).

Logs and XComs carry audience ids and counts, never an address, a hash or an object key.

**On failure**: a mail server or object store that cannot be reached is retried with backoff;
counts that disagree with the file's lines fail the task without recording it. docs/runbook.md,
'advertising_audience failed'.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import CronTriggerTimetable, Param, dag, task

import governance_airflow

governance_airflow.load_policy()  # a bad policy file is an import error (CONTRIBUTING.md habit 3)


@task
def audiences() -> list[str]:
    """The audience ids of the policy."""
    return [a.id for a in governance_airflow.load_policy().audiences]


@task(map_index_template="{{ audience_id }}")
def notify(audience_id: str, **context) -> dict:
    """TP-3: tell who is not told yet; returns counts."""
    from contextlib import closing

    from airflow.sdk.exceptions import AirflowFailException

    from governance.audiences import tell
    from governance.errors import GovernanceError

    context["audience_id"] = audience_id
    policy = governance_airflow.load_policy()
    with closing(governance_airflow.db_connection()) as conn:
        try:
            done = tell(
                conn,
                governance_airflow.smtp_server(),
                policy,
                policy.audience(audience_id),
                now=governance_airflow.run_now(context),
                run_id=f"advertising_audience/{context['run_id']}",
                limit=int(context["params"]["notice_limit"]),
            )
        except GovernanceError as exc:
            if exc.retryable:
                raise
            raise AirflowFailException(str(exc)) from None
    print(f"audience {audience_id}: told {done.told}, refused {done.refused}")  # counts only
    return {"audience": audience_id, "told": done.told, "refused": done.refused}


@task(map_index_template="{{ audience_id }}")
def export(audience_id: str, **context) -> dict:
    """TP-1: the audience file of this run, streamed to the drop; returns counts."""
    from contextlib import closing

    from airflow.sdk.exceptions import AirflowFailException

    from governance.audiences import export_audience, purge_expired
    from governance.errors import GovernanceError

    context["audience_id"] = audience_id
    policy, now, s3 = (
        governance_airflow.load_policy(),
        governance_airflow.run_now(context),
        governance_airflow.s3_client(),
    )
    audience = policy.audience(audience_id)
    governance_airflow.lineage.report_audience(policy, audience_id)  # who is read, the drop written (#14)
    with closing(governance_airflow.db_connection()) as conn, closing(governance_airflow.db_connection()) as counts:
        try:
            done = export_audience(conn, s3, policy, audience, now=now, counts_conn=counts)
            purged = purge_expired(conn, s3, policy, audience, now=now)
        except GovernanceError as exc:
            if exc.retryable:
                raise
            raise AirflowFailException(str(exc)) from None
    print(f"audience {audience_id}: {done.counts()}; purged {purged.files}, held {purged.held}")  # counts only
    return {"audience": audience_id, **done.counts(), "purged": purged.files, "held": purged.held}


@dag(
    dag_id="advertising_audience",
    schedule=CronTriggerTimetable("0 5 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=governance_airflow.default_args(),
    params={
        "notice_limit": Param(5000, type="integer", minimum=1, description="Notices (TP-3) sent per audience per run."),
    },
    tags=["governance", "gdpr", "audiences", "TP-1", "TP-3", "MKT-1", "OBJ-1", "CON-1", "RES-1"],
    doc_md=__doc__,
)
def advertising_audience():
    ids = audiences()
    governance_airflow.check_policy() >> ids
    told = notify.expand(audience_id=ids)
    told >> export.expand(audience_id=ids)


advertising_audience()
