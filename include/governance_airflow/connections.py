"""Connections from Airflow's connection store: the shop's database (``governance_db``; for the
audit ``governance_db_audit`` when defined, a login in the auditor role, SEC-4) as a psycopg2
connection or a libpq DSN, the object store (``governance_s3``) as a boto3 client, and the mail
server (``governance_smtp``) as the library's ``SmtpServer``, and the recipient pseudonym key
(``governance_recipient_pseudonym``, TP-5).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from governance.settings import AIRFLOW_DB_AUDIT_CONN_ID, AIRFLOW_DB_CONN_ID, AIRFLOW_S3_CONN_ID

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from psycopg2.extensions import connection

    from governance.breach import SmtpServer
    from governance.notices.pseudonyms import PseudonymKey


log = logging.getLogger(__name__)


def optional_connection(conn_id: str) -> Any | None:
    """The Airflow connection ``conn_id``, or None when it is not defined."""
    from airflow.sdk import Connection

    try:
        return Connection.get(conn_id)
    except Exception:  # not defined: the SDK raises its own not-found type
        return None


def audit_conn_id() -> str:
    """The connection the audit runs as: ``governance_db_audit`` (a login in the auditor role, which
    reads only the columns the audit needs, SEC-4) when it is defined, else ``governance_db``."""
    if optional_connection(AIRFLOW_DB_AUDIT_CONN_ID) is None:
        log.warning(
            "no Airflow connection '%s': the audit runs as '%s'; give it a login in the auditor role "
            "(governance roles apply; docs/runbook.md, 'Roles (SEC-4)')",
            AIRFLOW_DB_AUDIT_CONN_ID,
            AIRFLOW_DB_CONN_ID,
        )
        return AIRFLOW_DB_CONN_ID
    return AIRFLOW_DB_AUDIT_CONN_ID


def db_connection(conn_id: str = AIRFLOW_DB_CONN_ID, *, dsn: str | None = None) -> connection:
    """A psycopg2 connection from the Airflow connection ``conn_id`` (``governance_db``), in UTC.

    Not ``PostgresHook.get_conn()``: with psycopg 3 and SQLAlchemy 2 installed (as here), the
    postgres provider returns a psycopg 3 connection, which the library (psycopg2.sql, mogrify,
    copy_expert) cannot use. The connection's settings still come from Airflow (``db_dsn``).
    """
    import psycopg2

    from governance.db import prepare
    from governance.errors import InfrastructureError
    from governance.settings import UNREACHABLE_SECTION, redact

    try:
        conn = psycopg2.connect(dsn or db_dsn(conn_id))
    except Exception as exc:  # the hook raises several types; the message must name the connection
        raise InfrastructureError(
            f"cannot open the Airflow connection '{conn_id}' (postgres): {type(exc).__name__}: "
            f"{redact(str(exc).splitlines()[0]) if str(exc) else ''}. Fix it under Admin > Connections or "
            f"AIRFLOW_CONN_{conn_id.upper()}; see {UNREACHABLE_SECTION}."
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


def db_dsn(conn_id: str = AIRFLOW_DB_CONN_ID) -> str:
    """A libpq DSN (key=value) for the connection ``conn_id``, for clients that open their own
    connections (the audit's GX data source). Unlike a URL it carries a unix-socket host
    (``host=/var/run/postgresql``) as is."""
    from airflow.sdk import Connection
    from psycopg2.extensions import make_dsn

    conn = Connection.get(conn_id)
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


def s3_client() -> S3Client:
    """A boto3 S3 client from the Airflow connection ``governance_s3`` (endpoint_url in extra)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    client: S3Client = S3Hook(aws_conn_id=AIRFLOW_S3_CONN_ID).get_conn()
    return client


def lazy_s3_client() -> S3Client:
    """``s3_client()`` created at its first use (``governance.objectstore.LazyClient``): a sweep task
    whose rule never touches objects runs without the S3 connection, and an unreachable endpoint
    fails only the rules that need it (#9)."""
    from typing import cast

    from governance.objectstore import LazyClient

    return cast("S3Client", LazyClient(s3_client))


def smtp_server() -> SmtpServer:
    """Host, port and security of the Airflow connection ``governance_smtp``, for the library's own
    mail (breach notices, SEC-2), read as the SMTP provider reads it: implicit TLS unless
    ``extra.disable_ssl``, then STARTTLS unless ``extra.disable_tls``."""
    from airflow.sdk import Connection

    from governance.breach import SmtpServer
    from governance_airflow.defaults import SMTP_CONN_ID

    conn = Connection.get(SMTP_CONN_ID)
    extra = conn.extra_dejson or {}
    use_ssl = not bool(extra.get("disable_ssl", False))
    return SmtpServer(
        host=conn.host or "localhost",
        port=int(conn.port or (465 if use_ssl else 25)),
        use_ssl=use_ssl,
        starttls=not use_ssl and not bool(extra.get("disable_tls", False)),
        login=conn.login or None,
        password=conn.password or None,
        timeout=float(extra.get("timeout", 30)),
    )


def recipient_pseudonym_key() -> PseudonymKey:
    """The recipient pseudonym key (TP-5 notices): the password of the Airflow connection
    ``governance_recipient_pseudonym`` when defined, else ``GOVERNANCE_RECIPIENT_PSEUDONYM_KEY``;
    SettingsError naming both when neither is set."""
    from governance.notices.pseudonyms import AIRFLOW_PSEUDONYM_CONN_ID, pseudonym_key

    conn = optional_connection(AIRFLOW_PSEUDONYM_CONN_ID)
    return pseudonym_key(conn.password if conn is not None and conn.password else None)


class AirflowSecrets:
    """Recipient secrets (TP-5 signing secrets, public JWKs) by connection id: the password of the
    Airflow connection, else ``GOVERNANCE_SECRET_<ID>``; SettingsError naming both."""

    def get(self, conn_id: str) -> str:
        from governance.notices.secrets import EnvSecrets

        conn = optional_connection(conn_id)
        if conn is not None and conn.password:
            return str(conn.password)
        return EnvSecrets().get(conn_id)
