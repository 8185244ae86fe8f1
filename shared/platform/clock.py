"""Time, settable in tests: services take a Clock instead of calling datetime.now()."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from shared.platform.config import Settings

# Dates of the domain (ages, meeting days, "not in the future") are Swedish dates.
STOCKHOLM = ZoneInfo("Europe/Stockholm")


def stockholm_date(moment: datetime) -> date:
    """The date in Sweden: ages and 'not in the future' are judged on it, not on UTC's."""
    return moment.astimezone(STOCKHOLM).date()


class Clock:
    """The real time, or in development a simulated one:

    - ``TRISAM_DEV_CLOCK_OFFSET_DAYS`` shifts it (e.g. some days ahead, past a meeting's date);
    - ``TRISAM_DEV_CLOCK_SPEED`` makes it run faster than real time from
      ``TRISAM_DEV_CLOCK_STARTED_AT`` (the real moment, shared by every process so that all
      services agree on the time). With a negative offset the simulated time starts in the
      past, catches up with real time and then follows it: a demo plays a year of history in
      minutes. With an offset of zero or more it keeps running fast (a fault-injection run
      lets meetings and follow-ups come due within seconds);
    - ``TRISAM_DEV_CLOCK_STOPS_AT``: the simulated time stands still from this moment, so that
      a run comes to rest (nothing more falls due).
    """

    def __init__(
        self,
        offset: timedelta = timedelta(0),
        speed: float = 1.0,
        started_at: datetime | None = None,
        stops_at: datetime | None = None,
    ):
        self.offset = offset
        self.speed = speed
        self.started_at = started_at or datetime.now(UTC)
        self.stops_at = stops_at

    @classmethod
    def from_settings(cls, settings: Settings) -> Clock:
        return cls(
            timedelta(days=settings.dev_clock_offset_days),
            settings.dev_clock_speed,
            settings.dev_clock_started_at,
            settings.dev_clock_stops_at,
        )

    def now(self) -> datetime:
        real = datetime.now(UTC)
        if self.speed == 1.0:
            simulated = real + self.offset
        else:
            simulated = self.started_at + self.offset + (real - self.started_at) * self.speed
            if self.offset < timedelta(0):
                simulated = min(simulated, real)
        return min(simulated, self.stops_at) if self.stops_at else simulated


class SettableClock(Clock):
    """A clock a test moves by hand."""

    def __init__(self, at: datetime):
        super().__init__()
        self._at = at

    def now(self) -> datetime:
        return self._at

    def set(self, at: datetime) -> None:
        self._at = at

    def advance(self, **delta: float) -> datetime:
        self._at += timedelta(**delta)
        return self._at
