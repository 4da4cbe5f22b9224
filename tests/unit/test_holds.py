"""Pure logic of legal holds (RET-8): status at a moment, output without e-mail addresses, and
that Hold.status agrees with the reference's active_holds (which mirrors governance.holds_at)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from governance.holds import Hold, HoldError, _no_extra, format_holds
from governance_dev.reference import active_holds, email_pseudonym

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PSEUDONYM = email_pseudonym("Kari.Nordmann@example.no")


def _hold(**overrides) -> Hold:
    fields = dict(
        hold_id=7,
        scope="person",
        rule_id=None,
        table_name=None,
        record_key=None,
        account_id=None,
        email_sha256=PSEUDONYM,
        reason="Court order 2026-17",
        set_by="legal",
        set_at=T0,
        ends_at=None,
        lifted_at=None,
        lifted_by=None,
    )
    fields.update(overrides)
    return Hold(**fields)


@pytest.mark.parametrize(
    ("overrides", "at", "status"),
    [
        ({}, T0, "active"),
        ({}, T0 - timedelta(seconds=1), "pending"),
        ({"ends_at": T0 + timedelta(days=1)}, T0 + timedelta(days=1) - timedelta(microseconds=1), "active"),
        ({"ends_at": T0 + timedelta(days=1)}, T0 + timedelta(days=1), "ended"),
        ({"lifted_at": T0 + timedelta(hours=1)}, T0 + timedelta(minutes=59), "active"),
        ({"lifted_at": T0 + timedelta(hours=1)}, T0 + timedelta(hours=1), "lifted"),
        (
            {"lifted_at": T0 + timedelta(hours=1), "ends_at": T0 + timedelta(minutes=30)},
            T0 + timedelta(hours=2),
            "lifted",
        ),
    ],
)
def test_status(overrides, at, status):
    assert _hold(**overrides).status(at) == status


def test_target_and_dict_show_at_most_12_hex_of_the_pseudonym():
    hold = _hold(account_id=42)
    assert hold.target() == f"person: account 42, e-mail pseudonym {PSEUDONYM[:12]}"
    data = hold.to_dict(T0)
    assert data["email_sha256_prefix"] == PSEUDONYM[:12]
    assert PSEUDONYM not in str(data) and "email_sha256" not in data
    assert data["set_at"] == "2026-01-01T00:00:00Z" and data["status"] == "active"
    assert _hold(scope="rule", email_sha256=None, rule_id="visit-data").target() == "rule visit-data"
    assert (
        _hold(scope="record", email_sha256=None, table_name="shop.orders", record_key="12").target() == "shop.orders 12"
    )


def test_format_holds():
    text = format_holds(
        [
            _hold(),
            _hold(
                hold_id=8,
                scope="rule",
                email_sha256=None,
                rule_id="order-records",
                reason="x" * 80,
                ends_at=T0 + timedelta(days=1),
            ),
        ],
        T0,
    )
    lines = text.splitlines()
    assert lines[0].split() == ["hold", "status", "target", "set", "by", "set", "at", "until", "reason"]
    assert lines[1].startswith("7 ") and PSEUDONYM[:12] in lines[1] and PSEUDONYM not in text
    assert lines[2].startswith("8 ") and "2026-01-02T00:00:00Z" in lines[2] and lines[2].endswith("x" * 57 + "...")
    assert format_holds([], T0) == "no holds"


@pytest.mark.parametrize(
    ("scope", "given", "message"),
    [
        ("rule", {"account_id": 1}, "--account-id cannot be used with --scope rule; --scope rule takes --rule"),
        (
            "person",
            {"rule_id": "x", "table_name": "shop.orders"},
            "--table, --rule cannot be used with --scope person; --scope person takes --account-id / --email",
        ),
        ("record", {"email": "a@b.cc"}, "--email cannot be used with --scope record"),
    ],
)
def test_flags_of_another_scope_are_refused(scope, given, message):
    args = {"account_id": None, "email": None, "table_name": None, "record_key": None, "rule_id": None, **given}
    with pytest.raises(HoldError) as excinfo:
        _no_extra(scope, **args)
    assert message in str(excinfo.value)
    assert "a@b.cc" not in str(excinfo.value)


_moments = st.integers(min_value=0, max_value=10_000).map(lambda s: T0 + timedelta(seconds=s))


@given(set_at=_moments, ends=st.none() | _moments, lifted=st.none() | _moments, now=_moments)
def test_status_active_agrees_with_reference_active_holds(set_at, ends, lifted, now):
    """RET-10: 'active' is exactly what governance.holds_at (mirrored by the reference) returns."""
    hold = _hold(set_at=set_at, ends_at=ends, lifted_at=lifted)
    row = {"set_at": set_at, "ends_at": ends, "lifted_at": lifted}
    assert (hold.status(now) == "active") == bool(active_holds([row], now))
