"""An erasure's batches (ERA-1): one set-based statement per store per batch over the recorded
records (``governance.erasure_work``), each in its own short transaction with its evidence.

A batch takes up to ``batch_size`` pending records of one store and, in one statement, deletes,
anonymises (RET-8 masking) or tombstones (``state = 'purging'``, objects next: ``governance.erasure.objects``) those
no legal hold keeps, and marks each recorded record done, held or purging.
A batch commits with its evidence (kind ``erasure_batch``, run ``request-<id>``, step
``<table>:<action>`` numbered step#n, counts only) or not at all, so a rerun after a crash
continues with what is still pending and never records a batch twice. Transient errors are retried
(``governance.retry``). A replay (``governance.erasure.replay``) uses the same batches over its own
temporary work table, or, for a store without objects, straight from a selection (``Eraser.selection``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg2 import sql
from psycopg2.extensions import connection, cursor

from governance import evidence
from governance.db import ident, transaction
from governance.erasure.plan import StorePlan, held_sql
from governance.erasure.work import run_id
from governance.errors import BatchFailed
from governance.policy import Policy
from governance.retry import BATCH_RETRIES, retry_transient
from governance.sweep.actions.anonymise import mask_assignments
from governance.sweep.held import Holds

KIND_BATCH = "erasure_batch"
BATCH_SIZE = 1000

WORK_TABLE = "governance.erasure_work"  # a replay works a temporary table of the same shape
_PENDING = (
    "SELECT w.record_key FROM {work} w WHERE w.request_id = %(request)s "
    "AND w.table_name = %(table)s AND w.state = 'pending' AND w.disposition = %(disposition)s AND {only} "
    "ORDER BY w.record_key LIMIT %(batch)s FOR UPDATE"
)
# Each recorded record of the batch: 'done' once changed (or already gone), 'held' when a hold kept
# it, or the state the change leaves it in ('purging' for a tombstone).
_MARK = (
    "UPDATE {work} w SET state = CASE WHEN c.record_key IS NOT NULL THEN {changed_state} "
    "WHEN p.record_key IS NOT NULL THEN 'held' ELSE 'done' END "
    "FROM b LEFT JOIN changed c USING (record_key) LEFT JOIN present p USING (record_key) "
    "WHERE w.request_id = %(request)s AND w.table_name = %(table)s AND w.record_key = b.record_key "
    "RETURNING c.record_key IS NOT NULL, p.record_key IS NOT NULL AND c.record_key IS NULL"
)


@dataclass
class Eraser:
    """One request's erasure (or a replay's, ``governance.erasure.replay``): where it writes, the
    holds in force, its instant and batch size; the recorded records' table (``work_table``, its
    rows of ``request_id``) and how its evidence is named (``kind``, ``run_name``, ``details``)."""

    conn: connection
    policy: Policy
    request_id: int
    holds: Holds
    now: datetime
    batch_size: int = BATCH_SIZE
    work_table: str = WORK_TABLE
    kind: str = KIND_BATCH
    run_name: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    # A replay's stores without objects: each batch takes its records straight from this condition on
    # ``t`` (given the batch's parameters), none recorded; the batches end with a short one.
    selection: Callable[[StorePlan, dict[str, Any]], sql.Composable] | None = None
    # A replay's stores with objects: list the objects before the tombstone, and delete the rows of
    # the records whose objects are all gone (as after a restore) without it (ADR 0004).
    list_first: bool = False

    def __post_init__(self) -> None:
        self.run_name = self.run_name or run_id(self.request_id)
        self.details = self.details or {"request_id": self.request_id}

    @property
    def work(self) -> sql.Composable:
        return ident(self.work_table)

    def run(
        self, plan: StorePlan, action: str, work: Callable[[cursor], dict[str, int]], **extra: Any
    ) -> dict[str, int]:
        """One batch: ``work`` then its evidence when it changed anything, committed together."""

        def attempt() -> dict[str, int]:
            with transaction(self.conn, durable=True) as cur:
                counts = work(cur)
                if any(counts.values()):
                    evidence.append(
                        cur,
                        kind=self.kind,
                        run_id=self.run_name,
                        step=f"{plan.table}:{action}",
                        requirements=["ERA-1", "RET-8"] if action == "anonymise" or counts.get("held") else ["ERA-1"],
                        as_of=self.now,
                        policy_version=self.policy.version or None,
                        counts=counts,
                        details={**self.details, "table": plan.table, "action": action, **extra},
                        numbered=True,
                    )
            return counts

        def give_up(exc: Exception) -> BatchFailed:
            return BatchFailed(
                f"erasure {self.run_name}, table {plan.table}: {type(exc).__name__} "
                f"{BATCH_RETRIES + 1} times (the shop holds locks); run the erasure again"
            )

        return retry_transient(attempt, give_up)

    def left(self, params: dict[str, Any], state: str) -> bool:
        """Whether recorded records of the batch's store and disposition are still in ``state``."""
        with transaction(self.conn, read_only=True) as cur:
            cur.execute(
                sql.SQL(
                    "SELECT EXISTS (SELECT 1 FROM {work} WHERE request_id = %(request)s "
                    "AND table_name = %(table)s AND state = %(state)s AND disposition = %(disposition)s)"
                ).format(work=self.work),
                {**params, "state": state},
            )
            row = cur.fetchone()
        return bool(row and row[0])

    def params(self, plan: StorePlan, disposition: str) -> dict[str, Any]:
        return {
            "request": self.request_id,
            "table": plan.table,
            "disposition": disposition,
            "batch": self.batch_size,
            "now": self.now,
        }

    def statement(
        self,
        plan: StorePlan,
        change: sql.Composable,
        changed_state: str,
        params: dict[str, Any] | None = None,
        only: sql.Composable | None = None,
    ) -> sql.Composable:
        """WITH b (the batch), present (its rows still there), changed (``change``) -> mark them;
        with a ``selection``, b from it and each row of b changed or (a hold kept it) held; ``only``:
        a condition on the recorded records (alias ``w``) the batch is limited to."""
        if self.selection is not None:
            return sql.SQL(_DIRECT).format(
                key=sql.Identifier(plan.key),
                table=ident(plan.table),
                selection=self.selection(plan, params if params is not None else {}),
                change=change,
            )
        return sql.SQL("WITH b AS ({pending}), present AS ({present}), changed AS ({change}) {mark}").format(
            pending=sql.SQL(_PENDING).format(work=self.work, only=only if only is not None else sql.SQL("true")),
            present=sql.SQL("SELECT t.{key}::text AS record_key FROM {table} t JOIN b ON {match}").format(
                key=sql.Identifier(plan.key), table=ident(plan.table), match=self.match(plan)
            ),
            change=change,
            mark=sql.SQL(_MARK).format(work=self.work, changed_state=sql.Literal(changed_state)),
        )

    def match(self, plan: StorePlan) -> sql.Composable:
        return sql.SQL("t.{key} = CAST(b.record_key AS {type})").format(
            key=sql.Identifier(plan.key), type=sql.SQL(plan.key_type)
        )

    def batch(
        self, plan: StorePlan, action: str, params: dict[str, Any], statement: sql.Composable, **extra: Any
    ) -> tuple[int, int]:
        """Run one batch statement (``extra``: more details for its evidence); (records changed, records held)."""

        def work(cur: cursor) -> dict[str, int]:
            cur.execute(statement, params)
            rows = cur.fetchall()
            return {_LABELS[action]: sum(1 for c, _ in rows if c), "held": sum(1 for _, h in rows if h)}

        counts = self.run(plan, action, work, **extra)
        return counts[_LABELS[action]], counts["held"]


