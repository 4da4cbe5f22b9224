"""The RES-1 decision is the policy's (``decisions: RES-1: {restriction_holds_records: ...}``): the
shop's file says true; a policy that does not say keeps records (the safe way); false is honoured;
a misspelt key or a value that is not a boolean is refused when the policy loads."""

from __future__ import annotations

import copy

import pytest
import yaml

from governance.errors import PolicyError
from governance.policy import DEFAULT_POLICY_PATH, load_policy, parse_policy
from governance.processing.holds import hold_reason, restriction_holds_records

BASE = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())


def with_decision(value: object | None) -> object:
    data = copy.deepcopy(BASE)
    if value is None:
        data["decisions"].pop("RES-1")
    else:
        data["decisions"]["RES-1"] = value
    return parse_policy(data, "variant.yaml")


def test_the_shops_policy_keeps_a_restricted_persons_records():
    assert restriction_holds_records(load_policy()) is True


def test_a_policy_that_does_not_say_keeps_them_and_false_is_honoured():
    assert restriction_holds_records(with_decision(None)) is True
    assert restriction_holds_records(with_decision({"restriction_holds_records": False})) is False


@pytest.mark.parametrize("value", [{"restriction_hold_records": True}, {"restriction_holds_records": "sometimes"}])
def test_a_misspelt_or_non_boolean_decision_is_refused(value):
    with pytest.raises(PolicyError) as error:
        with_decision(value)
    assert "RES-1" in str(error.value)


def test_the_hold_reason_names_the_restriction_and_the_request_only():
    reason = hold_reason(42)
    assert "RES-1" in reason and "request 42" in reason and "@" not in reason
