"""Who may call the request API: Airflow's own authentication and authorisation, as its core API
applies them (``airflow.api_fastapi.core_api.security``), never a second user store.

Every route needs a caller Airflow authenticated (``get_user``: a JWT from ``POST /auth/token`` as
``Authorization: Bearer``, or the UI's session cookie): without one Airflow answers 401, with an
invalid one 403, with an expired one 401. Permissions are the auth manager's on the DAG that
answers the requests, ``subject_requests``: reading requests needs GET on it (SimpleAuthManager:
the viewer role and up), opening or moving one on needs PUT on it (editing the DAG's work;
SimpleAuthManager: the user role and up; FAB: ``can_edit`` on ``DAG:subject_requests``).
The acting user recorded in the ledger is the authenticated one, never a name from the body.
"""

from __future__ import annotations

from typing import Annotated

from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from fastapi import Depends

# The DAG whose permissions guard the requests (it picks verified requests up and answers them).
REQUESTS_DAG_ID = "subject_requests"

read_requests = Depends(requires_access_dag("GET", param_dag_id=REQUESTS_DAG_ID))
write_requests = Depends(requires_access_dag("PUT", param_dag_id=REQUESTS_DAG_ID))


def acting_user(user: GetUserDep) -> str:
    """The authenticated caller's name as the auth manager gives it (the ledger's opened_by, verified_by)."""
    return user.get_name()


ActingUser = Annotated[str, Depends(acting_user)]
