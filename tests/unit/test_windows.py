"""Fixed answers for windows and their boundaries (RET-10): calendar arithmetic in UTC.

Every rule of the photo shop's policy is pinned: at exactly clock + window the record has
expired, one second before it has not, one second after it has.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from governance.policy import load_policy
from governance.windows import Window, WindowError, as_utc, latest_expiry, parse_instant

SECOND = timedelta(seconds=1)
CLOCK = datetime(2024, 2, 29, 13, 45, 7, tzinfo=UTC)

# rule id -> (window, the expiry of a record whose clock is CLOCK); written out by hand.
EXPECTED = {
    "visit-data": ("PT24H", datetime(2024, 3, 1, 13, 45, 7, tzinfo=UTC)),  # RET-1
    "deleted-account-calendar-events": ("P2Y", datetime(2026, 2, 28, 13, 45, 7, tzinfo=UTC)),  # RET-2
    "deleted-account-saved-products": ("P2Y", datetime(2026, 2, 28, 13, 45, 7, tzinfo=UTC)),  # RET-2
    "deleted-accounts": ("P2Y", datetime(2026, 2, 28, 13, 45, 7, tzinfo=UTC)),  # RET-2
    "order-records": ("P2Y", datetime(2026, 2, 28, 13, 45, 7, tzinfo=UTC)),  # RET-3
    "contact-messages": ("P2Y", datetime(2026, 2, 28, 13, 45, 7, tzinfo=UTC)),  # RET-4
    "newsletter-subscriptions": ("P2Y", datetime(2026, 2, 28, 13, 45, 7, tzinfo=UTC)),  # RET-4
    "ordered-uploads": ("P60D", datetime(2024, 4, 29, 13, 45, 7, tzinfo=UTC)),  # RET-5a
    "saved-uploads": ("P2Y", datetime(2026, 2, 28, 13, 45, 7, tzinfo=UTC)),  # RET-5b
    "guest-uploads": ("P90D", datetime(2024, 5, 29, 13, 45, 7, tzinfo=UTC)),  # RET-5c
    "unsaved-account-uploads": ("P90D", datetime(2024, 5, 29, 13, 45, 7, tzinfo=UTC)),  # RET-5d decision
    "cookie-preferences": ("P12M", datetime(2025, 2, 28, 13, 45, 7, tzinfo=UTC)),  # RET-6 decision
    "request-exports": ("P7D", datetime(2024, 3, 7, 13, 45, 7, tzinfo=UTC)),  # RET-9 decision: the link's life
    "request-contacts": ("P30D", datetime(2024, 3, 30, 13, 45, 7, tzinfo=UTC)),  # RET-9 decision: after closing
}


@pytest.fixture(scope="module")
def policy():
    return load_policy()


def test_every_rule_is_pinned(policy):
    assert {rule.id for rule in policy.rules} == set(EXPECTED)


@pytest.mark.parametrize("rule_id", sorted(EXPECTED))
def test_rule_window_boundary(policy, rule_id):
    iso, expires = EXPECTED[rule_id]
    window = policy.window(policy.rule(rule_id))
    assert window.iso == iso
    assert window.expires_at(CLOCK) == expires
    assert window.has_expired(CLOCK, expires)  # at exactly the boundary: expired
    assert not window.has_expired(CLOCK, expires - SECOND)
    assert window.has_expired(CLOCK, expires + SECOND)


def test_two_years_after_a_leap_day_is_28_february():
    assert Window.parse("P2Y").expires_at(datetime(2024, 2, 29, tzinfo=UTC)) == datetime(2026, 2, 28, tzinfo=UTC)
    # never "730 days": across 2024-02-29, 730 days after 2023-03-01 would be 2025-02-28
    assert Window.parse("P2Y").expires_at(datetime(2023, 3, 1, tzinfo=UTC)) == datetime(2025, 3, 1, tzinfo=UTC)
    assert Window.parse("P4Y").expires_at(datetime(2024, 2, 29, tzinfo=UTC)) == datetime(2028, 2, 29, tzinfo=UTC)


def test_months_clamp_to_the_end_of_the_month():
    assert Window.parse("P1M").expires_at(datetime(2025, 1, 31, tzinfo=UTC)) == datetime(2025, 2, 28, tzinfo=UTC)
    assert Window.parse("P12M").expires_at(datetime(2025, 1, 31, tzinfo=UTC)) == datetime(2026, 1, 31, tzinfo=UTC)


def test_days_and_hours_are_exact():
    clock = datetime(2025, 3, 30, 0, 30, tzinfo=UTC)  # a DST night in Europe: irrelevant in UTC
    assert Window.parse("PT24H").expires_at(clock) == datetime(2025, 3, 31, 0, 30, tzinfo=UTC)
    assert Window.parse("P60D").expires_at(clock) == datetime(2025, 5, 29, 0, 30, tzinfo=UTC)
    assert Window.parse("P1DT2H3M4S").expires_at(clock) == datetime(2025, 3, 31, 2, 33, 4, tzinfo=UTC)
    assert Window.parse("P2W").expires_at(clock) == datetime(2025, 4, 13, 0, 30, tzinfo=UTC)


def test_clocks_with_an_offset_are_compared_in_utc():
    oslo = timezone(timedelta(hours=1))
    clock = datetime(2024, 2, 29, 0, 30, tzinfo=oslo)  # 2024-02-28T23:30Z
    assert Window.parse("P2Y").expires_at(clock) == datetime(2026, 2, 28, 23, 30, tzinfo=UTC)
    assert Window.parse("PT24H").has_expired(clock, datetime(2024, 2, 29, 23, 30, tzinfo=UTC))
    assert not Window.parse("PT24H").has_expired(clock, datetime(2024, 2, 29, 23, 29, 59, tzinfo=UTC))


@pytest.mark.parametrize("text", ["P2Y", "PT24H", "P60D", "P90D", "P12M", "P1Y6M", "PT90M", "P1W", " P2Y "])
def test_valid_windows(text):
    assert Window.parse(text).iso == text.strip()


@pytest.mark.parametrize(
    "text", ["", "P", "PT", "2Y", "P2", "P-1Y", "P1.5Y", "PT24", "P0D", "P0Y0M", "two years", "P2Y ago", "p2y", "P1H"]
)
def test_malformed_windows_are_refused(text):
    with pytest.raises(WindowError) as excinfo:
        Window.parse(text)
    assert repr(text.strip()) in str(excinfo.value) or "zero-length" in str(excinfo.value)


def test_window_must_be_a_string():
    with pytest.raises(WindowError, match="ISO 8601 duration string"):
        Window.parse(730)  # type: ignore[arg-type]


def test_naive_datetimes_are_refused_not_guessed():
    with pytest.raises(WindowError, match="no time zone"):
        Window.parse("P2Y").expires_at(datetime(2024, 2, 29))
    with pytest.raises(WindowError):
        as_utc(datetime(2024, 2, 29))


def test_parse_instant():
    assert parse_instant("2026-11-25T12:00:00Z") == datetime(2026, 11, 25, 12, tzinfo=UTC)
    assert parse_instant("2026-11-25T13:00:00+01:00") == datetime(2026, 11, 25, 12, tzinfo=UTC)
    with pytest.raises(WindowError, match="no time zone offset"):
        parse_instant("2026-11-25T12:00:00")
    with pytest.raises(WindowError, match="not an ISO 8601 instant"):
        parse_instant("yesterday")


def test_latest_expiry_wins():
    a = datetime(2026, 1, 1, tzinfo=UTC)
    b = datetime(2026, 6, 1, tzinfo=UTC)
    assert latest_expiry([a, b]) == b
    assert latest_expiry([b, a]) == b
    with pytest.raises(ValueError, match="no rule applies"):
        latest_expiry([])


@given(
    clock=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
    now=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
    text=st.sampled_from(["PT24H", "P60D", "P90D", "P2W", "PT1S", "P1DT2H3M4S", "P12M", "P2Y", "P1Y2M"]),
)
def test_a_fixed_window_expires_exactly_at_now_minus_the_window(clock, now, text):
    """RET-1/RET-10: for a window without months or years the sweep's plain bound clock <= now - window
    (no calendar arithmetic per row) decides exactly like clock + window <= now; with months or
    years it is not a window of fixed length."""
    from governance.sweep.selection import index_bound

    window = Window.parse(text)
    assert window.fixed == ("Y" not in text and "M" not in text.split("T")[0])
    if window.fixed:
        assert (clock <= index_bound(now, window)) == window.has_expired(clock, now)
    else:
        assert not window.has_expired(clock, now) or clock <= index_bound(now, window)  # the bound is safe
