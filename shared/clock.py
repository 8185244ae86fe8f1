"""Time, settable in tests: services take a Clock instead of calling datetime.now()."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

# Dates of the domain (ages, meeting days, "not in the future") are Swedish dates.
STOCKHOLM = ZoneInfo("Europe/Stockholm")


def stockholm_date(moment: datetime) -> date:
    """The date in Sweden: ages and 'not in the future' are judged on it, not on UTC's."""
    return moment.astimezone(STOCKHOLM).date()


class Clock:
    """The real time, optionally shifted (development only: ``TRISAM_DEV_CLOCK_OFFSET_DAYS``
    lets a developer run the system some days ahead, e.g. past a meeting's date)."""

    def __init__(self, offset: timedelta = timedelta(0)):
        self.offset = offset

    @classmethod
    def from_settings(cls, settings) -> "Clock":
        return cls(timedelta(days=settings.dev_clock_offset_days))

    def now(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset


class SettableClock(Clock):
    """A clock a test moves by hand."""

    def __init__(self, at: datetime):
        super().__init__()
        self._at = at

    def now(self) -> datetime:
        return self._at

    def set(self, at: datetime) -> None:
        self._at = at

    def advance(self, **delta) -> datetime:
        self._at += timedelta(**delta)
        return self._at
