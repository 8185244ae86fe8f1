"""Metrics rules, pure (no I/O): periods, what one case or meeting counts for (its *cells*),
the outcome measures, and who may read which exact figures.

The figures themselves are declared in ``catalogue``; how they are summed into answers in
``figures``; the public editions' small-count rule in ``public``, and here which editions are
due. docs/metrics.md says it in words.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from shared.contracts.vocabulary import CancellationReason, IncomeSource, PostponementReason, Readiness

# Public support (the first outcome measure): living mainly on one of these.
PUBLIC_SUPPORT = frozenset(
    {
        IncomeSource.FORSORJNINGSSTOD.value,
        IncomeSource.SJUKPENNING.value,
        IncomeSource.A_KASSA.value,
        IncomeSource.AKTIVITETSSTOD.value,
    }
)
# Self-sufficiency (the second measure, as the municipalities report it): of those on income
# support at referral, living at follow-up on one of these.
SELF_SUFFICIENCY_TYPES = (
    "LON",
    "STUDIEMEDEL",
    "AKTIVITETSERSATTNING",
    "AKTIVITETSSTOD",
    "SJUKERSATTNING",
    "PENSION",
    "OKAND",
)
MORE_READY = frozenset({Readiness.MUCH_MORE.value, Readiness.MORE.value})
# Cancellations counted (a holiday or a changed calendar: the meeting was never due).
COUNTED_CANCELLATIONS = frozenset(
    r.value for r in CancellationReason if r not in (CancellationReason.HOLIDAY, CancellationReason.RESCHEDULED)
)
# Postponements counted (a case that gave way to earlier ones in the queue was not postponed).
COUNTED_POSTPONEMENTS = frozenset(r.value for r in PostponementReason if r != PostponementReason.DISPLACED)
UNKNOWN = "UNKNOWN"
NONE = ""  # a dimension that does not apply (a meeting has no gender)


# --------------------------------------------------------------------------- periods


@dataclass(frozen=True)
class Period:
    label: str
    start: date  # inclusive
    end: date  # inclusive

    @property
    def kind(self) -> str:
        """month, quarter, year, or range."""
        if _QUARTER.match(self.label):
            return "quarter"
        if _MONTH.match(self.label):
            return "month"
        if _YEAR.match(self.label):
            return "year"
        return "range"


_QUARTER = re.compile(r"^(\d{4})Q([1-4])$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_YEAR = re.compile(r"^(\d{4})$")
FIRST_YEAR, LAST_YEAR = 2000, 2100


class BadPeriod(ValueError):
    pass


def parse_period(text: str) -> Period:
    """``2026Q3``, ``2026-09``, ``2026``, or ``2026-07-01..2026-09-30`` (years 2000-2100)."""
    try:
        period = _parse_period(text.strip())
    except ValueError as exc:  # BadPeriod, or a date out of range
        raise BadPeriod(str(exc) if isinstance(exc, BadPeriod) else "no such date") from None
    if not (FIRST_YEAR <= period.start.year and period.end.year <= LAST_YEAR):
        raise BadPeriod(f"periods lie in the years {FIRST_YEAR} to {LAST_YEAR}")
    return period


def date_range(start: date, end: date) -> Period:
    """A period from two dates: named as the month, quarter or year it is exactly, if any."""
    if end < start:
        raise BadPeriod("the range ends before it starts")
    for label in (f"{start.year}-{start.month:02d}", f"{start.year}Q{(start.month - 1) // 3 + 1}", f"{start.year}"):
        named = parse_period(label)
        if (named.start, named.end) == (start, end):
            return named
    return parse_period(f"{start.isoformat()}..{end.isoformat()}")


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


def quarter_of(day: date) -> Period:
    return parse_period(f"{day.year}Q{(day.month - 1) // 3 + 1}")


def quarters_between(first: date, last: date) -> list[Period]:
    """Every quarter from the one holding ``first`` to the one holding ``last``."""
    result, quarter = [], quarter_of(first)
    while quarter.start <= last:
        result.append(quarter)
        quarter = quarter_of(quarter.end + timedelta(days=1))
    return result


def quarters_of_year(year: int) -> list[Period]:
    return [parse_period(f"{year}Q{q}") for q in range(1, 5)]


def median(distribution: dict[int, int]) -> float | None:
    """The median of values given as value -> how many."""
    total = sum(distribution.values())
    if total == 0:
        return None
    ordered = sorted((v, n) for v, n in distribution.items() if n > 0)

    def nth(index: int) -> int:  # the index-th value (0-based) in sorted order
        for value, n in ordered:
            if index < n:
                return value
            index -= n
        raise IndexError(index)

    if total % 2:
        return float(nth(total // 2))
    return (nth(total // 2 - 1) + nth(total // 2)) / 2


# --------------------------------------------------------------------------- what is counted

# A cell: (measure, detail, day, team, municipality, referring party, gender, age band,
# income at referral). The figures are sums of cells (``catalogue``).
Cell = tuple[str, str, date, str, str, str, str, str, str]
OUTCOME_BASES = ("cohort", "due")  # the period of the referral, or of the follow-up's due date


@dataclass(frozen=True)
class SixMonths:
    """A six-month follow-up of a case and its latest record."""

    due_on: date | None
    cancelled: bool = False
    recorded: bool = False
    reached: bool | None = None
    income_source: str | None = None
    readiness: str | None = None


@dataclass(frozen=True)
class CaseFacts:
    """Everything the figures use of one case (no personal data: events carry none)."""

    case_ref: str
    team_id: str | None = None
    municipality: str | None = None
    referring_party: str | None = None
    gender: str | None = None
    age_band: str | None = None
    income_at_referral: str | None = None
    violence_question_asked: bool | None = None
    referred_on: date | None = None
    consulted_on: date | None = None
    individual_attended: bool | None = None
    not_consulted_on: date | None = None
    closed_on: date | None = None
    meeting_id: str | None = None  # where it was consulted, or marked not consulted
    actions: tuple[str, ...] = ()
    postponements: tuple[tuple[date, str], ...] = ()  # (from the meeting of that date, reason)
    followups: tuple[SixMonths, ...] = ()

    @property
    def left_queue_on(self) -> date | None:
        """When the case left the queue: consulted, marked not consulted, or closed."""
        days = [d for d in (self.consulted_on, self.not_consulted_on, self.closed_on) if d]
        return min(days) if days else None


@dataclass(frozen=True)
class MeetingFacts:
    meeting_id: str
    team_id: str
    municipality: str
    meeting_date: date
    cancelled_reason: str | None = None
    pre_meeting_held_on: date | None = None
    cases_recorded: int = 0  # cases consulted or marked not consulted at it


def case_cells(case: CaseFacts) -> Counter[Cell]:
    """What one case counts for, as cells (measure, detail, day, dimensions) -> count."""
    cells: Counter[Cell] = Counter()
    dims = (
        case.team_id or UNKNOWN,
        case.municipality or UNKNOWN,
        case.referring_party or UNKNOWN,
        case.gender or UNKNOWN,
        case.age_band or UNKNOWN,
        case.income_at_referral or UNKNOWN,
    )

    def count(measure: str, day: date | None, detail: str = "", n: int = 1) -> None:
        if day is not None:
            cells[(measure, detail, day, *dims)] += n

    if case.referred_on:
        count("referred", case.referred_on)
        if case.violence_question_asked:
            count("violence_asked", case.referred_on)
        left = case.left_queue_on
        count("queue", case.referred_on)  # in the queue from the day it was referred
        if left is not None:
            count("queue", max(left, case.referred_on), n=-1)  # until the day it left
    if case.consulted_on:
        count("consulted", case.consulted_on)
        if case.individual_attended:
            count("attended", case.consulted_on)
        if case.referred_on and case.consulted_on >= case.referred_on:
            count("lead", case.consulted_on, str((case.consulted_on - case.referred_on).days))
        for action in case.actions:
            count("action", case.consulted_on, action)
    for postponed_on, reason in case.postponements:
        if reason in COUNTED_POSTPONEMENTS:
            count("postponed", postponed_on, reason)
    for followup in case.followups:
        if followup.cancelled or followup.due_on is None:
            continue  # a cancelled follow-up (a closed case) was never due
        for measure, detail in outcome_measures(case, followup):
            for basis, day in (("cohort", case.referred_on), ("due", followup.due_on)):
                count(f"{measure}@{basis}", day, detail)
    return Counter({k: n for k, n in cells.items() if n})  # no zeros (left the day it came)


def outcome_measures(case: CaseFacts, followup: SixMonths) -> list[tuple[str, str]]:
    """The outcome measures a six-month follow-up counts for (docs/metrics.md)."""
    measures = [("outcome.due", "")]
    if not followup.recorded:
        return measures
    measures.append(("outcome.recorded", ""))
    if not followup.reached:
        return measures
    measures.append(("outcome.reached", ""))
    at_referral, at_follow_up = case.income_at_referral, followup.income_source
    if at_referral in PUBLIC_SUPPORT:
        measures.append(("outcome.ps_referral", ""))
    if at_follow_up in PUBLIC_SUPPORT:
        measures.append(("outcome.ps_follow_up", ""))
    if at_referral == IncomeSource.FORSORJNINGSSTOD.value:
        measures.append(("outcome.fs_referral", ""))
        measures.append(("outcome.destination", at_follow_up or IncomeSource.OKAND.value))
        if (at_follow_up or IncomeSource.OKAND.value) in SELF_SUFFICIENCY_TYPES:
            measures.append(("outcome.self_sufficient", ""))
    if followup.readiness and followup.readiness != Readiness.NOT_ANSWERED.value:
        measures.append(("outcome.answered", ""))
        if followup.readiness in MORE_READY:
            measures.append(("outcome.more_ready", ""))
    return measures


def meeting_cells(meeting: MeetingFacts) -> Counter[Cell]:
    """What one meeting counts for: held (not cancelled, with a case recorded at it), cancelled
    by reason, its pre-meeting. Meetings have no case dimensions."""
    cells: Counter[Cell] = Counter()
    dims = (meeting.team_id, meeting.municipality, NONE, NONE, NONE, NONE)
    if meeting.cancelled_reason is None and meeting.cases_recorded > 0:
        cells[("meeting_held", "", meeting.meeting_date, *dims)] += 1
    if meeting.cancelled_reason in COUNTED_CANCELLATIONS:
        cells[("meeting_cancelled", meeting.cancelled_reason, meeting.meeting_date, *dims)] += 1
    if meeting.pre_meeting_held_on is not None:
        cells[("pre_meeting", "", meeting.pre_meeting_held_on, *dims)] += 1
    return cells


def retired(cases: Sequence[CaseFacts]) -> tuple[Counter[Cell], Counter[str]]:
    """What cases deleted after retention still count for, as anonymous counts: their cells,
    and per meeting how many of them were recorded at it (a meeting with a recorded case is
    counted held). Kept, every figure stays as it was, also after a rebuild."""
    cells: Counter[Cell] = Counter()
    recorded: Counter[str] = Counter()
    for case in cases:
        cells.update(case_cells(case))
        if case.meeting_id and (case.consulted_on or case.not_consulted_on):
            recorded[case.meeting_id] += 1
    return cells, recorded


def difference(before: Counter[Cell], after: Counter[Cell]) -> dict[Cell, int]:
    """The change from ``before`` to ``after`` (cells whose count changed, by how much)."""
    keys = set(before) | set(after)
    return {k: after.get(k, 0) - before.get(k, 0) for k in keys if after.get(k, 0) != before.get(k, 0)}


# --------------------------------------------------------------------------- who reads what

READER_ROLES = ("board", "analyst", "coordinator", "member")  # read exact figures
COUNTY_READERS = ("board", "analyst")  # the whole county, every team
AUDITOR = "auditor"  # reads the access log, no figures


@dataclass(frozen=True)
class Scope:
    """Where figures are of: the county, a municipality, or teams."""

    municipality: str | None = None
    teams: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        if self.teams:
            return "team:" + ",".join(self.teams)
        return f"municipality:{self.municipality}" if self.municipality else "county"


class NotInScope(Exception):
    """The reader may not read figures of this scope (403)."""


class NotAllowed(Exception):
    """The reader's role may not do this (403)."""


