"""A policy copied with other rules (``model_copy`` of the policy's base model, as tests and the
benchmark derive a variant of the shop's policy) looks its rules up in the copy's rules, not in what
the original had cached."""

from __future__ import annotations

from governance.policy import load_policy


def test_a_copy_with_other_rules_groups_the_copys_rules_by_table():
    policy = load_policy()
    assert any(r.clock.kept is not None for r in policy.rules_by_table["shop.orders"])  # cached now
    rules = [
        r.model_copy(update={"clock": r.clock.model_copy(update={"kept": None})}) if r.id == "order-records" else r
        for r in policy.rules
    ]
    copied = policy.model_copy(update={"rules": rules})
    assert [r.clock.kept for r in copied.rules_by_table["shop.orders"] if r.id == "order-records"] == [None]
    assert copied.rule("order-records").clock.kept is None
    # the original keeps its own
    assert all(r.clock.kept is not None for r in policy.rules_by_table["shop.orders"] if r.id == "order-records")


def test_a_copy_without_changes_groups_the_same_rules():
    policy = load_policy()
    copied = policy.model_copy()
    assert {t: [r.id for r in rs] for t, rs in copied.rules_by_table.items()} == {
        t: [r.id for r in rs] for t, rs in policy.rules_by_table.items()
    }
