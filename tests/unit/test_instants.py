"""A run's "now" (RET-10), fixed answers for each kind of run and each fallback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from governance.instants import AssetEvent, run_now
from governance.windows import Window

END = datetime(2026, 11, 25, 5, 30, tzinfo=UTC)
LOGICAL = datetime(2026, 11, 25, 5, 0, tzinfo=UTC)
AFTER = datetime(2026, 11, 25, 5, 31, tzinfo=UTC)
SWEEP_NOW = datetime(2026, 11, 25, 4, 0, tzinfo=UTC)
PT1H = Window.parse("PT1H")


def test_the_data_interval_end_comes_first():
    assert run_now(run_after=AFTER, data_interval_end=END, logical_date=LOGICAL) == END


def test_then_the_logical_date_then_run_after():
    assert run_now(run_after=AFTER, logical_date=LOGICAL) == LOGICAL
    assert run_now(run_after=AFTER) == AFTER


def test_a_scheduled_run_looks_back_by_the_tolerated_lateness():
    assert run_now(run_after=AFTER, data_interval_end=END, scheduled=True, tolerated_lateness=PT1H) == END - (
        timedelta(hours=1)
    )


def test_lateness_applies_to_scheduled_runs_only_and_only_when_given():
    assert run_now(run_after=AFTER, data_interval_end=END, tolerated_lateness=PT1H) == END
    assert run_now(run_after=AFTER, data_interval_end=END, scheduled=True) == END


def test_lateness_is_calendar_arithmetic():
    end = datetime(2026, 3, 31, 0, 0, tzinfo=UTC)
    lateness = Window.parse("P1M")
    assert run_now(run_after=end, scheduled=True, tolerated_lateness=lateness) == datetime(2026, 2, 28, tzinfo=UTC)


def test_an_asset_triggered_run_decides_for_the_latest_events_now():
    events = [
        AssetEvent(END - timedelta(hours=2), "2026-11-25T02:00:00Z"),
        AssetEvent(END - timedelta(minutes=1), "2026-11-25T04:00:00Z"),
        AssetEvent(END, None),  # an event without a "now" does not count
    ]
    assert run_now(run_after=AFTER, data_interval_end=END, asset_events=events) == SWEEP_NOW


def test_the_events_now_is_exact_even_for_a_scheduled_run():
    events = [AssetEvent(END, SWEEP_NOW.isoformat())]
    now = run_now(run_after=AFTER, data_interval_end=END, asset_events=events, scheduled=True, tolerated_lateness=PT1H)
    assert now == SWEEP_NOW and now.tzinfo is not None


def test_an_events_now_that_is_not_an_instant_falls_back_to_the_run():
    events = [AssetEvent(END, "yesterday")]
    assert run_now(run_after=AFTER, data_interval_end=END, asset_events=events) == END
    naive = [AssetEvent(END, "2026-11-25T04:00:00")]
    assert run_now(run_after=AFTER, asset_events=naive) == AFTER
