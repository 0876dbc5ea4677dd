"""When a digest is due: daily or weekly at a local time in an IANA timezone, computed as pure functions."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import Enum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index = datetime.weekday()


@functools.cache
def _zone_names() -> dict[str, str]:
    return {name.lower(): name for name in available_timezones()}


def find_timezone(name: str) -> str | None:
    """The IANA timezone a user meant, whatever its case ('utc' -> 'UTC', 'europe/london' -> 'Europe/London');
    None when there is no such zone."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # Typed names come in any case; the zone files are named in one (listing them takes a while: only now).
        return _zone_names().get(name.lower())
    return name


class Cadence(Enum):
    """How often a digest goes out."""

    DAILY = "daily"
    WEEKLY = "weekly"


@dataclass(frozen=True)
class Schedule:
    """A digest schedule: `weekday` (0 = Monday) is set for weekly schedules only."""

    cadence: Cadence
    at: time
    timezone: str
    weekday: int | None = None

    def __post_init__(self) -> None:
        if (self.cadence is Cadence.WEEKLY) != (self.weekday is not None):
            raise ValueError("a weekly schedule needs a weekday; a daily one must not have one")
        if self.weekday is not None and not 0 <= self.weekday <= 6:
            raise ValueError(f"weekday must be 0-6, got {self.weekday}")
        ZoneInfo(self.timezone)  # raises for an unknown zone

    @property
    def zone(self) -> ZoneInfo:
        """The schedule's timezone."""
        return ZoneInfo(self.timezone)

    def describe(self) -> str:
        """Human wording: 'daily at 09:00 (Asia/Hong_Kong)'."""
        when = "daily" if self.weekday is None else f"weekly on {WEEKDAYS[self.weekday].capitalize()}"
        return f"{when} at {self.at:%H:%M} ({self.timezone})"

    def next_after(self, moment: datetime) -> datetime:
        """The first firing strictly after `moment` (aware), in UTC.

        A local time skipped by a DST change fires as late as the gap is long (01:30 in a 01:00-02:00 gap
        fires at 02:30); a repeated one fires once, at its first occurrence.
        """
        local_day = moment.astimezone(self.zone).date()
        for offset in range(0, 9):
            day = local_day + timedelta(days=offset)
            if self.weekday is not None and day.weekday() != self.weekday:
                continue
            firing = self._fire_on(day)
            if firing > moment:
                return firing
        raise AssertionError("unreachable: a firing always exists within 8 days")

    def latest_at_or_before(self, moment: datetime) -> datetime | None:
        """The last firing at or before `moment`, in UTC (None if before any firing this week)."""
        local_day = moment.astimezone(self.zone).date()
        for offset in range(0, 9):
            day = local_day - timedelta(days=offset)
            if self.weekday is not None and day.weekday() != self.weekday:
                continue
            firing = self._fire_on(day)
            if firing <= moment:
                return firing
        return None

    def _fire_on(self, day: date) -> datetime:
        local = datetime.combine(day, self.at, tzinfo=self.zone)
        first, second = local.replace(fold=0).astimezone(UTC), local.replace(fold=1).astimezone(UTC)
        if first.astimezone(self.zone).replace(tzinfo=None) != local.replace(tzinfo=None):
            # Inside a DST gap the wall-clock time does not exist: fire as late as the clock says, after the gap.
            return max(first, second)
        return min(first, second)  # in a repeated hour, the first occurrence


@dataclass(frozen=True)
class QuietHours:
    """A daily window (local time, may cross midnight) when only scheduled digests may make a sound."""

    start: time
    end: time
    timezone: str

    def contains(self, moment: datetime) -> bool:
        """True when `moment` falls inside the window."""
        local = moment.astimezone(ZoneInfo(self.timezone)).time()
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def describe(self) -> str:
        """'22:00-07:00 (Asia/Hong_Kong)'."""
        return f"{self.start:%H:%M}-{self.end:%H:%M} ({self.timezone})"
