"""The ``delete`` action (RET-1..RET-7): the batch's rows are deleted."""

from __future__ import annotations

from psycopg2 import sql

from governance.sweep.actions.base import Action, Batch


class Delete(Action):
    name = "delete"

    def apply(self, batch: Batch) -> int:
        statement = sql.SQL("DELETE FROM {rel} t{joined} WHERE {where}").format(
            rel=batch.relation, joined=batch.joined("USING"), where=batch.where
        )
        return self.change(batch, statement, "deleted", {})
