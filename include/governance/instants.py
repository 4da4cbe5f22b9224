"""A run's "now" (RET-10): the one instant a sweep or an audit decides for, resolved from what the
scheduler knows about the run. Plain Python: ``governance_airflow.run_now`` passes the pieces of
an Airflow context in, so the same rules hold for a DAG, a test and a benchmark.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

from governance.windows import Window, WindowError, parse_instant


class AssetEvent(NamedTuple):
    """An asset event that triggered the run: when it happened, and the ``now`` its extra carries
    (``retention_sweep`` sends its own "now" to ``retention_audit``), if any."""

    timestamp: datetime
    now: object = None


def run_now(
    *,
    run_after: datetime,
    data_interval_end: datetime | None = None,
    logical_date: datetime | None = None,
    asset_events: Iterable[AssetEvent] = (),
    scheduled: bool = False,
    tolerated_lateness: Window | None = None,
) -> datetime:
    """The instant a run decides for:

    1. triggered by asset events: the ``now`` of the latest event that carries one (the sweep's own
       instant, so the audit checks exactly what the sweep decided), if it is an ISO 8601 instant;
    2. else the run's data interval end, else its logical date, else when it was due to run
       (``run_after``): a rerun of the same run decides the same way;
    3. a ``scheduled`` run looks back by ``tolerated_lateness`` when one is given (the audit: the
       sweep runs hourly, so what expired since the last sweep is not yet a breach, RET-1).
    """
    carrying = [event for event in asset_events if event.now]
    if carrying:
        latest = max(carrying, key=lambda event: event.timestamp)
        try:
            return parse_instant(str(latest.now))
        except WindowError:
            pass  # not a sweep's instant: fall back to the run's own
    instant = next((moment for moment in (data_interval_end, logical_date) if moment is not None), run_after)
    if scheduled and tolerated_lateness is not None:
        instant = instant - tolerated_lateness.relativedelta
    return instant
