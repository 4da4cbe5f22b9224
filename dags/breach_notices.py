"""
### breach_notices — the 72-hour authority deadline and the notices to the people (SEC-2)

After a personal-data breach (`governance breach open`, docs/requirements.md SEC-2, GDPR art. 33/34)
this DAG runs every 15 minutes:

- **deadline_alerts**: for each breach whose authority notice is not recorded yet, e-mails on-call
  (through the `governance_smtp` connection) once when it is due within 24 hours and once when it
  is late (due 72 hours after detection). The alert names the breach id and the deadline, never a person.
- **send_notices**: sends the people concerned their notice (Norwegian and English in one e-mail,
  from `include/templates/breach_notice.{nb,en}.txt`) for breaches whose authority was notified,
  at most `batch_size` per run (the rate limit). Each notice is claimed before it is sent and
  marked sent or failed after: a rerun never notifies anyone twice. Counts per breach are evidenced.
  The address is read from the shop's tables at send time and is only in the SMTP envelope; logs,
  XComs and evidence carry ids and counts.
- **settle**: a breach whose notices are all sent or failed becomes `subjects_notified`
  (then `governance breach close ID`).

**On failure**: a mail server that cannot be reached re-queues the notices not handed over; the
run retries. A notice left in `sending` or `failed`: docs/runbook.md 'Breach notice stuck in sending'.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import CronTriggerTimetable, Param, dag, task

import governance_airflow

governance_airflow.load_policy()  # a bad policy file is an import error (CONTRIBUTING.md habit 3)


@dag(
    dag_id="breach_notices",
    schedule=CronTriggerTimetable("*/15 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=governance_airflow.default_args(),
    params={
        "batch_size": Param(200, type="integer", minimum=1, description="Notices sent per run at most (rate limit)."),
    },
    tags=["governance", "gdpr", "breach", "SEC-2"],
    doc_md=__doc__,
)
def breach_notices():
    @task
    def deadline_alerts(**context) -> list:
        """E-mail on-call when an authority notice is due within 24 h or late; returns (breach id, kind)."""
        from contextlib import closing

        from governance.breach import deadline_alerts as alert

        policy = governance_airflow.load_policy()
        with closing(governance_airflow.db_connection()) as conn:
            done = alert(
                conn,
                policy,
                governance_airflow.smtp_server(),
                to=governance_airflow.ALERT_EMAIL,
                runbook_url=governance_airflow.RUNBOOK_URL,
                now=governance_airflow.run_now(context),
            )
        print(f"deadline alerts sent: {done}")  # breach ids only
        return [list(item) for item in done]

    @task
    def send_notices(**context) -> dict:
        """Send at most batch_size notices; returns counts per breach id."""
        from contextlib import closing

        from governance.breach import send_notices as send

        policy = governance_airflow.load_policy()
        with closing(governance_airflow.db_connection()) as conn:
            batch = send(
                conn,
                policy,
                governance_airflow.smtp_server(),
                limit=int(context["params"]["batch_size"]),
                now=governance_airflow.run_now(context),
                run_id=f"breach_notices/{context['run_id']}",
            )
        print(f"notices per breach: {batch.to_json()}")  # counts only
        return batch.to_json()

    @task
    def settle(sent: dict, **context) -> list:
        """Breaches whose notices are all out become subjects_notified; returns their ids."""
        from contextlib import closing

        from governance.breach import settle as settle_breaches

        with closing(governance_airflow.db_connection()) as conn:
            return settle_breaches(conn, governance_airflow.load_policy(), now=governance_airflow.run_now(context))

    deadline_alerts()
    settle(send_notices())


breach_notices()
