"""The policy's `audiences:` (TP-1, TP-3) is checked where it is loaded: the recipient and the
purpose exist, the purpose rests on consent and names the recipient, the notice days are at least
one, the files' window is a decision with a window, the notice's templates exist; every problem is
named with the audience and the field."""

from __future__ import annotations

from typing import Any

from governance.policy import DEFAULT_POLICY_PATH, load_policy
from tests.unit.test_policy_recipients import load_changed, refused


def audience(data: dict[str, Any]) -> dict[str, Any]:
    return data["audiences"][0]


def test_the_shipped_audience_is_valid():
    policy = load_policy(DEFAULT_POLICY_PATH)
    meta = policy.audience("meta-customers")
    assert (meta.recipient, meta.purpose, meta.notice_days) == ("advertising-partner", "advertising_audiences", 14)
    assert str(policy.files_window(meta)) == "P7D" and meta.drop.bucket in policy.buckets()


def test_an_unknown_recipient_and_purpose_are_refused(tmp_path):
    def change(d: dict[str, Any]) -> None:
        audience(d)["recipient"] = "nobody-inc"
        d["audiences"].append({**audience(d), "id": "second", "recipient": "advertising-partner", "purpose": "golf"})

    message = refused(tmp_path, change)
    assert "audience 'meta-customers', field 'recipient': 'nobody-inc' is not in the recipients registry" in message
    assert "audience 'second', field 'purpose': 'golf' is not in 'purposes'" in message


def test_a_purpose_without_consent_or_without_the_recipient_is_refused(tmp_path):
    def no_consent(d: dict[str, Any]) -> None:
        audience(d)["purpose"] = "newsletter"  # consent, but the advertising partner is not its recipient

    assert "does not name 'advertising-partner' among its recipients" in refused(tmp_path, no_consent)

    def not_consent(d: dict[str, Any]) -> None:
        for purpose in d["purposes"]:
            if purpose["id"] == "advertising_audiences":
                purpose["consent"] = False

    assert "does not rest on consent" in refused(tmp_path, not_consent)


def test_notice_days_window_and_templates_are_checked(tmp_path):
    def change(d: dict[str, Any]) -> None:
        audience(d)["notice_days"] = 0
        audience(d)["keep_files"] = {"decision": "RET-8"}  # a decision without a window
        audience(d)["notice_template"] = "no_such_notice"

    message = refused(tmp_path, change)
    assert "notice_days" in message and "greater than or equal to 1" in message


def test_the_window_and_template_are_named(tmp_path):
    def change(d: dict[str, Any]) -> None:
        audience(d)["keep_files"] = {"decision": "RET-8"}
        audience(d)["notice_template"] = "no_such_notice"

    message = refused(tmp_path, change)
    assert "field 'keep_files': decision 'RET-8' has no window in 'decisions'" in message
    assert "no_such_notice.nb.txt not found" in message and "no_such_notice.en.txt not found" in message


def test_no_audiences_is_allowed(tmp_path):
    assert load_changed(tmp_path, lambda d: d.pop("audiences")).audiences == []