@dataclass(frozen=True)
class Reader:
    role: str
    teams: frozenset[str] = field(default_factory=frozenset)


def check_scope(
    reader: Reader,
    scope: Scope,
    municipality_of: dict[str, str],
    *,
    period_kind: str = "quarter",
    filtered: bool = False,
) -> None:
    """The board and the analysts read everything; a coordinator or member reads their own
    teams (any dates and filters), and the totals of their teams' municipalities and of the
    county by whole quarter or year, unfiltered (else the municipality less their own team, a
    day and a filter at a time, would be another team's cases). Raises NotInScope otherwise."""
    if reader.role in COUNTY_READERS:
        return
    if reader.role not in READER_ROLES:
        raise NotInScope(f"role {reader.role} does not read figures")
    if scope.teams and not set(scope.teams) <= reader.teams:
        raise NotInScope("figures of another team")
    own = {municipality_of.get(t) for t in reader.teams}
    if scope.municipality and scope.municipality not in own:
        raise NotInScope("figures of another municipality")
    if not scope.teams and (filtered or period_kind not in ("quarter", "year")):
        raise NotInScope(
            "a municipality's or the county's figures are read by whole quarter or year, "
            "unfiltered, outside one's own teams"
        )


def visible_breakdown(reader: Reader, dimension: str, key: str, municipality_of: dict[str, str]) -> bool:
    """Whether a reader sees one line of a breakdown by team or municipality: the board and the
    analysts every line, a coordinator or member the lines of their own teams and municipalities."""
    if reader.role in COUNTY_READERS or dimension not in ("team", "municipality"):
        return True
    if dimension == "team":
        return key in reader.teams
    return key in {municipality_of.get(t) for t in reader.teams}


