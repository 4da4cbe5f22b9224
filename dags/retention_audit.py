"""
### retention_audit — is anything past its retention window?

An independent check of the privacy policy's retention rules (REQUIREMENTS.md RET-1..RET-10) and
of the photo objects (CAT-5, RET-9), run daily and after every completed `retention_sweep`.

- **check_policy**: every table, column and clock view the policy names exists in the database.
- **audit**: every rule's own predicate (`include/sql/audit/`, written apart from the sweeps' SQL)
  is evaluated once in PostgreSQL into the run's scratch schema (`governance_audit_<key>`, dropped
  at the end), and a Great Expectations `UnexpectedRowsExpectation` per rule checks it there; the
  object store is listed at the same time on a second connection: an object whose record is
  overdue, or that has no record, is overdue. Records under a legal hold count as compliant
  (RET-8) and are counted apart. Per-rule counts (never the data) and the time of each phase are
  recorded as evidence, visible in `governance.audit_history`.
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
from governance.policy import load_policy

# Validate the policy where it is loaded (CONVENTIONS 3): a bad file is an import error naming
# the file, the rule and the field, not a failure halfway through a run. Cheap: one YAML file.
load_policy(governance_airflow.policy_path())


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
    def check_policy() -> dict:
        """The policy's tables, columns and clock views exist; a mismatch cannot be retried away."""
        from airflow.sdk.exceptions import AirflowFailException

        from governance.policy import check_against_database

        policy = load_policy(governance_airflow.policy_path())
        conn = governance_airflow.db_connection()
        try:
            problems = check_against_database(policy, conn)
        finally:
            conn.close()
        if problems:
            raise AirflowFailException(
                f"policy file {policy.source_path} does not match the database:\n"
                + "\n".join(f"  - {p}" for p in problems)
                + "\nApply the schema or fix the policy; see docs/runbook.md."
            )
        return {"policy_version": policy.version, "rules": len(policy.rules)}

    @task
    def audit(policy_checked: dict, **context) -> dict:
        """Run the audit as of the run's "now" and record its evidence; returns counts only."""
        from governance.audit import run_audit

        policy = load_policy(governance_airflow.policy_path())
        now = audit_instant(context)
        run_id = f"retention_audit/{context['run_id']}"
        conn = governance_airflow.db_connection()
        try:
            report = run_audit(
                conn, governance_airflow.s3_client(), policy, now, run_id, db_url=governance_airflow.db_dsn()
            )
        finally:
            conn.close()
        print(report.format_table())  # rule ids and counts only
        return report.to_json()

    @task
    def enforce(summary: dict) -> None:
        """Fail the run, with on-call's next step, when anything is past its window.

        AirflowFailException skips the retries: a retry cannot remove overdue data."""
        from airflow.sdk.exceptions import AirflowFailException

        from governance.audit import AuditReport

        report = AuditReport.from_json(summary)
        if report.overdue_total:
            raise AirflowFailException(report.failure_message())
        print(report.failure_message())

    enforce(audit(check_policy()))


def audit_instant(context) -> pendulum.DateTime:
    """RET-10 "now": the sweep's now (asset-triggered), else the data interval end, else run_after."""
    from governance.windows import WindowError, parse_instant

    latest = None
    for events in (context.get("triggering_asset_events") or {}).values():
        for event in events:
            if (event.extra or {}).get("now") and (latest is None or event.timestamp > latest.timestamp):
                latest = event
    if latest is not None:
        try:
            return parse_instant(str(latest.extra["now"]))
        except WindowError:
            pass  # not a sweep's instant: fall back to the run's own
    instant = None
    for key in ("data_interval_end", "logical_date"):
        if context.get(key) is not None:
            instant = context[key]
            break
    if instant is None:
        instant = context["dag_run"].run_after
    if str(getattr(context.get("dag_run"), "run_type", "")).lower().endswith("scheduled"):
        policy = load_policy(governance_airflow.policy_path())
        instant = instant - policy.enforcement.lateness.relativedelta
    return instant


retention_audit()
