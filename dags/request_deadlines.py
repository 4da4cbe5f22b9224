"""
### request_deadlines — data-subject requests near or past their deadline (REQ-1)

A request must be answered within one calendar month of receipt (GDPR art. 12(3)), or within the
extension recorded with `governance request extend`. Every day at 07:00 UTC:

- **alert_deadlines**: finds the open requests (received, verified or in progress) with 7 days or
  less left, and those past their deadline, that were not reported yet, and e-mails **on-call and
  compliance** once (`GOVERNANCE_ALERT_EMAIL`, `GOVERNANCE_COMPLIANCE_EMAIL`, through the
  `governance_smtp` connection): request ids, kinds, states, deadlines and days left or late, never
  the person. Each request is reported once when 7 days are left and once when late (an extension
  gives the new deadline its own 7-day report); each report is marked and evidenced
  (`request_deadline_alert`) in the same transaction, committed only after the mail was accepted,
  so a mail server that is down loses no alert: the retry sends it.

Returns the ids reported, for the run's XCom.

**What to do with an alert**: docs/runbook.md, 'A data-subject request is late' (verify a request
still `received`, see why `subject_requests` did not answer a verified one, or extend it with its
reason before the first month ends).

**On failure**: the mail server or the database unreachable: retried with backoff, then the failure
notifier tells on-call; fix the connection (`governance_smtp`, `governance_db`) and clear the task.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import CronTriggerTimetable, dag, task

import governance_airflow

governance_airflow.load_policy()  # a bad policy file is an import error (CONTRIBUTING.md habit 3)


@task
def alert_deadlines(**context) -> dict:
    """Report, mark and evidence the requests newly due within 7 days or late; returns their ids."""
    from contextlib import closing
    from functools import partial

    from governance.requests import check_deadlines, mail_alert

    now = governance_airflow.run_now(context)
    recipients = [governance_airflow.ALERT_EMAIL, governance_airflow.COMPLIANCE_EMAIL]
    send = partial(mail_alert, governance_airflow.smtp_server(), recipients, now=now)
    with closing(governance_airflow.db_connection()) as conn:
        alerts = check_deadlines(conn, governance_airflow.load_policy(), now=now, notify=send)
    reported = {
        "late": [r.request_id for r in alerts.late],
        "due_soon": [r.request_id for r in alerts.due_soon],
    }
    print(f"requests reported: {reported}")  # ids only
    return reported


@dag(
    dag_id="request_deadlines",
    schedule=CronTriggerTimetable("0 7 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=governance_airflow.default_args(),
    tags=["governance", "gdpr", "requests", "REQ-1"],
    doc_md=__doc__,
)
def request_deadlines():
    alert_deadlines()


request_deadlines()