def check_auditor(reader: Reader) -> None:
    """Only an auditor reads the access log (who read which exact figures): the readers
    themselves do not see each other's questions. Raises NotAllowed otherwise."""
    if reader.role != AUDITOR:
        raise NotAllowed(f"role {reader.role} may not do this (allowed: {AUDITOR})")


# --------------------------------------------------------------------------- public editions


@dataclass(frozen=True)
class EditionMade:
    """A public edition as it was made (its figures aside): what deciding the next one needs."""

    period: str
    edition: int  # its number: 1, then each correction or remake
    period_start: date
    period_end: date
    made_at: datetime
    threshold: int
    definitions_version: int
    reason: str


def editions_due(first_day: date | None, today: date, grace_days: int, have: set[str]) -> list[Period]:
    """The quarters and years that closed at least ``grace_days`` ago, from the one holding
    the first fact, that have no edition yet (a year after its four quarters)."""
    if first_day is None:
        return []
    closed_by = today - timedelta(days=grace_days)
    quarters = [q for q in quarters_between(first_day, today) if q.end < closed_by]
    result = [q for q in quarters if q.label not in have]
    for year in sorted({q.start.year for q in quarters}):
        period = parse_period(str(year))
        if period.end < closed_by and period.label not in have:
            result.append(period)
    return result


