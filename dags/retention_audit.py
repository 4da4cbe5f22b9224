"""
### retention_audit — is anything past its retention window?

An independent check of the privacy policy's retention rules (docs/requirements.md RET-1..RET-10) and
of the photo objects (CAT-5, RET-9), run daily and after every completed `retention_sweep`.

- **check_policy**: the policy file validates and every table, column and clock the policy names
  exists in the database (the same task as `retention_sweep`'s).
- **audit**: every rule's own predicate (`include/sql/audit/`, written apart from the sweeps' SQL)
  is evaluated once in PostgreSQL into the run's scratch schema (`governance_audit_<key>`, dropped
  at the end), and a Great Expectations `UnexpectedRowsExpectation` per rule checks it there; the
  object store is listed at the same time on a second connection: an object whose record is
  overdue, or that has no record, is overdue. Records under a legal hold count as compliant
  (RET-8) and are counted apart. Per-rule counts (never the data) and the time of each phase are
  recorded as evidence, visible in `governance.audit_history`. The bucket's and the database's
  location are checked against the EEA (SEC-3, rule `data-location`). The audit connects as
  `governance_db_audit` (a login in the auditor role, SEC-4) when that connection exists, else as
  `governance_db` with a warning in the log.
- **anchor_evidence** (teardown, after every run, whatever its outcome): the evidence chain's head
  to the Object Lock bucket (SEC-1); see docs/runbook.md "Evidence anchors".
- **enforce**: fails at once (no retry: a retry cannot delete data) when anything is overdue, with
  a message naming each rule, its count and the oldest overdue age.

"Now" is the run's data interval end (RET-10: a rerun decides the same way); for a run triggered
by the `retention_swept` asset it is the sweep's own "now" when the event carries it
(`extra={"now": ...}`), else the moment the run was triggered. A **scheduled** (daily cron) run
audits as of its data interval end minus the policy's `enforcement.tolerated_lateness` (PT1H):
the sweep runs hourly, so a visit that expired since the last sweep is not yet a breach. The
instant audited is recorded with the evidence (`as_of`).

**On failure**: run `retention_sweep` for the rules named (or `governance sweep --rule RULE --now
...`), then rerun this DAG; if the records remain, see docs/runbook.md. A bad policy file shows as
an import error of this DAG naming the file, the rule and the field.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag, task

import governance_airflow

# Validate the policy where it is loaded (CONTRIBUTING.md habit 3): a bad file is an import error naming
# the file, the rule and the field, not a failure halfway through a run. Cheap: one YAML file.
governance_airflow.load_policy()


@dag(
    dag_id="retention_audit",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("30 5 * * *", timezone="UTC"),
        assets=governance_airflow.retention_swept_asset(),
    ),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=governance_airflow.default_args(),
    tags=["governance", "gdpr", "retention", "audit"],
    doc_md=__doc__,
)
def retention_audit():
    @task
    def audit(policy_checked: dict, **context) -> dict:
        """Run the audit as of the run's "now" and record its evidence; returns counts only."""
        from contextlib import closing

        from governance.audit import run_audit

        policy = governance_airflow.load_policy()
        now = governance_airflow.run_now(context, tolerated_lateness=policy.enforcement.lateness)
        run_id = f"retention_audit/{context['run_id']}"
        conn_id = governance_airflow.audit_conn_id()  # the auditor's login when defined (SEC-4)
        governance_airflow.lineage.report_audit(policy, conn_id)  # tables read, buckets listed (#14)
        with closing(governance_airflow.db_connection(conn_id)) as conn:
            report = run_audit(
                conn, governance_airflow.s3_client(), policy, now, run_id, db_url=governance_airflow.db_dsn(conn_id)
            )
        print(report.format_table())  # rule ids and counts only
        return report.to_json()

    @task
    def enforce(summary: dict) -> None:
        """Fail the run, with on-call's next step, when anything is past its window or a rights
        check (ERA-1, TP-5, OBJ-1, ...: include/sql/audit/rights/) found something.

        AirflowFailException skips the retries: a retry cannot remove overdue data."""
        from airflow.sdk.exceptions import AirflowFailException

        from governance.audit import AuditReport

        report = AuditReport.from_json(summary)
        if report.failed:
            raise AirflowFailException(report.failure_message())
        print(report.failure_message())

    enforce(audit(governance_airflow.check_policy())) >> governance_airflow.anchor_evidence()


retention_audit()
