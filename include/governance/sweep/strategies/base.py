"""The ``Strategy`` base class: how a rule's due rows are cut into batches. The registry
(``governance.sweep.strategies``) looks strategies up by name."""

from __future__ import annotations

from typing import ClassVar

from governance.sweep.actions import Action
from governance.sweep.runner import BatchRunner


class Strategy:
    """One pass over a rule's due rows, each batch handed to the rule's action."""

    name: ClassVar[str]

    def __init__(self, runner: BatchRunner, action: Action):
        self.runner = runner
        self.action = action

    def sweep(self) -> None:
        """One pass: every due, unheld row the pass finds is handed to the action in batches."""
        raise NotImplementedError

    def details(self, relation: str) -> dict[str, str]:
        """The evidence details every batch of this strategy carries."""
        return {"strategy": self.name, "relation": relation}