_DIRECT = (
    "WITH b AS (SELECT t.{key}::text AS record_key FROM {table} t WHERE {selection} ORDER BY t.{key} "
    "LIMIT %(batch)s FOR UPDATE OF t), changed AS ({change}) "
    "SELECT c.record_key IS NOT NULL, c.record_key IS NULL FROM b LEFT JOIN changed c USING (record_key)"
)
_LABELS = {"delete": "deleted", "anonymise": "anonymised", "tombstone": "tombstoned"}


def delete_statement(
    eraser: Eraser, plan: StorePlan, params: dict[str, Any], only: sql.Composable | None = None
) -> sql.Composable:
    """One batch's DELETE of the store's recorded, unheld records (``only``: a further condition on
    the recorded rows ``w``), marking them done."""
    change = sql.SQL("DELETE FROM {table} t USING b WHERE {match} AND NOT {held} RETURNING t.{key}::text AS record_key")
    return eraser.statement(
        plan,
        change.format(
            table=ident(plan.table),
            match=eraser.match(plan),
            held=held_sql(eraser.policy, plan, eraser.holds, params),
            key=sql.Identifier(plan.key),
        ),
        "done",
        params,
        only,
    )


def delete_all(eraser: Eraser, plan: StorePlan) -> dict[str, int]:
    """Delete the store's recorded records, batch by batch; {deleted, held}."""
    params = eraser.params(plan, "erase")
    return _until_done(eraser, plan, "delete", params, delete_statement(eraser, plan, params))


def anonymise_all(eraser: Eraser, plan: StorePlan) -> dict[str, int]:
    """Overwrite the recorded records' personal columns with the RET-8 rule's strategies; {anonymised, held}."""
    assert plan.anonymise is not None
    assignments, mask_params = mask_assignments(plan.anonymise)
    params = {**eraser.params(plan, "anonymise"), **mask_params}
    change = sql.SQL(
        "UPDATE {table} t SET {assignments} FROM b WHERE {match} AND NOT {held} RETURNING t.{key}::text AS record_key"
    ).format(
        table=ident(plan.table),
        assignments=assignments,
        match=eraser.match(plan),
        held=held_sql(eraser.policy, plan, eraser.holds, params),
        key=sql.Identifier(plan.key),
    )
    return _until_done(eraser, plan, "anonymise", params, eraser.statement(plan, change, "done", params))


def _until_done(
    eraser: Eraser, plan: StorePlan, action: str, params: dict[str, Any], statement: sql.Composable
) -> dict[str, int]:
    label = _LABELS[action]
    totals = {label: 0, "held": 0}
    while True:
        changed, held = eraser.batch(plan, action, params, statement)
        totals[label] += changed
        totals["held"] += held
        if eraser.selection is not None and changed + held < eraser.batch_size:
            return totals  # a short batch: the selection has no more
        if eraser.selection is None and not eraser.left(params, "pending"):
            return totals
