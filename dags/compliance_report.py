"""
### compliance_report — the previous UTC day's compliance report, filed in the reports bucket (#13)

Every day at 01:00 UTC, for the UTC day before the run's "now" (its data interval end):

- **write_report**: checks the evidence chain and its anchors (SEC-1) and records that
  verification (`evidence_verified`, by this task), then writes the day's report, the same one
  `governance report --from DAY --to DAY` gives (rules and their effects, audits, requests answered
  in time, recipients' notices, holds, the verified head hash, the policy version), as HTML and
  JSON (validated against `include/governance/compliance/report.schema.json`) to the policy's
  `object_store.reports_bucket` under `reports/YYYY/MM/DD/report.{html,json}`, server-side
  encrypted; then records `report_written` (keys, sizes, sha256) after the upload. A rerun of the
  same day finds both objects as recorded and writes nothing; if they differ or are missing it
  overwrites the same keys. Ids, counts and hashes only, never personal data.
- **purge_expired_reports**: the reports bucket is a copy with a window (RET-9, decision
  `keep_reports`): report objects written longer ago than the window are deleted (every version)
  and `reports_purged` records the keys. SEC-3 checks the bucket's location in every audit.

Returns the keys written (or skipped) and the count purged, for the run's XCom.

**On failure**: the bucket, the database or the endpoint unreachable: retried with backoff, then
the failure notifier tells on-call; see docs/runbook.md "The daily report failed". A report whose
evidence verification failed is still written (it says BROKEN) and the task fails at once: that is
an integrity incident, docs/runbook.md "Evidence chain broken".
"""

from __future__ import annotations

import pendulum
from airflow.sdk import CronTriggerTimetable, dag, task

import governance_airflow

governance_airflow.load_policy()  # a bad policy file is an import error (CONTRIBUTING.md habit 3)


@task
def write_report(**context) -> dict:
    """The previous UTC day's report (HTML, JSON) in the reports bucket, then its evidence."""
    from contextlib import closing
    from datetime import timedelta

    from airflow.sdk.exceptions import AirflowFailException

    from governance.compliance.publish import write_daily

    now = governance_airflow.run_now(context)
    day = (now - timedelta(days=1)).date()
    with closing(governance_airflow.db_connection()) as conn:
        written = write_daily(
            conn,
            governance_airflow.s3_client(),
            governance_airflow.load_policy(),
            day,
            now=now,
            by="compliance_report.write_report",
            run_id=context["run_id"],
        )
    print(f"report of {day}: {'already there' if written.skipped else 'written'} to {written.bucket}: {written.keys}")
    if not written.verified_ok:
        raise AirflowFailException(
            f"the evidence chain is BROKEN ({len(written.problems)} problem(s)); the report of {day} says so; "
            "see docs/runbook.md 'Evidence chain broken'"
        )
    return {"day": day.isoformat(), "keys": written.keys, "sha256": written.sha256, "skipped": written.skipped}


@task
def purge_expired_reports(**context) -> int:
    """Delete the reports past their window (RET-9) and record which."""
    from contextlib import closing

    from governance.compliance.publish import purge_expired

    now = governance_airflow.run_now(context)
    with closing(governance_airflow.db_connection()) as conn:
        purged = purge_expired(
            conn, governance_airflow.s3_client(), governance_airflow.load_policy(), now=now, run_id=context["run_id"]
        )
    print(f"report objects purged: {purged}")
    return purged


@dag(
    dag_id="compliance_report",
    schedule=CronTriggerTimetable("0 1 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=governance_airflow.default_args(),
    tags=["governance", "gdpr", "compliance", "RET-9", "SEC-1"],
    doc_md=__doc__,
)
def compliance_report():
    write_report() >> purge_expired_reports()


compliance_report()
