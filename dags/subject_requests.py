"""
### subject_requests — answer verified data-subject requests (REQ-1; ACC-1, POR-1)

Every 15 minutes, and on demand for one request (trigger with conf `{"request_id": ID}`):

- **check_policy**: the policy validates and every table it names exists (the shared task; fails at once).
- **pick**: the verified or in-progress requests of the kinds with a handler (`governance.requests.handlers`:
  access, portability), earliest deadline first. With `request_id`, that request only; one that is not
  verified fails at once: nothing is disclosed for a request whose identity was not checked.
- **answer** (one mapped task per request; the map index is the request id): the kind's handler. For access
  and portability: the request goes `in_progress`; the person's records in every store of the data map and
  their photos and texts are streamed, from one snapshot, into one ZIP in the exports bucket (SSE, in the
  EEA); the download link (presigned, 7 days) is e-mailed to the request's answer address; the request is
  completed with its counts. Each step commits with its evidence; a rerun resumes (no second archive).
- **summary**: how many were picked and completed; fails, naming the ids, when one is still open.

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
ANSWERABLE = ("verified", "in_progress", "completed")  # completed: a rerun returns its outcome


@task
def pick(**context) -> list[int]:
    """The ids of the requests to answer in this run (ids only)."""
    from contextlib import closing

    from airflow.sdk.exceptions import AirflowFailException

    from governance.db import transaction
    from governance.errors import RequestError
    from governance.requests import fetch, workable
    from governance.requests.handlers import handled_kinds

    one = context["params"].get("request_id")
    with closing(governance_airflow.db_connection()) as conn, transaction(conn, read_only=True) as cur:
        if one is None:
            picked = workable(cur, handled_kinds())
        else:
            try:
                request = fetch(cur, int(one))
            except RequestError as exc:
                raise AirflowFailException(str(exc)) from None
            if request.kind not in handled_kinds() or request.state not in ANSWERABLE:
                raise AirflowFailException(
                    f"request {request.request_id} ({request.kind}) is {request.state}: only verified requests of "
                    f"the kinds {', '.join(handled_kinds())} are answered; see `governance request show "
                    f"{request.request_id}` (a received one needs `governance request verify` first)"
                )
            picked = [request.request_id]
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
    with closing(governance_airflow.db_connection()) as conn:
        try:
            counts = handle(
                conn,
                governance_airflow.s3_client(),
                governance_airflow.smtp_server(),
                governance_airflow.load_policy(),
                request_id,
                now=governance_airflow.run_now(context),
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
    tags=["governance", "gdpr", "requests", "REQ-1", "ACC-1", "POR-1"],
    doc_md=__doc__,
)
def subject_requests():
    picked = pick()
    governance_airflow.check_policy() >> picked
    summary(picked, answer.expand(request_id=picked))


subject_requests()
