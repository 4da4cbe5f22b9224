"""
### subject_requests — answer verified data-subject requests (REQ-1; ACC-1, POR-1, ERA-1, RET-7, REC-1)

Every 15 minutes, and on demand for one request (trigger with conf `{"request_id": ID}`):

- **check_policy**: the policy validates and every table it names exists (the shared task; fails at once).
- **pick**: verified or in-progress requests of the kinds with a handler (`governance.requests.handlers`:
  access, portability, erasure, account_deletion, rectification, restriction, objection,
  consent_withdrawal), earliest deadline first (a rectification
  once its corrections are recorded with `governance request rectify ID --set ...`); with `request_id` that one, failing at once when it is
  not verified (nothing is disclosed for a request whose identity was not checked).
- **answer** (mapped, one per request id): the kind's handler. Access and portability: the person's records
  in every store of the data map and their photos, from one snapshot, as one ZIP in the exports bucket (SSE,
  in the EEA); the link (presigned, 7 days) e-mailed to the answer address; the request completed with its
  counts. Erasure (ERA-1, #11): every record of the person erased or anonymised in set-based batches, held
  records kept, then an independent check before completion, which queues a notice per recipient of an erased
  category (TP-5). Account deletion (RET-7): the same for the categories the person chose to delete; the kept
  ones stay under their retention rules, the account marked deleted when its category is kept. Rectification
  (REC-1): the recorded corrections applied, with the recipients' notices. The recipient pseudonym key comes
  from the Airflow connection `governance_recipient_pseudonym`, read only by these kinds. Each step commits
  with its evidence; a rerun resumes (no second archive, no second erasure, no second notice).
  Restriction, objection, consent withdrawal (RES-1, OBJ-1, MKT-1, CON-1, #11): the request's purposes
  entered in the processing register, the policy's `switch_off` applied to the person's rows, for a
  restriction a person hold (decision RES-1), the recipients' notices queued, completed; one transaction.
- **summary**: picked and completed; fails, naming the ids, when one is still open.

Logs and XComs carry request ids and counts, never the person, the address or the link.

**On failure**: an object store or mail server that cannot be reached is retried with backoff; anything
else fails at once naming the request and what to fix: docs/runbook.md, 'An export failed'. A request
that stays open is reported near and past its deadline by `request_deadlines`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import CronTriggerTimetable, Param, dag, task

import governance_airflow

governance_airflow.load_policy()  # a bad policy file is an import error (CONTRIBUTING.md habit 3)


@task
def pick(**context) -> list[int]:
    """The ids of the requests to answer in this run (ids only)."""
    from contextlib import closing

    from airflow.sdk.exceptions import AirflowFailException

    from governance.db import transaction
    from governance.errors import RequestError
    from governance.requests import workable
    from governance.requests.handlers import answerable, handled_kinds

    one = context["params"].get("request_id")
    with closing(governance_airflow.db_connection()) as conn, transaction(conn, read_only=True) as cur:
        try:
            picked = workable(cur, handled_kinds()) if one is None else [answerable(cur, int(one))]
        except RequestError as exc:  # not verified, closed, a kind without a handler, no such request
            raise AirflowFailException(str(exc)) from None
    print(f"requests to answer: {picked}")
    return picked


@task(map_index_template="request {{ request_id }}")
def answer(request_id: int, **context) -> dict:
    """Run the handler of one request's kind; returns its id and counts."""
    from contextlib import closing

    from airflow.sdk.exceptions import AirflowFailException

    from governance.errors import GovernanceError
    from governance.requests.handlers import answer as handle

    context["request_id"] = request_id  # shown as the map index
    policy, now = governance_airflow.load_policy(), governance_airflow.run_now(context)
    governance_airflow.export_evidence_key()  # the erasure ledger's entries are signed with it (ERA-1)
    with closing(governance_airflow.db_connection()) as conn:
        governance_airflow.lineage.report_request(conn, policy, request_id)  # tables read, bucket written (#14)
        try:
            counts = handle(
                conn,
                governance_airflow.s3_client(),
                governance_airflow.smtp_server(),
                policy,
                request_id,
                now=now,
                key=governance_airflow.recipient_pseudonym_key,  # TP-5: read only by the kinds that notify
            )
        except GovernanceError as exc:
            if exc.retryable:
                raise
            raise AirflowFailException(str(exc)) from None
    print(f"request {request_id} answered: {counts}")  # counts only
    return {"request_id": request_id, **counts}


@task(trigger_rule="all_done_min_one_success")  # after every answer, failed or not; not when pick failed
def summary(picked: list[int], answered: list[dict]) -> dict:
    """Picked, completed, still open; fails naming the requests not completed."""
    from contextlib import closing

    from airflow.sdk.exceptions import AirflowFailException

    from governance.db import transaction
    from governance.requests import fetch

    with closing(governance_airflow.db_connection()) as conn, transaction(conn, read_only=True) as cur:
        still_open = [i for i in picked if fetch(cur, i).state != "completed"]
    results = [r for r in answered or [] if r]
    totals = {key: sum(int(r.get(key, 0)) for r in results) for key in ("records", "objects", "bytes")}
    done = {"picked": len(picked), "completed": len(picked) - len(still_open), **totals}
    print(f"requests answered: {done}; still open: {still_open}")
    if still_open:
        raise AirflowFailException(
            f"request(s) {still_open} not completed in this run; see their answer task's log and "
            "docs/runbook.md, 'An export failed'"
        )
    return done


@dag(
    dag_id="subject_requests",
    schedule=CronTriggerTimetable("*/15 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=governance_airflow.default_args(),
    params={
        "request_id": Param(None, type=["null", "integer"], minimum=1, description="Answer this request only."),
    },
    tags=[
        "governance",
        "gdpr",
        "requests",
        "REQ-1",
        "ACC-1",
        "POR-1",
        "ERA-1",
        "RET-7",
        "REC-1",
        "RES-1",
        "OBJ-1",
        "CON-1",
    ],
    doc_md=__doc__,
)
def subject_requests():
    picked = pick()
    governance_airflow.check_policy() >> picked
    summary(picked, answer.expand(request_id=picked))


subject_requests()
