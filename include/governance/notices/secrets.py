"""Where a recipient's secrets come from (TP-2, TP-5): the webhook signing secret and the public
encryption key named by the policy (``signing_secret_conn``, ``encryption_key_conn``) are read by
connection id, never from the policy file. In Airflow, ``governance_airflow.connections`` reads the
connection's password; outside it (the CLI, tests) ``EnvSecrets`` reads ``GOVERNANCE_SECRET_<ID>``.
"""

from __future__ import annotations

import os
from typing import Protocol

from governance.errors import SettingsError

ENV_PREFIX = "GOVERNANCE_SECRET_"


class Secrets(Protocol):
    """A secret by connection id; SettingsError naming where to set it when there is none."""

    def get(self, conn_id: str) -> str: ...


def env_name(conn_id: str) -> str:
    return f"{ENV_PREFIX}{conn_id.upper()}"


def missing(conn_id: str) -> SettingsError:
    return SettingsError(
        f"no secret for the connection '{conn_id}': set the password of the Airflow connection '{conn_id}' "
        f"or the environment variable {env_name(conn_id)}; never in the policy file"
    )


class EnvSecrets:
    """Secrets from the environment: ``GOVERNANCE_SECRET_<CONN_ID>``."""

    def get(self, conn_id: str) -> str:
        value = os.environ.get(env_name(conn_id))
        if not value:
            raise missing(conn_id)
        return value
