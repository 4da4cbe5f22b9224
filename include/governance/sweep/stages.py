"""The order rules are swept in: a rule comes after the rules in its ``after`` (RET-2: a deleted
account's calendar events and saved products before the account, so each table's removals are
evidenced under their own rule rather than vanishing in the account's FK cascade).

Imports the policy model only, so a DAG file can compute its stages at parse time cheaply.
"""

from __future__ import annotations

from governance.policy import Policy


def sweep_stages(policy: Policy) -> list[list[str]]:
    """Rules grouped so that every rule's ``after`` rules are in earlier stages (policy order within
    a stage). The DAG runs one mapped task per stage. A loaded policy has no cycle in ``after``
    (the model refuses one), so the recursion ends."""
    level: dict[str, int] = {}

    def depth(rule_id: str) -> int:
        if rule_id not in level:
            level[rule_id] = 1 + max((depth(d) for d in policy.rule(rule_id).after), default=-1)
        return level[rule_id]

    stages: list[list[str]] = []
    for rule in policy.rules:
        d = depth(rule.id)
        while len(stages) <= d:
            stages.append([])
        stages[d].append(rule.id)
    return stages
