"""Metrics rules, pure (no I/O): periods and the outcome measures. The figures' definitions:
docs/metrics.md; small-count protection: ``disclosure``; what is published: ``publication``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

from shared.vocabulary import IncomeSource, Party

# Public support (the first outcome measure): living mainly on one of these.
PUBLIC_SUPPORT = frozenset({IncomeSource.FORSORJNINGSSTOD.value, IncomeSource.SJUKPENNING.value,
                            IncomeSource.A_KASSA.value, IncomeSource.AKTIVITETSSTOD.value})
# Self-sufficiency (the second measure) is reported by these types of income at follow-up.
SELF_SUFFICIENCY_TYPES = ("LON", "STUDIEMEDEL", "AKTIVITETSERSATTNING", "AKTIVITETSSTOD",
                          "SJUKERSATTNING", "PENSION", "OKAND")


# --------------------------------------------------------------------------- periods


@dataclass(frozen=True)
class Period:
    label: str
    start: date  # inclusive
    end: date  # inclusive


_QUARTER = re.compile(r"^(\d{4})Q([1-4])$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_YEAR = re.compile(r"^(\d{4})$")


class BadPeriod(ValueError):
    pass


def parse_period(text: str) -> Period:
    """``2026Q3``, ``2026-09``, ``2026``, or ``2026-07-01..2026-09-30`` (years 2000-2100)."""
    try:
        period = _parse_period(text.strip())
    except ValueError as exc:  # BadPeriod, or a date out of range
        raise BadPeriod(str(exc) if isinstance(exc, BadPeriod) else "no such date") from None
    if not (2000 <= period.start.year and period.end.year <= 2100):
        raise BadPeriod("periods lie in the years 2000 to 2100")
    return period


def _parse_period(text: str) -> Period:
    if m := _QUARTER.match(text):
        year, q = int(m.group(1)), int(m.group(2))
        start = date(year, 3 * q - 2, 1)
        end = (date(year + 1, 1, 1) if q == 4 else date(year, 3 * q + 1, 1)) - timedelta(days=1)
        return Period(text, start, end)
    if m := _MONTH.match(text):
        year, month = int(m.group(1)), int(m.group(2))
        if not 1 <= month <= 12:
            raise BadPeriod(f"no month {month}")
        start = date(year, month, 1)
        end = (date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)) - timedelta(days=1)
        return Period(text, start, end)
    if m := _YEAR.match(text):
        year = int(m.group(1))
        return Period(text, date(year, 1, 1), date(year, 12, 31))
    if ".." in text:
        first, _, last = text.partition("..")
        try:
            start, end = date.fromisoformat(first), date.fromisoformat(last)
        except ValueError:
            raise BadPeriod("a range is YYYY-MM-DD..YYYY-MM-DD") from None
        if end < start:
            raise BadPeriod("the range ends before it starts")
        return Period(text, start, end)
    raise BadPeriod("a period is 2026Q3, 2026-09, 2026 or 2026-07-01..2026-09-30")


def published_period(period: Period) -> Period | None:
    """The month, quarter or year a period is (a range may name one exactly); None for any
    other range: those are not published (docs/metrics.md, "Small counts")."""
    start, end = period.start, period.end
    candidates = [f"{start.year}", f"{start.year}Q{(start.month - 1) // 3 + 1}", f"{start.year}-{start.month:02d}"]
    for label in candidates:
        published = parse_period(label)
        if (published.start, published.end) == (start, end):
            return published
    return None


def quarters_back(last: Period, count: int) -> list[Period]:
    """The ``count`` quarters ending with the quarter that holds ``last.end``."""
    year, q = last.end.year, (last.end.month - 1) // 3 + 1
    result = []
    for _ in range(count):
        if year < 2000:
            break
        result.append(parse_period(f"{year}Q{q}"))
        year, q = (year - 1, 4) if q == 1 else (year, q - 1)
    return list(reversed(result))


def even_spread_goal() -> dict[str, float]:
    """The board's goal: referrals evenly spread over the four parties."""
    return {p.value: round(1 / len(Party), 4) for p in Party}


def median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return float(ordered[mid]) if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
