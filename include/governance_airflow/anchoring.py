"""The ``anchor_evidence`` teardown both DAGs end with: the evidence chain's head written outside
the database after every run, successful or not (SEC-1; governance.anchors). A teardown does not
decide the run's state; when it fails, the failure notifier tells on-call.
"""

from __future__ import annotations

from contextlib import closing
from typing import Any

from governance_airflow.connections import db_connection, optional_connection, s3_client
from governance_airflow.tasks import load_policy


def evidence_key() -> bytes | None:
    """The evidence key: the Airflow variable ``governance_evidence_key``, else the password of the
    connection of that name, else $GOVERNANCE_EVIDENCE_KEY; None when none is set. Never logged."""
    from airflow.sdk import Variable

    from governance.anchors import AIRFLOW_EVIDENCE_KEY
    from governance.anchors import evidence_key as from_secret

    secret = Variable.get(AIRFLOW_EVIDENCE_KEY, default=None)
    if not secret:
        connection = optional_connection(AIRFLOW_EVIDENCE_KEY)
        secret = connection.password if connection is not None else None
    return from_secret(secret or None)


def export_evidence_key() -> None:
    """Put the evidence key in this task's environment ($GOVERNANCE_EVIDENCE_KEY, unless set), where
    the library reads it: the erasure ledger's entries are signed with it (ERA-1). Never logged."""
    import os

    from governance.anchors import EVIDENCE_KEY_ENV

    if not os.environ.get(EVIDENCE_KEY_ENV):
        key = evidence_key()
        if key is not None:
            os.environ[EVIDENCE_KEY_ENV] = key.decode()


def anchor_evidence() -> Any:
    """The teardown task: anchor the head; returns ids, counts and the hash (never personal data)."""
    from airflow.sdk import task

    @task(task_id="anchor_evidence")
    def anchor(**context: Any) -> dict[str, Any]:
        """Write the evidence chain's head to the Object Lock bucket (SEC-1), after every run."""
        from governance.anchors import anchor_evidence as write

        store = load_policy().object_store
        if not store.evidence_anchor_bucket:
            print("not anchored: the policy names no object_store.evidence_anchor_bucket")
            return {}
        with closing(db_connection()) as conn:
            result = write(
                conn,
                s3_client(),
                evidence_key(),
                store.evidence_anchor_bucket,
                run_id=f"{context['dag'].dag_id}/{context['run_id']}",
                retention_days=store.evidence_anchor_retention_days,
            )
        summary = {k: v for k, v in result.to_dict().items() if k != "mac"} | {"authenticated": bool(result.mac)}
        print(f"anchored: {summary}")
        return summary

    return anchor().as_teardown()
