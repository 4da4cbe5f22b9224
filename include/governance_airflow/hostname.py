"""The host name a task instance records (``[core] hostname_callable``): ``$GOVERNANCE_WORKER_NAME``
when set, else the machine's FQDN as Airflow's default gives it.

Several Celery workers on one machine (``make airflow-celery``, the Celery test) each set their own
name (``worker1@host``), so the UI and ``task_instance.hostname`` say which worker ran a task; on
separate machines or pods the variable is unset and nothing changes.
"""

from __future__ import annotations

import os
import socket

WORKER_NAME_ENV = "GOVERNANCE_WORKER_NAME"


def worker_hostname() -> str:
    """This process's worker name, else the FQDN."""
    return os.environ.get(WORKER_NAME_ENV) or socket.getfqdn()
