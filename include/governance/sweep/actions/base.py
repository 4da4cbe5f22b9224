"""What every sweep action shares: the ``Batch`` it is given (rows of one relation that a strategy
selected) and the ``Action`` base class the registry (``governance.sweep.actions``) looks up by name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from psycopg2 import sql

from governance.sweep.runner import BatchRunner

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@dataclass(frozen=True)
class Batch:
    """The rows of ``relation`` (alias t) matching ``where``; ``using`` is a subquery (alias w)
    joined to them, e.g. a slice of the work table. ``params`` add to the selection's."""

    relation: sql.Composable
    where: sql.Composable
    step: str
    details: dict[str, Any]
    params: dict[str, Any]
    using: sql.Composable | None = None
    time_limit: str | None = None  # run under this statement timeout; over it: ``BatchOverTime``

    def joined(self, keyword: str) -> sql.Composable:
        """`` <keyword> (using) w``, or nothing without ``using``."""
        if self.using is None:
            return sql.SQL("")
        return sql.SQL(" {} ({}) w").format(sql.SQL(keyword), self.using)


class Action:
    """What a batch does to the rows it is given. One instance per rule sweep."""

    name: ClassVar[str]

    def __init__(self, runner: BatchRunner, s3: S3Client | None):
        self.runner = runner
        self.s3 = s3
        # Objects that could not be deleted in this sweep, (bucket, key) -> error code.
        self.failures: dict[tuple[str, str], str] = {}

    def resume(self) -> None:
        """Finish what an interrupted sweep of the rule left half done (nothing, for most actions)."""

    def apply(self, batch: Batch) -> int | None:
        """Act on the batch's rows; returns the rows changed (None when they change in later steps)."""
        raise NotImplementedError

    def change(self, batch: Batch, statement: sql.Composable, label: str, params: dict[str, Any]) -> int:
        """Run one counted statement as a batch: ``{label: rows}`` is its evidence. When recipients
        are told of the rule's retention ends (TP-5), their notices are queued in the same
        transaction, with their own evidence entry (``governance.notices.retention``)."""
        all_params = {**self.runner.sel.params, **batch.params, **params}
        notices = self.runner.notices

        def work(cur: Any) -> dict[str, int]:
            before = notices.before(cur, batch, all_params) if notices else None
            cur.execute(statement, all_params)
            changed = cur.rowcount
            if notices is not None and before is not None:
                queued = notices.after(cur, batch, all_params, before, changed)
                if queued is not None:
                    self.runner.record(cur, "notices_queued", batch.step, *queued, numbered=True)
            return {label: changed}

        return self.runner.run(batch.step, work, batch.details, time_limit=batch.time_limit)[label]
