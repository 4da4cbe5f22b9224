"""The house's Airflow defaults: owner, retries with backoff, the failure notifier (e-mail to
on-call with the runbook), and the asset a completed sweep updates.
"""

from __future__ import annotations

import copy
import functools
import os
from datetime import timedelta
from typing import Any

OWNER = "data-governance"
RUNBOOK_URL = os.environ.get(
    "GOVERNANCE_RUNBOOK_URL", "https://github.com/photo-shop/governance/blob/main/docs/runbook.md"
)
ALERT_EMAIL = os.environ.get("GOVERNANCE_ALERT_EMAIL", "oncall@example.invalid")
# Compliance is told of data-subject requests near or past their deadline (REQ-1), with on-call.
COMPLIANCE_EMAIL = os.environ.get("GOVERNANCE_COMPLIANCE_EMAIL", "compliance@example.invalid")
SMTP_CONN_ID = "governance_smtp"


def failure_notifier() -> Any:
    """E-mail on-call through the SMTP connection: rule/task, run, error class and the runbook.

    The message carries identifiers and the exception text only; our exceptions never carry
    personal data (counts and keys only), so neither does the alert.
    """
    return _fresh_smtp_notifier_class()(
        to=ALERT_EMAIL,
        from_email="governance@example.invalid",
        smtp_conn_id=SMTP_CONN_ID,
        subject=(
            "[governance] {{ dag.dag_id }} failed: {{ ti.task_id }}"
            "{% if ti.map_index >= 0 %}[{{ ti.rendered_map_index or ti.map_index }}]{% endif %} in {{ run_id }}"
        ),
        html_content=(
            "<p>DAG <b>{{ dag.dag_id }}</b>, task <b>{{ ti.task_id }}</b>"
            "{% if ti.map_index >= 0 %} (map index {{ ti.map_index }}"
            "{% if ti.rendered_map_index %}: {{ ti.rendered_map_index }}{% endif %}){% endif %}"
            ", run <b>{{ run_id }}</b> failed.</p>"
            "<p>Error: <pre>{{ exception | string | truncate(2000) }}</pre></p>"
            "<p>Try number {{ ti.try_number }}. Log: {{ ti.log_url }}</p>"
            f'<p>Runbook: <a href="{RUNBOOK_URL}">{RUNBOOK_URL}</a></p>'
        ),
    )


@functools.cache
def _fresh_smtp_notifier_class() -> type:
    """SmtpNotifier that renders a copy of itself for each alert.

    BaseNotifier renders its template fields in place, irreversibly, and default_args hands one
    instance to every task of a DAG: in a process that runs several tasks (``dag.test()``, a
    worker reusing a parsed DAG) every later alert would repeat the first one's task, run and
    error (found by tests/integration/test_notifier.py).
    """
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    class FreshSmtpNotifier(SmtpNotifier):
        def __call__(self, *args: Any) -> None:
            return SmtpNotifier.__call__(copy.copy(self), *args)

        def __await__(self) -> Any:
            return SmtpNotifier.__await__(copy.copy(self))

    return FreshSmtpNotifier


def default_args(**overrides: Any) -> dict[str, Any]:
    """House defaults: an owner, retries with exponential backoff for transient errors, alerts."""
    args: dict[str, Any] = {
        "owner": OWNER,
        "retries": 3,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=15),
        "on_failure_callback": [failure_notifier()],
    }
    args.update(overrides)
    return args


def retention_swept_asset() -> Any:
    """The Asset a successful retention_sweep updates; it schedules retention_audit too."""
    from airflow.sdk import Asset

    return Asset(name="retention_swept", uri="governance://retention-sweep/completed")
