"""Where the database and the object store are, with errors that say which setting to fix.

Precedence, highest first: an explicit argument (CLI flags ``--db-url``/``--s3-endpoint-url``),
then the environment (``GOVERNANCE_DB_URL``, ``GOVERNANCE_S3_ENDPOINT_URL``). In Airflow the
same come from the connections ``governance_db`` (postgres) and ``governance_s3`` (aws); see
``include/governance_airflow/connections.py``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from governance.errors import SettingsError as SettingsError  # re-exported for older imports

DB_URL_ENV = "GOVERNANCE_DB_URL"
S3_ENDPOINT_ENV = "GOVERNANCE_S3_ENDPOINT_URL"
S3_REGION_ENV = "GOVERNANCE_S3_REGION"
POLICY_ENV = "GOVERNANCE_POLICY"
AIRFLOW_DB_CONN_ID = "governance_db"
# The audit's own connection, a login in the auditor role (SEC-4); without it the audit uses governance_db.
AIRFLOW_DB_AUDIT_CONN_ID = "governance_db_audit"
AIRFLOW_S3_CONN_ID = "governance_s3"
# The runbook section every "cannot reach the database / object store" message points at.
UNREACHABLE_SECTION = "docs/runbook.md, 'Database or S3 unreachable'"
# SEC-3: personal data stays inside the EEA; the default region says so.
DEFAULT_REGION = "eu-north-1"


@dataclass(frozen=True)
class Settings:
    db_url: str | None
    s3_endpoint_url: str | None
    s3_region: str = DEFAULT_REGION
    db_source: str = ""
    s3_source: str = ""

    def require_db_url(self) -> str:
        if not self.db_url:
            raise SettingsError(
                f"no database configured: pass --db-url postgresql://USER@HOST:PORT/DB or set {DB_URL_ENV} "
                f"(in Airflow: the postgres connection '{AIRFLOW_DB_CONN_ID}')"
            )
        return self.db_url


def resolve(db_url: str | None = None, s3_endpoint_url: str | None = None) -> Settings:
    db_source = "--db-url" if db_url else (DB_URL_ENV if os.environ.get(DB_URL_ENV) else "")
    s3_source = "--s3-endpoint-url" if s3_endpoint_url else (S3_ENDPOINT_ENV if os.environ.get(S3_ENDPOINT_ENV) else "")
    return Settings(
        db_url=db_url or os.environ.get(DB_URL_ENV) or None,
        s3_endpoint_url=s3_endpoint_url or os.environ.get(S3_ENDPOINT_ENV) or None,
        s3_region=os.environ.get(S3_REGION_ENV, DEFAULT_REGION),
        db_source=db_source,
        s3_source=s3_source,
    )


# SEC-1 (#9): every form a connection target takes in a message. A URL's user-info password
# (up to the last '@' of the authority), and ``password=VALUE`` as a URL query parameter, a libpq
# key=value pair (quoted or not) or a JSON/YAML key.
_URL_PASSWORD = re.compile(r"""(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^\s'"]*(?P<tail>@)""", re.IGNORECASE)
_KEY_PASSWORD = re.compile(
    r"""(?P<head>["']?\b(?:ssl)?(?:password|passwd|pwd)["']?\s*[=:]\s*)"""
    r"""(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s&;,'"}]+)""",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """Text safe to print, log or e-mail: the password of every DSN or URL in it replaced by ***."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}***{m['tail']}", text)
    return _KEY_PASSWORD.sub(lambda m: f"{m['head']}***", text)


def redact_url(url: str) -> str:
    """A connection target safe to print (any DSN form): the password is never shown."""
    return redact(url)
