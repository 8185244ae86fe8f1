"""Metrics rules, pure (no I/O): periods, small-count suppression, shares and the outcome
measures. The figures' definitions: docs/metrics.md.

Small counts: a count n with 0 < n < threshold (default 5) is published as "<5". Secondary
suppression: no hidden count may be worked out exactly from its table's total and shown counts
(knowing "<5" is 1..4 and "x" is 5 or more), so more counts are hidden ("x") until none can,
or the total is. Breakdowns of one population hide their total together. Zero is shown.
Shares are published only for shown counts of a shown total.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

from shared.vocabulary import IncomeSource, Party

SUPPRESSION_THRESHOLD = 5

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


# --------------------------------------------------------------------------- suppression

SECONDARY = "x"  # a count hidden so that a count under the threshold cannot be worked out


def hidden(n: int, threshold: int) -> bool:
    return 0 < n < threshold


def feasible_range(marks: dict[str, int | str], total: int | str, threshold: int,
                   key: str) -> tuple[int, float]:
    """What a reader can know of a hidden count from a published table: its lowest and highest
    possible value, given the shown counts, the total (if shown), "<t" meaning 1..t-1 and "x"
    meaning t or more."""
    def bounds(mark) -> tuple[int, float]:
        return (1, threshold - 1) if mark == f"<{threshold}" else (threshold, float("inf"))

    lo, hi = bounds(marks[key])
    if isinstance(total, str):
        return lo, hi
    rest = total - sum(v for v in marks.values() if isinstance(v, int))
    others = [bounds(v) for k, v in marks.items() if k != key and isinstance(v, str)]
    return (max(lo, rest - sum(h for _, h in others)), min(hi, rest - sum(low for low, _ in others)))


def suppress_table(cells: dict[str, int], threshold: int = SUPPRESSION_THRESHOLD, *,
                   hide_total: bool = False) -> dict:
    """A breakdown with its total, as published: counts 0 < n < threshold as "<5"; then, while
    any hidden count could be worked out exactly from the total and the shown counts, the
    smallest shown count is hidden too ("x"); if none is left, the total is hidden. Shares (of
    the total) only for shown counts of a shown total."""
    total = sum(cells.values())
    primary = f"<{threshold}"
    marks: dict[str, int | str] = {k: (primary if hidden(n, threshold) else n) for k, n in cells.items()}
    shown_total: int | str = primary if hidden(total, threshold) else (SECONDARY if hide_total else total)

    def exposed() -> bool:
        for key, mark in marks.items():
            if isinstance(mark, str):
                lo, hi = feasible_range(marks, shown_total, threshold, key)
                if lo >= hi:
                    return True
        return False

    while isinstance(shown_total, int) and exposed():
        candidates = sorted((n, k) for k, n in marks.items() if isinstance(n, int) and n > 0)
        if candidates:
            marks[candidates[0][1]] = SECONDARY
        else:
            shown_total = SECONDARY
    return {
        "counts": marks,
        "total": shown_total,
        "shares": {k: (round(v / total, 4) if isinstance(v, int) and isinstance(shown_total, int)
                       and total else None) for k, v in marks.items()},
    }


def suppress_together(tables: dict[str, dict[str, int]], threshold: int = SUPPRESSION_THRESHOLD) -> dict:
    """Breakdowns of one population (the same total): if one must hide the total, all do, or
    the total shown by another would expose its hidden counts."""
    published = {name: suppress_table(cells, threshold) for name, cells in tables.items()}
    if any(isinstance(t["total"], str) for t in published.values()):
        published = {name: suppress_table(cells, threshold, hide_total=True)
                     for name, cells in tables.items()}
    return published


def suppress_count(n: int, threshold: int = SUPPRESSION_THRESHOLD) -> int | str:
    return f"<{threshold}" if hidden(n, threshold) else n


def share(part: int, whole: int, threshold: int = SUPPRESSION_THRESHOLD) -> dict:
    """How many of a whole (e.g. attended of consulted), published as a two-cell table."""
    table = suppress_table({"yes": part, "no": whole - part}, threshold)
    return {"count": table["counts"]["yes"], "of": table["total"], "share": table["shares"]["yes"]}


def grouped_share(parts: dict[str, int], wholes: dict[str, int],
                  threshold: int = SUPPRESSION_THRESHOLD) -> dict:
    """A share per group (e.g. on public support, per gender) whose groups add up to a whole
    published elsewhere: the wholes and the parts are each protected as a table across the
    groups, and each group's part against its whole."""
    whole_table = suppress_table(wholes, threshold)
    part_table = suppress_table(parts, threshold)
    result = {}
    for key in wholes:
        one = share(parts[key], wholes[key], threshold)
        if isinstance(whole_table["counts"][key], str):
            one = {"count": whole_table["counts"][key] if parts[key] else 0,
                   "of": whole_table["counts"][key], "share": None}
        if isinstance(part_table["counts"][key], str) and isinstance(one["count"], int):
            one = {**one, "count": part_table["counts"][key], "share": None}
        result[key] = one
    return result


def even_spread_goal() -> dict[str, float]:
    """The board's goal: referrals evenly spread over the four parties."""
    return {p.value: round(1 / len(Party), 4) for p in Party}


def median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return float(ordered[mid]) if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def referrals_by_party(counts: dict[str, int], threshold: int = SUPPRESSION_THRESHOLD) -> dict:
    """Every party, in a fixed order, suppressed as a table (with secondary suppression)."""
    return suppress_table({party.value: counts.get(party.value, 0) for party in Party},
                          threshold)["counts"]
