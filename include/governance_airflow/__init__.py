"""Airflow glue for the governance library: house defaults, connections and notifications.

The ``governance`` package never imports Airflow; DAG files import this module (cheap at parse
time: Airflow SDK only) and do the heavy imports inside task bodies.
"""

from __future__ import annotations

import copy
import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from governance.settings import AIRFLOW_DB_CONN_ID, AIRFLOW_S3_CONN_ID

OWNER = "data-governance"
RUNBOOK_URL = os.environ.get(
    "GOVERNANCE_RUNBOOK_URL", "https://github.com/photo-shop/governance/blob/main/docs/runbook.md"
)
ALERT_EMAIL = os.environ.get("GOVERNANCE_ALERT_EMAIL", "oncall@example.invalid")
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


def db_connection() -> Any:
    """A psycopg2 connection from the Airflow connection ``governance_db``, in UTC.

    Not ``PostgresHook.get_conn()``: with psycopg 3 and SQLAlchemy 2 installed (as here), the
    postgres provider returns a psycopg 3 connection, which the library (psycopg2.sql, mogrify,
    copy_expert) cannot use. The connection's settings still come from Airflow (``db_dsn``).
    """
    import psycopg2

    from governance.db import prepare
    from governance.settings import SettingsError

    try:
        conn = psycopg2.connect(db_dsn())
    except Exception as exc:  # the hook raises several types; the message must name the connection
        raise SettingsError(
            f"cannot open the Airflow connection '{AIRFLOW_DB_CONN_ID}' (postgres): {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}. Fix it under Admin > Connections or "
            f"AIRFLOW_CONN_{AIRFLOW_DB_CONN_ID.upper()}."
        ) from None
    return prepare(conn)


# libpq parameters a postgres connection's extra may carry, passed on to other clients (GX).
_LIBPQ_EXTRAS = (
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslcrl",
    "options",
    "application_name",
    "connect_timeout",
    "target_session_attrs",
    "gssencmode",
)


def db_dsn() -> str:
    """A libpq DSN (key=value) for the connection ``governance_db``, for clients that open their own
    connections (the audit's GX data source). Unlike a URL it carries a unix-socket host
    (``host=/var/run/postgresql``) as is."""
    from airflow.sdk import Connection
    from psycopg2.extensions import make_dsn

    conn = Connection.get(AIRFLOW_DB_CONN_ID)
    extra = conn.extra_dejson or {}
    params = {key: str(extra[key]) for key in _LIBPQ_EXTRAS if extra.get(key) not in (None, "")}
    return make_dsn(
        host=conn.host or None,
        port=conn.port or None,
        user=conn.login or None,
        password=conn.password or None,
        dbname=conn.schema or None,
        **params,
    )


def s3_client() -> Any:
    """A boto3 S3 client from the Airflow connection ``governance_s3`` (endpoint_url in extra)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=AIRFLOW_S3_CONN_ID).get_conn()


def s3_hook() -> Any:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=AIRFLOW_S3_CONN_ID)


def policy_path() -> str | None:
    from governance.settings import POLICY_ENV

    return os.environ.get(POLICY_ENV) or None


def retention_swept_asset() -> Any:
    """The Asset a successful retention_sweep updates; it schedules retention_audit too."""
    from airflow.sdk import Asset

    return Asset(name="retention_swept", uri="governance://retention-sweep/completed")


@contextmanager
def fail_fast_on_policy_and_sweep_errors() -> Iterator[None]:
    """Turn errors a retry cannot fix into AirflowFailException (no retries, on-call is told at once).

    A PolicyError, or a SweepError that is not ``retryable`` (verify failed, objects refused), fails
    the task at once; a retryable SweepError (lock or timeout) propagates so Airflow retries it.
    """
    from airflow.sdk.exceptions import AirflowFailException

    from governance.policy import PolicyError
    from governance.sweep import SweepError

    try:
        yield
    except PolicyError as exc:
        raise AirflowFailException(str(exc)) from None
    except SweepError as exc:
        if exc.retryable:
            raise
        raise AirflowFailException(str(exc)) from None
