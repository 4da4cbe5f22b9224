"""How each recipient is told (TP-5, TP-2), checked where the policy is loaded: exactly one channel;
https only (plain http to a loopback host for tests); secrets never in the file (a literal secret
or a secret-looking connection id is refused); the policy-level delivery settings; and
`governance recipients list` (TP-4) in its three forms, without any secret."""

from __future__ import annotations

import csv
import io
import json

import pytest

from governance.cli import main
from governance.policy import load_policy
from tests.unit.test_policy_recipients import load_changed, recipient, refused

CARRIER = "delivery-carrier"


def notify_of(value):
    return lambda d: recipient(d, CARRIER).__setitem__("notify", value)


def test_shipped_policy_tells_every_recipient_one_way():
    policy = load_policy()
    channels = {r.id: r.notify.channel for r in policy.recipients if r.notify}
    assert set(channels) == {r.id for r in policy.recipients}
    assert set(channels.values()) == {"webhook", "email", "drop"}
    assert policy.notices.max_attempts >= 1 and policy.notices.ack_within_days >= 1


@pytest.mark.parametrize(
    ("notify", "message"),
    [
        ({}, "exactly one of 'webhook', 'email', 'drop' (found none)"),
        (
            {"email": {"to": "a@b.example"}, "drop": {"bucket": "some-bucket"}},
            "exactly one of 'webhook', 'email', 'drop' (found email, drop)",
        ),
        ({"webhook": {"url": "http://partner.example/x", "signing_secret_conn": "c"}}, "must use https"),
        ({"webhook": {"url": "ftp://127.0.0.1/x", "signing_secret_conn": "c"}}, "must use https"),
        (
            {
                "webhook": {
                    "url": "https://p.example/x",
                    "signing_secret_conn": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                }
            },
            "not hold a secret",
        ),
        (
            {"webhook": {"url": "https://p.example/x", "signing_secret": "whsec_abc"}},
            "would put a secret in the policy",
        ),
        ({"email": {"to": "a@b.example"}, "public_key": "{...}"}, "would put a secret in the policy"),
        ({"email": {"to": "not an address"}}, "is not an e-mail address"),
        ({"drop": {"bucket": "Bad_Bucket"}}, "is not an S3 bucket name"),
        ({"email": {"to": "a@b.example"}, "encryption_key_conn": "-----BEGIN PUBLIC KEY-----"}, "not hold a secret"),
    ],
)
def test_bad_notify_is_refused_naming_the_recipient(tmp_path, notify, message):
    text = refused(tmp_path, notify_of(notify))
    assert CARRIER in text and message in text


@pytest.mark.parametrize("host", ["127.0.0.1:8080", "localhost", "[::1]:9000"])
def test_plain_http_only_to_loopback(tmp_path, host):
    policy = load_changed(
        tmp_path, notify_of({"webhook": {"url": f"http://{host}/hook", "signing_secret_conn": "local_hook"}})
    )
    assert policy.recipients[0].notify.webhook.url.startswith("http://")


def test_delivery_settings_are_checked(tmp_path):
    assert "max_attempts" in refused(tmp_path, lambda d: d["notices"].__setitem__("max_attempts", 0))
    assert "unknown_setting" in refused(tmp_path, lambda d: d["notices"].__setitem__("unknown_setting", 1))


def test_recipients_list_table_json_csv(capsys):
    assert main(["recipients", "list"]) == 0
    table = capsys.readouterr().out
    assert "delivery-carrier" in table and "webhook" in table
    assert main(["recipients", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in listed][:2] == ["delivery-carrier", "cloud-hosting"]
    carrier = listed[0]
    assert carrier["notify"] == "webhook" and carrier["encrypted"] is True and carrier["inside_eea"] is True
    assert main(["recipients", "list", "--csv"]) == 0
    out = capsys.readouterr().out
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == len(listed) and rows[1]["categories"].split() == [
        "CAT-1",
        "CAT-2",
        "CAT-3",
        "CAT-4",
        "CAT-5",
        "CAT-6",
    ]
    assert "_conn" not in out and "whsec" not in out  # no connection names, no secrets


def test_shipped_policy_tells_the_orders_recipients_of_retention_ends():
    """TP-5, RET-3, RET-8: the carrier and the financial partner are told when orders are anonymised."""
    policy = load_policy()
    assert {r.id for r in policy.recipients if r.notify and r.notify.retention_ended} == {
        "delivery-carrier",
        "financial-partner",
    }
    orders = policy.rule("order-records")
    assert {r.id for r in policy.retention_recipients(orders)} == {"delivery-carrier", "financial-partner"}
    assert policy.retention_recipients(policy.rule("visit-data")) == []  # unidentifiable: never told
    assert policy.retention_recipients(policy.rule("ordered-uploads")) == []  # object purges: not told


def test_retention_ended_only_for_a_recipient_of_a_notified_category(tmp_path):
    def visits_only(d):
        carrier = recipient(d, CARRIER)
        carrier["categories"] = ["CAT-1"]  # visits: unidentifiable
        carrier["notify"]["retention_ended"] = True

    message = refused(tmp_path, visits_only)
    assert "recipient 'delivery-carrier', field 'notify.retention_ended'" in message
    assert "none of its categories (CAT-1)" in message


def test_retention_ended_must_be_a_boolean(tmp_path):
    message = refused(tmp_path, lambda d: recipient(d, CARRIER)["notify"].__setitem__("retention_ended", "maybe"))
    assert "retention_ended" in message
