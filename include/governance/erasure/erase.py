"""Erasure of one verified person (ERA-1): every record the data map reaches, in PostgreSQL and the
object store, except what the law obliges the shop to keep (RET-8).

``erase_person`` works a request of kind ``erasure`` that ``requests.start`` put in progress (it
refuses unverified ones, REQ-1): the person from the ledger's account id and the address the person
gave (``resolve_subject``); their records recorded (``erasure.work``); then store by store, children
first (``erasure.plan``), batches that delete, anonymise (the RET-8 order records) or purge objects
then rows, keeping what a legal hold in force keeps (``erasure.batches``, ``erasure.objects``). The
outcome is counts per table, never a record's content. Rerunning it finishes an interrupted
erasure; it never erases twice.

An account deletion (RET-7) is an erasure of the categories the person chose to delete: the
stores of the kept ones are planned ``keep`` (``keep_categories``, by default the request's
choices) and left under their retention rules; the account, when its category is kept, is marked
deleted (``erasure.account``: the RET-2 clock starts).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from psycopg2.extensions import connection

from governance.db import transaction
from governance.erasure.account import mark_accounts_deleted
from governance.erasure.batches import BATCH_SIZE, Eraser, anonymise_all, delete_all
from governance.erasure.objects import purge_all
from governance.erasure.plan import StorePlan, erasure_plan
from governance.erasure.work import dry_run, record_work
from governance.errors import ErasureFailed, RequestError
from governance.notices.pseudonyms import PseudonymKey, pseudonym_key
from governance.person.subject import Subject, resolve_subject
from governance.policy import Policy
from governance.requests import SubjectRequest, contact, fetch
from governance.requests.scope import kept_categories
from governance.sweep.held import Holds
from governance.windows import as_utc

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

ERASURE_KINDS = ("erasure", "account_deletion")  # ERA-1; RET-7: an erasure of the categories chosen


def kept_by(policy: Policy, request: SubjectRequest) -> list[str]:
    """The categories the request leaves as they are: an account deletion's all but those chosen
    ``delete`` (RET-7, ``requests.scope.kept_categories``); none for an erasure."""
    return kept_categories(policy, request.kind, request.choices)


def request_keeps(conn: connection, policy: Policy, request_id: int) -> list[str]:
    with transaction(conn, read_only=True) as cur:
        return kept_by(policy, fetch(cur, request_id))


@dataclass
class ErasureOutcome:
    """What an erasure did, per table: deleted, anonymised, held, kept, tombstoned, object versions."""

    request_id: int
    tables: dict[str, dict[str, int]] = field(default_factory=dict)

    def total(self, name: str) -> int:
        return sum(counts.get(name, 0) for counts in self.tables.values())

    def flat(self) -> dict[str, int]:
        """``table.count`` -> n, the non-zero ones: a request's outcome (counts only)."""
        return {f"{table}.{name}": n for table, counts in self.tables.items() for name, n in counts.items() if n}


def subject_of(
    conn: connection, policy: Policy, request_id: int, *, states: tuple[str, ...] = ("in_progress",)
) -> Subject:
    """The person of an erasure request in one of ``states``, from its account id and the address given."""
    with transaction(conn, read_only=True) as cur:
        request = fetch(cur, request_id)
        if request.kind not in ERASURE_KINDS:
            raise RequestError(f"request {request_id} is a request of kind {request.kind}, not an erasure")
        if request.state not in states:
            raise RequestError(
                f"request {request_id} is {request.state}: this needs a request that is {' or '.join(states)} "
                f"(verify it first: governance request verify {request_id} --by WHO --method METHOD)"
            )
        email = contact(cur, request_id).subject_email
        return resolve_subject(cur, policy, account_id=request.account_id, email=email)


def erase_person(
    conn: connection,
    s3: S3Client | None,
    policy: Policy,
    request_id: int,
    *,
    now: datetime,
    batch_size: int = BATCH_SIZE,
    keep_categories: Collection[str] | None = None,
    key: PseudonymKey | None = None,
) -> ErasureOutcome:
    """Erase the person of request ``request_id`` (in progress), batch by batch, except the stores
    of ``keep_categories`` (default: the request's, ``kept_by``); see the module. ``key``: the
    recipient pseudonym key naming the person in the notices (TP-5; default from the environment)."""
    now = as_utc(now)
    if key is None and policy.recipients:
        key = pseudonym_key()  # a missing key is refused before anything is erased
    subject = subject_of(conn, policy, request_id)
    keep = request_keeps(conn, policy, request_id) if keep_categories is None else sorted(keep_categories)
    with transaction(conn, read_only=True) as cur:
        plans = erasure_plan(cur, policy, keep_categories=keep)
    record_work(conn, policy, plans, request_id, subject, now=now, key=key)
    eraser = Eraser(conn, policy, request_id, Holds.at(conn, now, policy), now, batch_size)
    outcome = ErasureOutcome(request_id)
    for plan in plans:
        outcome.tables[plan.table] = erase_store(eraser, plan, s3)
    _kept_and_failed(conn, outcome)
    marked = mark_accounts_deleted(conn, policy, plans, request_id, now=now)
    for table, n in marked.items():
        outcome.tables.setdefault(table, {})["marked_deleted"] = n
    return outcome


def erase_store(eraser: Eraser, plan: StorePlan, s3: S3Client | None) -> dict[str, int]:
    """The store's recorded records erased as its plan says (the replay's too); counts."""
    if plan.disposition == "keep":
        return {}
    if plan.disposition == "anonymise":
        return anonymise_all(eraser, plan)
    return purge_all(eraser, plan, s3) if plan.purges_objects else delete_all(eraser, plan)


def _kept_and_failed(conn: connection, outcome: ErasureOutcome) -> None:
    """Add the records kept (dependents of anonymised ones, open requests' copies) and held to the
    outcome, from the recorded set; raise ErasureFailed for records whose objects did not go."""
    with transaction(conn, read_only=True) as cur:
        cur.execute(
            "SELECT table_name, disposition, state, count(*) FROM governance.erasure_work "
            "WHERE request_id = %s GROUP BY 1, 2, 3",
            (outcome.request_id,),
        )
        rows = cur.fetchall()
    stuck: Counter[str] = Counter()
    for table, disposition, state, n in rows:
        counts = outcome.tables.setdefault(str(table), {})
        if disposition == "keep":
            counts["kept"] = int(n)
        elif state == "held":
            counts["held"] = int(n)  # all of the run's, also those an earlier run found held
        elif state in ("pending", "purging"):
            stuck[str(table)] += int(n)
    if stuck:
        left = ", ".join(f"{table}: {n}" for table, n in sorted(stuck.items()))
        raise ErasureFailed(
            f"erasure of request {outcome.request_id} is not finished; records left ({left}): their objects "
            "could not be deleted (see the erasure_batch evidence's object_error_codes); fix the object store's "
            "permissions or locks and run the erasure again (docs/runbook.md 'Erasure not finished or its check failed')"
        )


def preview(
    conn: connection, policy: Policy, request_id: int, *, now: datetime, keep_categories: Collection[str] | None = None
) -> dict[str, dict[str, int]]:
    """What ``erase_person`` would do now (table -> delete/anonymise/keep/held counts), changing nothing."""
    subject = subject_of(conn, policy, request_id, states=("verified", "in_progress"))
    keep = request_keeps(conn, policy, request_id) if keep_categories is None else sorted(keep_categories)
    with transaction(conn, read_only=True) as cur:
        plans = erasure_plan(cur, policy, keep_categories=keep)
    return dry_run(conn, policy, plans, subject, Holds.at(conn, as_utc(now), policy))
