"""Retention windows: ISO 8601 durations, added in UTC with calendar arithmetic (RET-10).

Two years after 2024-02-29 is 2026-02-28, never "730 days"; a record has expired when
``clock + window <= now``. PostgreSQL's ``timestamptz + interval`` in a UTC session does the
same arithmetic, which is what lets the SQL and this reference agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dateutil.relativedelta import relativedelta

from governance.errors import GovernanceError

_ISO_DURATION = re.compile(
    r"^P(?!$)(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$"
)


# Bounds checked where a window or an instant is parsed, so nothing overflows later (#9): no
# retention window is longer than a century, and every instant lies between these two.
MAX_WINDOW_DAYS = 36_525
EARLIEST_INSTANT = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_INSTANT = datetime(9000, 1, 1, tzinfo=UTC)
_DAYS_PER = {"years": 365.25, "months": 365.25 / 12, "weeks": 7, "days": 1, "hours": 1 / 24, "minutes": 1 / 1440}


class WindowError(GovernanceError, ValueError):
    """A window that is not an ISO 8601 duration we can add with calendar arithmetic."""


@dataclass(frozen=True)
class Window:
    """A calendar period such as P2Y, P60D or PT24H."""

    iso: str
    years: int = 0
    months: int = 0
    weeks: int = 0
    days: int = 0
    hours: int = 0
    minutes: int = 0
    seconds: int = 0

    @classmethod
    def parse(cls, text: str) -> Window:
        if not isinstance(text, str):
            raise WindowError(f"a window must be an ISO 8601 duration string such as 'P2Y', got {type(text).__name__}")
        match = _ISO_DURATION.match(text.strip())
        if not match:
            raise WindowError(
                f"{text!r} is not an ISO 8601 duration; write e.g. 'PT24H', 'P60D', 'P90D', 'P12M' or 'P2Y' "
                "(whole numbers, designators Y M W D and T H M S)"
            )
        digits = {name: value for name, value in match.groupdict().items() if value is not None}
        if any(len(value) > 9 for value in digits.values()):
            raise WindowError(f"{text[:40]!r} is longer than any retention window (at most 100 years, e.g. 'P100Y')")
        parts = {name: int(value) for name, value in digits.items()}
        if not any(parts.values()):
            raise WindowError(f"{text!r} is a zero-length window; a retention window must be longer than zero")
        if sum(_DAYS_PER.get(name, 1 / 86400) * value for name, value in parts.items()) > MAX_WINDOW_DAYS:
            raise WindowError(f"{text!r} is longer than any retention window (at most 100 years, e.g. 'P100Y')")
        return cls(iso=text.strip(), **parts)

    @property
    def fixed(self) -> bool:
        """A fixed length (weeks, days, hours, minutes, seconds; no months or years): in UTC then
        ``clock + window <= now`` exactly when ``clock <= now - window`` (RET-10's calendar
        arithmetic only matters where month lengths do)."""
        return not (self.years or self.months)

    @property
    def relativedelta(self) -> relativedelta:
        return relativedelta(
            years=self.years,
            months=self.months,
            weeks=self.weeks,
            days=self.days,
            hours=self.hours,
            minutes=self.minutes,
            seconds=self.seconds,
        )

    def expires_at(self, clock: datetime) -> datetime:
        """The instant a record whose clock is ``clock`` expires, in UTC."""
        return as_utc(clock) + self.relativedelta

    def has_expired(self, clock: datetime, now: datetime) -> bool:
        """RET-10: expired when clock + window <= now; at exactly the boundary it has expired."""
        return self.expires_at(clock) <= as_utc(now)

    def __str__(self) -> str:
        return self.iso


def as_utc(moment: datetime) -> datetime:
    """A timezone-aware datetime in UTC; naive datetimes are refused rather than guessed. Always a
    plain ``datetime``: Airflow hands tasks pendulum instants, and pendulum's ``+ timedelta`` on one
    in ``datetime.UTC`` drops the zone (a naive result)."""
    if moment.tzinfo is UTC and type(moment) is datetime:  # as the database driver returns instants
        return moment
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise WindowError(f"naive datetime {moment.isoformat()} has no time zone; give an offset, e.g. 'Z'")
    utc = moment.astimezone(UTC)
    return utc if type(utc) is datetime else datetime(*utc.timetuple()[:6], utc.microsecond, tzinfo=UTC)


def parse_instant(text: str) -> datetime:
    """Parse an ISO 8601 instant (``--now``); a missing offset is an error, not local time."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise WindowError(f"{text!r} is not an ISO 8601 instant; write e.g. '2026-11-25T12:00:00Z'") from exc
    if value.tzinfo is None:
        raise WindowError(f"{text!r} has no time zone offset; write e.g. '2026-11-25T12:00:00Z'")
    try:
        value = value.astimezone(UTC)
    except OverflowError:
        value = EARLIEST_INSTANT - timedelta(days=1)  # 0001-01-01T00:00+01:00: reported just below
    if not EARLIEST_INSTANT <= value < LATEST_INSTANT:
        raise WindowError(
            f"{text!r} is outside the instants this platform decides for "
            f"({iso(EARLIEST_INSTANT)} to {iso(LATEST_INSTANT)}); check the year"
        )
    return value


def latest_expiry(expiries: list[datetime]) -> datetime:
    """RET-10: a record under several rules is removed only when every one has expired."""
    if not expiries:
        raise ValueError("no rule applies, so the record has no expiry")
    return max(as_utc(e) for e in expiries)


def iso(moment: datetime) -> str:
    """An instant as ISO 8601 in UTC with a ``Z`` (how every output, evidence detail and message
    writes one)."""
    return as_utc(moment).isoformat().replace("+00:00", "Z")
