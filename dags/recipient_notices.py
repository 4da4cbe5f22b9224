"""
### recipient_notices — tell the recipients of personal data, and learn that they were told (TP-5)

Every 5 minutes (docs/requirements.md TP-5, TP-2; GDPR art. 19; docs/adr/0010-recipient-notices.md):

- **deliver**: the outbox's due notices (queued by erasures, rectifications, restrictions) are
  claimed and committed as `sending`, then sent on each recipient's channel from the policy's
  `recipients: notify:` — a webhook signed by Standard Webhooks (secret from the Airflow connection
  the policy names), an e-mail to the recipient's mailbox (`governance_smtp`), or an object in its
  drop bucket (`governance_s3`) — then recorded `acknowledged` (ack in the response), `sent`
  (awaiting the callback or a manual ack) or `failed` (retried with exponential backoff and jitter),
  each with its evidence entry. After the policy's `notices.max_attempts` or `max_age_days` a notice
  is `dead` and on-call is e-mailed with the recipient and notice ids. Per-recipient rate limits
  apply. A corrected value travels only inside a JWE to the recipient's public key.
- **ack_overdue**: compliance is e-mailed, once per notice, about notices sent but not acknowledged
  within `notices.ack_within_days`.
- **payload_window**: an acknowledged notice's pseudonyms and order ids are removed once the
  policy's `decisions: RET-9-notices` window has passed (RET-9); the row stays as the proof.

Logs and XComs carry counts and notice ids only. **On failure**: docs/runbook.md, 'A recipient
notice is dead'; `governance notices list --state failed --state dead`, `governance notices show ID`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import CronTriggerTimetable, dag, task

import governance_airflow

governance_airflow.load_policy()  # a bad policy file is an import error (CONTRIBUTING.md habit 3)


@dag(
    dag_id="recipient_notices",
    schedule=CronTriggerTimetable("*/5 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=governance_airflow.default_args(),
    tags=["governance", "gdpr", "recipients", "TP-5"],
    doc_md=__doc__,
)
def recipient_notices():
    @task
    def deliver(**context) -> dict:
        """Claim, send and record the due notices; returns counts by state and the dead ids."""
        from contextlib import closing

        from governance.notices.delivery import Alerts, deliver_due
        from governance.notices.delivery_send import Channels
        from governance_airflow.connections import AirflowSecrets

        policy = governance_airflow.load_policy()
        smtp = governance_airflow.smtp_server()
        channels = Channels(
            secrets=AirflowSecrets(),
            smtp=smtp,
            s3=governance_airflow.lazy_s3_client(),
            timeout=policy.notices.send_timeout_seconds,
        )
        alerts = Alerts(smtp, to=governance_airflow.ALERT_EMAIL, runbook_url=governance_airflow.RUNBOOK_URL)
        with closing(governance_airflow.db_connection()) as conn:
            try:
                done = deliver_due(
                    conn,
                    policy,
                    channels,
                    now=governance_airflow.run_now(context),
                    run_id=f"recipient_notices/{context['run_id']}",
                    alerts=alerts,
                )
            finally:
                channels.close()
        print(f"notices delivered: {done.to_json()}")  # counts and notice ids only
        return done.to_json()

    @task
    def ack_overdue(delivered: dict, **context) -> list:
        """E-mail compliance, once, about notices not acknowledged in time; returns their ids."""
        from contextlib import closing

        from governance.notices.acks import overdue_alerts

        with closing(governance_airflow.db_connection()) as conn:
            return overdue_alerts(
                conn,
                governance_airflow.load_policy(),
                governance_airflow.smtp_server(),
                to=governance_airflow.COMPLIANCE_EMAIL,
                now=governance_airflow.run_now(context),
            )

    @task
    def payload_window(**context) -> list:
        """Remove the payload of notices acknowledged longer ago than RET-9-notices; their ids."""
        from contextlib import closing

        from governance.notices.payloads import expire_payloads

        with closing(governance_airflow.db_connection()) as conn:
            return expire_payloads(conn, governance_airflow.load_policy(), now=governance_airflow.run_now(context))

    ack_overdue(deliver()) >> payload_window()


recipient_notices()
