"""What a request is about, checked at intake (REQ-1; RES-1, OBJ-1, MKT-1, CON-1, RET-7): the
purposes a restriction, objection or withdrawal switches off, and an account deletion's choices;
each mistake refused with a message naming what to fix."""

from __future__ import annotations

import copy

import pytest
import yaml

from governance.errors import RequestError
from governance.policy import DEFAULT_POLICY_PATH, load_policy, parse_policy
from governance.requests.scope import (
    check_choices,
    check_purposes,
    choices_from_flags,
    choosable_categories,
    default_purposes,
)

POLICY = load_policy()


def with_legitimate_interest_purpose():
    data = copy.deepcopy(yaml.safe_load(DEFAULT_POLICY_PATH.read_text()))
    data["purposes"].append(
        {
            "id": "fraud_checks",
            "name": {"nb": "Svindelkontroll", "en": "Fraud checks"},
            "legal_basis": "legitimate interest",
            "requirements": ["OBJ-1"],
        }
    )
    return parse_policy(data, "variant.yaml")


def test_the_defaults_are_direct_marketing_consent_and_everything():
    # advertising_audiences (TP-1) is direct marketing resting on consent: in both defaults (OBJ-1, CON-1)
    assert check_purposes(POLICY, "objection", None) == ["advertising_audiences", "marketing_cookies", "newsletter"]
    assert check_purposes(POLICY, "consent_withdrawal", []) == [
        "advertising_audiences",
        "analytics_cookies",
        "marketing_cookies",
        "newsletter",
    ]
    assert check_purposes(POLICY, "restriction", None) == sorted(p.id for p in POLICY.purposes)
    assert default_purposes(POLICY, "restriction") == [p.id for p in POLICY.purposes]


def test_named_purposes_are_kept_sorted_once_each():
    assert check_purposes(POLICY, "objection", ["newsletter", "analytics_cookies", "newsletter"]) == [
        "analytics_cookies",
        "newsletter",
    ]


def test_an_unknown_purpose_is_refused_naming_the_valid_ones():
    with pytest.raises(RequestError) as error:
        check_purposes(POLICY, "objection", ["newsletters"])
    assert str(error.value) == (
        "--purpose newsletters: not a purpose of the policy; valid: "
        "advertising_audiences, analytics_cookies, marketing_cookies, newsletter"
    )


def test_withdrawing_consent_from_a_purpose_not_resting_on_it_points_to_an_objection():
    policy = with_legitimate_interest_purpose()
    assert check_purposes(policy, "objection", ["fraud_checks"]) == ["fraud_checks"]
    with pytest.raises(RequestError) as error:
        check_purposes(policy, "consent_withdrawal", ["fraud_checks", "newsletter"])
    message = str(error.value)
    assert "--purpose fraud_checks does not rest on consent" in message
    assert "legitimate interest" in message and "objection request (OBJ-1)" in message


def test_purposes_on_a_request_of_another_kind_are_refused():
    with pytest.raises(
        RequestError,
        match="--purpose applies to consent_withdrawal, objection, restriction requests, not to a access request",
    ):
        check_purposes(POLICY, "access", ["newsletter"])
    assert check_purposes(POLICY, "access", None) == []


def test_a_policy_without_purposes_cannot_take_an_objection():
    policy = POLICY.model_copy(update={"purposes": []})
    with pytest.raises(RequestError, match="names no purpose a objection request can switch off"):
        check_purposes(policy, "objection", None)


def test_an_account_deletion_needs_a_choice_for_every_category():
    categories = choosable_categories(POLICY)
    assert categories and all(not c.startswith("governance") for c in categories)
    choices = {c: "keep" for c in categories[1:]}
    with pytest.raises(RequestError) as error:
        check_choices(POLICY, "account_deletion", choices)
    assert f"missing: {categories[0]}" in str(error.value) and "RET-7" in str(error.value)
    full = {categories[0]: "delete", **choices}
    assert check_choices(POLICY, "account_deletion", full) == {c: full[c] for c in categories}


def test_a_category_given_both_keep_and_delete_is_refused():
    with pytest.raises(RequestError, match="category CAT-2 is given to both --keep and --delete; choose one"):
        choices_from_flags(["CAT-2", "CAT-3"], ["CAT-2"])
    assert choices_from_flags(None, None) is None
    assert choices_from_flags(["CAT-2"], ["CAT-3"]) == {"CAT-2": "keep", "CAT-3": "delete"}


def test_choices_are_refused_for_other_kinds_unknown_categories_and_values():
    with pytest.raises(RequestError, match="apply to account_deletion requests, not to a erasure request"):
        check_choices(POLICY, "erasure", {"CAT-2": "keep"})
    with pytest.raises(RequestError, match="category CAT-7 cannot be chosen"):
        check_choices(POLICY, "account_deletion", {"CAT-7": "keep"})
    with pytest.raises(RequestError, match="category CAT-2: the choice must be one of keep, delete"):
        check_choices(POLICY, "account_deletion", {"CAT-2": "shred"})
