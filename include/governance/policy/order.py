"""The order rules run in: a rule's ``after`` names the rules that must be swept before it
(RET-2: a deleted account's calendar events and saved products before the account). The model
refuses an ``after`` that names no rule or that closes a cycle, so every loaded policy can be
put in stages (``governance.sweep.stages``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from governance.policy.rules import Rule

if TYPE_CHECKING:
    from governance.policy.model import Policy


def after_problems(rules: Sequence[Rule]) -> list[str]:
    """Problems (rule and field named) with the rules' ``after``: unknown rule ids, then cycles."""
    known = {rule.id for rule in rules}
    problems = [
        f"rule {rule.id!r}, field 'after': {other!r} is not a rule id"
        for rule in rules
        for other in rule.after
        if other not in known
    ]
    return problems + _cycles(rules)


def after_cycles(policy: Policy) -> list[str]:
    """Problems for rules whose ``after`` form a cycle; empty when none (always, once loaded)."""
    return _cycles(policy.rules)


def _cycles(rules: Sequence[Rule]) -> list[str]:
    after = {rule.id: list(rule.after) for rule in rules}
    problems: list[str] = []
    state: dict[str, str] = {}

    def visit(rule_id: str, path: list[str]) -> None:
        if state.get(rule_id) == "done" or rule_id not in after:
            return
        if state.get(rule_id) == "active":
            cycle = path[path.index(rule_id) :] + [rule_id]
            problems.append(f"rule {rule_id!r}, field 'after': rules form a cycle ({' -> '.join(cycle)})")
            return
        state[rule_id] = "active"
        for dependency in after[rule_id]:
            visit(dependency, path + [rule_id])
        state[rule_id] = "done"

    for rule in rules:
        visit(rule.id, [])
    return problems
