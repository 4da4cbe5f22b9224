"""The ``anonymise`` action (RET-8): every personal column of the batch's rows is overwritten by
its masking strategy's value (set_null, fixed_value; never a hash) and the marker column set to
"now", so the row is never selected again."""

from __future__ import annotations

from typing import Any

from psycopg2 import sql

from governance.policy import AnonymiseAction
from governance.sweep.actions.base import Action, Batch


class Anonymise(Action):
    name = "anonymise"

    def apply(self, batch: Batch) -> int:
        assignments, params = self.assignments()
        statement = sql.SQL("UPDATE {rel} t SET {set}{joined} WHERE {where}").format(
            rel=batch.relation, set=assignments, joined=batch.joined("FROM"), where=batch.where
        )
        return self.change(batch, statement, "anonymised", params)

    def assignments(self) -> tuple[sql.Composable, dict[str, Any]]:
        """``column = value, ..., marker = now`` and the values as named parameters."""
        action = self.runner.target.rule.action
        assert isinstance(action, AnonymiseAction)
        return mask_assignments(action)


def mask_assignments(action: AnonymiseAction) -> tuple[sql.Composable, dict[str, Any]]:
    """``column = value, ..., marker = %(now)s`` of the action's masking strategies, and the values
    as named parameters (the sweep's RET-8 anonymisation and an erasure's, ERA-1, alike)."""
    parts: list[sql.Composable] = []
    params: dict[str, Any] = {}
    for i, (column, strategy) in enumerate(action.columns.items()):
        text, values = strategy.sql_value()
        pieces = text.split("%s")
        if len(pieces) - 1 != len(values):
            raise ValueError(
                f"masking strategy {strategy.name!r} gave {len(values)} value(s) for {len(pieces) - 1} placeholder(s)"
            )
        expr: list[sql.Composable] = [sql.SQL(pieces[0])]
        for j, value in enumerate(values):
            name = f"mask_{i}_{j}"
            params[name] = value
            expr += [sql.Placeholder(name), sql.SQL(pieces[j + 1])]
        parts.append(sql.SQL("{} = {}").format(sql.Identifier(column), sql.Composed(expr)))
    parts.append(sql.SQL("{} = %(now)s").format(sql.Identifier(action.marker_column)))
    return sql.SQL(", ").join(parts), params
