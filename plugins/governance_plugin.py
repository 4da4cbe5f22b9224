"""The governance plugin: the request API (REQ-1) mounted in Airflow's API server under /governance.

The app is ``governance_airflow.api.app``; this file only registers it. Every Airflow component
imports plugin files (a task runner for macros, the scheduler for timetables), so the app and
the API server's security imports are built only when something asks for ``fastapi_apps``: the
API server when it mounts plugin apps, and ``airflow plugins``. An app that cannot be built is
logged and left out, as Airflow leaves out a plugin file that fails to import: the API server
(which also serves the tasks' execution API) keeps running without /governance (its paths then
fall through to the UI's pages: look for the error in the API server's log).
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

from airflow.plugins_manager import AirflowPlugin

log = logging.getLogger(__name__)


@cache
def _fastapi_apps() -> list[dict[str, Any]]:
    try:
        from governance_airflow.api.app import URL_PREFIX, create_app

        app = create_app()
    except Exception:
        log.exception("the governance request API could not be built and is not served; fix the error below")
        return []
    return [{"app": app, "url_prefix": URL_PREFIX, "name": "governance: data-subject requests"}]


class GovernancePlugin(AirflowPlugin):
    name = "governance"

    @property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]  # built on first read
        return _fastapi_apps()
