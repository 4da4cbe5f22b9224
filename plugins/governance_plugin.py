"""The governance plugin: the request API (REQ-1) and the Governance page (#13) mounted in Airflow's
API server under /governance, and the page linked from Airflow's navigation as an external view
(shown inside the UI at /plugin/governance, an iframe of /governance/view/now; both under Airflow's
base path when it has one, ``[api] base_url``).

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
    return [{"app": app, "url_prefix": URL_PREFIX, "name": "governance: data-subject requests and the Governance page"}]


# A shield, inline (no file to serve, nothing fetched).
_ICON = (
    "data:image/svg+xml;utf8,<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 24 24' fill='none' "
    "stroke='%2357606a' stroke-width='2' stroke-linecap='round' stroke-linejoin='round'>"
    "<path d='M12 22s8-4 8-10V5l-8-3-8 3v7c0 6 8 10 8 10z'/><path d='M9 12l2 2 4-4'/></svg>"
)
EXTERNAL_VIEWS = [
    {
        "name": "Governance",
        # Relative (no leading slash): the UI resolves it against Airflow's base URL, so the page is
        # found under a base path (AIRFLOW__API__BASE_URL=https://host/airflow) as at the root.
        "href": "governance/view/now",
        "destination": "nav",
        "url_route": "governance",
        "nav_top_level": True,
        "icon": _ICON,
    }
]


class GovernancePlugin(AirflowPlugin):
    name = "governance"
    external_views = EXTERNAL_VIEWS

    @property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]  # built on first read
        return _fastapi_apps()
