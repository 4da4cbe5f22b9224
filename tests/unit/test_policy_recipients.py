"""The recipients registry (TP-1, TP-4) and the categories' bilingual purposes (ACC-1), checked
where the policy is loaded: a recipient outside the EEA without a transfer basis is refused (SEC-3),
and every message names the file, the recipient or category and the field (habit 3)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from governance.policy import DEFAULT_POLICY_PATH, PolicyError, load_policy

BASE = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())


def recipient(data: dict[str, Any], recipient_id: str) -> dict[str, Any]:
    return next(r for r in data["recipients"] if r["id"] == recipient_id)


def category(data: dict[str, Any], category_id: str) -> dict[str, Any]:
    return next(c for c in data["categories"] if c["id"] == category_id)


def load_changed(tmp_path: Path, change: Callable[[dict[str, Any]], None], raw: str | None = None):
    data = copy.deepcopy(BASE)
    change(data)
    path = tmp_path / "policy.yaml"
    path.write_text(raw if raw is not None else yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return load_policy(path)


def refused(tmp_path: Path, change: Callable[[dict[str, Any]], None], raw: str | None = None) -> str:
    with pytest.raises(PolicyError) as excinfo:
        load_changed(tmp_path, change, raw)
    return str(excinfo.value)


def test_the_shipped_registry_names_the_policys_kinds_of_recipient():
    """TP-1: delivery, software and cloud processors, a financial partner, the voucher network, the
    review platform and the advertising partner; every category has a purpose in both languages."""
    policy = load_policy()
    assert [r.id for r in policy.recipients] == [
        "delivery-carrier",
        "cloud-hosting",
        "software-vendor",
        "financial-partner",
        "voucher-network",
        "review-platform",
        "advertising-partner",
    ]
    assert all(r.inside_eea for r in policy.recipients)
    assert [r.id for r in policy.recipients_of("CAT-5")] == ["cloud-hosting"]
    assert {r.id for r in policy.recipients_of("CAT-4")} == {"cloud-hosting", "software-vendor", "advertising-partner"}
    for cat in policy.categories:
        assert cat.purpose is not None and cat.purpose.nb and cat.purpose.en, cat.id
    assert "kontoen" in policy.categories[1].purpose.text("nb")
    assert "account" in policy.categories[1].purpose.text("en")


def test_outside_the_eea_without_a_transfer_basis_is_refused(tmp_path):
    message = refused(tmp_path, lambda d: recipient(d, "advertising-partner").update(country="US"))
    assert "recipient 'advertising-partner' (recipients[6])" in message
    assert "country 'US' is outside the EEA (SEC-3)" in message and "'transfer_basis'" in message


def test_outside_the_eea_with_a_transfer_basis_is_accepted(tmp_path):
    basis = "EU-US Data Privacy Framework, adequacy decision (EU) 2023/1795"
    policy = load_changed(
        tmp_path, lambda d: recipient(d, "advertising-partner").update(country="US", transfer_basis=basis)
    )
    meta = policy.recipients[6]
    assert (meta.country, meta.transfer_basis, meta.inside_eea) == ("US", basis, False)


def test_switzerland_and_the_uk_are_outside_the_eea(tmp_path):
    for country in ("CH", "GB"):
        message = refused(tmp_path, lambda d, c=country: recipient(d, "cloud-hosting").update(country=c))
        assert f"country {country!r} is outside the EEA" in message


def test_a_bare_no_is_explained(tmp_path):
    raw = DEFAULT_POLICY_PATH.read_text().replace('country: "NO"\n    purpose:', "country: NO\n    purpose:", 1)
    message = refused(tmp_path, lambda d: None, raw=raw)
    assert "recipient 'delivery-carrier' (recipients[0]), field 'country'" in message
    assert 'write the country code in quotes, e.g. country: "NO"' in message


def test_a_malformed_country_is_refused(tmp_path):
    message = refused(tmp_path, lambda d: recipient(d, "delivery-carrier").update(country="Norway"))
    assert "field 'country'" in message and "'Norway' is not an ISO 3166-1 alpha-2 country code" in message


def test_an_unknown_category_is_refused(tmp_path):
    message = refused(tmp_path, lambda d: recipient(d, "review-platform").update(categories=["CAT-3", "CAT-9"]))
    assert "recipient 'review-platform', field 'categories': 'CAT-9' is not a category of the data map" in message


def test_a_malformed_category_id_is_refused(tmp_path):
    message = refused(tmp_path, lambda d: recipient(d, "review-platform").update(categories=["orders"]))
    assert "recipient 'review-platform' (recipients[5]), field 'categories[0]'" in message
    assert "'orders' is not a category ID such as 'CAT-1'" in message


def test_a_repeated_id_is_refused(tmp_path):
    message = refused(tmp_path, lambda d: recipient(d, "review-platform").update(id="voucher-network"))
    assert "recipient id 'voucher-network' is used twice" in message


def test_an_unknown_role_and_key_are_refused(tmp_path):
    def change(d: dict[str, Any]) -> None:
        recipient(d, "delivery-carrier").update(role="carrier", website="x")

    message = refused(tmp_path, change)
    assert "recipient 'delivery-carrier' (recipients[0]), field 'role'" in message
    assert "'processor', 'controller' or 'joint_controller'" in message
    assert "field 'website': unknown key" in message


def test_a_recipient_needs_a_purpose_in_both_languages(tmp_path):
    message = refused(tmp_path, lambda d: recipient(d, "delivery-carrier")["purpose"].pop("nb"))
    assert "recipient 'delivery-carrier' (recipients[0]), field 'purpose.nb': required field is missing" in message


def test_a_category_purpose_needs_both_languages(tmp_path):
    message = refused(tmp_path, lambda d: category(d, "CAT-3")["purpose"].update(nb="", de="x"))
    assert "category 'CAT-3' (categories[2]), field 'purpose.nb'" in message
    assert "field 'purpose.de': unknown key" in message


def test_purpose_and_recipients_are_optional(tmp_path):
    def change(d: dict[str, Any]) -> None:
        del d["recipients"]
        del category(d, "CAT-1")["purpose"]
        del d["audiences"]  # TP-1: an audience names its recipient
        for purpose in d["purposes"]:
            purpose.pop("recipients", None)

    policy = load_changed(tmp_path, change)
    assert policy.recipients == [] and policy.categories[0].purpose is None
    assert policy.recipients_of("CAT-1") == []
