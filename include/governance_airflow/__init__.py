"""Airflow glue for the governance library: house defaults, connections and notifications, and
what the DAGs' tasks share (the policy loaded once per task, the run's "now", ``check_policy``).

The ``governance`` package never imports Airflow; DAG files import this package (cheap at parse
time: Airflow SDK only) and do the heavy imports inside task bodies.
"""

from governance_airflow import lineage
from governance_airflow.anchoring import anchor_evidence, export_evidence_key
from governance_airflow.connections import (
    audit_conn_id,
    db_connection,
    db_dsn,
    lazy_s3_client,
    recipient_pseudonym_key,
    s3_client,
    smtp_server,
)
from governance_airflow.defaults import (
    ALERT_EMAIL,
    COMPLIANCE_EMAIL,
    OWNER,
    RUNBOOK_URL,
    SMTP_CONN_ID,
    default_args,
    failure_notifier,
    retention_swept_asset,
)
from governance_airflow.tasks import (
    check_policy,
    fail_fast_on_policy_and_sweep_errors,
    load_policy,
    policy_path,
    run_now,
)

__all__ = [
    "audit_conn_id",
    "ALERT_EMAIL",
    "COMPLIANCE_EMAIL",
    "OWNER",
    "RUNBOOK_URL",
    "SMTP_CONN_ID",
    "anchor_evidence",
    "check_policy",
    "db_connection",
    "db_dsn",
    "export_evidence_key",
    "default_args",
    "fail_fast_on_policy_and_sweep_errors",
    "failure_notifier",
    "lineage",
    "load_policy",
    "policy_path",
    "recipient_pseudonym_key",
    "retention_swept_asset",
    "run_now",
    "lazy_s3_client",
    "s3_client",
    "smtp_server",
]