def edition_due_on(period: Period, grace_days: int) -> date:
    """The day from which ``editions_due`` names the period (it closed ``grace_days`` before)."""
    return period.end + timedelta(days=grace_days + 1)


def latest_editions(editions: Iterable[EditionMade]) -> dict[str, EditionMade]:
    """The latest edition of each period (the one readers get)."""
    latest: dict[str, EditionMade] = {}
    for edition in editions:
        held = latest.get(edition.period)
        if held is None or edition.edition > held.edition:
            latest[edition.period] = edition
    return latest


def editions_to_make_again(
    latest: Iterable[EditionMade], *, threshold: int, definitions_version: int, at_start: bool
) -> list[tuple[Period, str]]:
    """The periods whose latest edition is made again from scratch, each with the reason
    published with it: at start, one made with another threshold (the threshold is a setting,
    read at start); always, one made with older definitions (never back to older ones).
    Quarters come before their year: a year is tied to its quarters' latest editions."""
    result = []
    for edition in sorted(latest, key=lambda e: (e.period_end, len(e.period) == 4)):
        changes = []
        if at_start and edition.threshold != threshold:
            changes.append(f"threshold changed from {edition.threshold} to {threshold}")
        if edition.definitions_version < definitions_version:
            changes.append("definitions changed")
        if changes:
            result.append((parse_period(edition.period), "; ".join(changes)))
    return result
