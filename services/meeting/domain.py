"""Meeting rules, pure (no I/O): the calendar, the agenda, the cut-off and the consultation.

Vocabulary:
- A team meets every ``cadence_weeks`` weeks on its weekday at its time (Swedish time). Its
  calendar is ``anchor + k * cadence`` for whole k; dates that are skip dates (holidays) have
  no meeting.
- A meeting's **cut-off** is ``cutoff_days`` days before it starts, at the same clock time.
  Until then its agenda is open; at the cut-off it is fixed (cases lacking a fixed party's
  consent are moved to the next meeting first) or, if empty, the meeting is cancelled.
- The team's **queue** is its cases not yet consulted, first come first served: in the order
  the cases reached the team (``queue_seq``). ``plan_agenda`` fills the open meetings in date order,
  each up to its capacity, from the queue in that order. Cases of a cancelled meeting or
  postponed at a cut-off keep their place in the queue, so they go ahead of newer cases.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from shared.platform.clock import STOCKHOLM
from shared.contracts.vocabulary import Party, PostponementReason

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class Refused(Exception):
    """A request the rules refuse: ``code`` is stable, ``message`` says why (no personal data).
    ``conflict`` marks a refusal because of the current state (HTTP 409) rather than the input
    (HTTP 422)."""

    def __init__(self, code: str, message: str, *, conflict: bool = False):
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.conflict = code, message, conflict


# --------------------------------------------------------------------------- teams and calendar


@dataclass(frozen=True)
class TeamCalendar:
    """What the calendar rules need of a team."""

    team_id: str
    cadence_weeks: int
    weekday: int  # Monday = 0
    meeting_time: time
    capacity: int
    cutoff_days: int
    anchor: date  # a date of the team's current calendar


def weekday_number(name: str) -> int:
    try:
        return WEEKDAYS.index(name.lower())
    except ValueError:
        raise Refused("weekday_invalid", f"weekday must be one of {', '.join(WEEKDAYS)}") from None


def meeting_id(team_id: str, day: date) -> str:
    return f"{team_id}-{day:%Y%m%d}"


def starts_at(day: date, meeting_time: time) -> datetime:
    return datetime.combine(day, meeting_time, tzinfo=STOCKHOLM)


def cutoff_at(day: date, meeting_time: time, cutoff_days: int) -> datetime:
    """Cut-off: ``cutoff_days`` calendar days before the start, at the same Swedish clock time."""
    return datetime.combine(day - timedelta(days=cutoff_days), meeting_time, tzinfo=STOCKHOLM)


def first_anchor(weekday: int, meeting_time: time, cutoff_days: int, now: datetime) -> date:
    """The first date on ``weekday`` whose cut-off is still ahead: a new calendar starts there."""
    day = now.astimezone(STOCKHOLM).date()
    day += timedelta(days=(weekday - day.weekday()) % 7)
    while cutoff_at(day, meeting_time, cutoff_days) <= now:
        day += timedelta(days=7)
    return day


def calendar_dates(team: TeamCalendar, *, now: datetime, horizon_weeks: int,
                   skip_dates: set[date]) -> list[date]:
    """The team's meeting dates from now to the horizon whose cut-off has not passed, without
    skip dates."""
    step = timedelta(weeks=team.cadence_weeks)
    today = now.astimezone(STOCKHOLM).date()
    until = today + timedelta(weeks=horizon_weeks)
    k = max(0, math.ceil((today - team.anchor) / step))  # first k with anchor + k*step >= today
    dates = []
    day = team.anchor + k * step
    while day <= until:
        if day not in skip_dates and cutoff_at(day, team.meeting_time, team.cutoff_days) > now:
            dates.append(day)
        day += step
    return dates


def on_calendar(team: TeamCalendar, day: date) -> bool:
    return day.weekday() == team.weekday and (day - team.anchor).days % (7 * team.cadence_weeks) == 0


# --------------------------------------------------------------------------- the agenda


@dataclass(frozen=True)
class Slot:
    """An open meeting: its agenda can still change."""

    meeting_id: str
    meeting_date: date
    capacity: int


@dataclass(frozen=True)
class Waiting:
    """A case in the team's queue that may be placed on an open meeting."""

    case_ref: str
    queue_seq: int  # its place in the team's queue: first come, first served
    meeting_id: str | None  # where it is now (an open meeting) or None


def queue_order(case: Waiting) -> int:
    return case.queue_seq


def plan_agenda(slots: list[Slot], queue: list[Waiting]) -> dict[str, str | None]:
    """Where each waiting case belongs: open meetings in date order filled to capacity from the
    queue in order; the rest wait (None) for meetings not yet on the calendar."""
    places = [(slot.meeting_id, slot.capacity) for slot in sorted(slots, key=lambda s: s.meeting_date)]
    plan: dict[str, str | None] = {}
    index, used = 0, 0
    for case in sorted(queue, key=queue_order):
        while index < len(places) and used >= places[index][1]:
            index, used = index + 1, 0
        if index < len(places):
            plan[case.case_ref] = places[index][0]
            used += 1
        else:
            plan[case.case_ref] = None
    return plan


@dataclass(frozen=True)
class TakenOff:
    """A case just taken off a meeting's agenda, and why."""

    meeting_id: str
    reason: PostponementReason
    missing_parties: tuple[Party, ...] = ()


@dataclass(frozen=True)
class Move:
    """A change of a case's place on the agenda, and what is announced for it."""

    case_ref: str
    from_meeting: str | None
    to_meeting: str | None
    postponed: PostponementReason | None  # announce CasePostponed with this reason
    missing_parties: tuple[Party, ...] = ()

    @property
    def scheduled(self) -> bool:  # announce CaseScheduled: it has a (new) meeting
        return self.to_meeting is not None


def moves(current: dict[str, str | None], planned: dict[str, str | None],
          dates: dict[str, date], taken_off: dict[str, TakenOff]) -> list[Move]:
    """Compare the agenda before and after planning.

    ``taken_off``: cases just taken off a meeting; they are announced as postponed from it
    with their reason, wherever they go. A case pushed to a later meeting (or off the
    calendar) by a case ahead of it in the queue is ``displaced``. A case that gets its first
    meeting, or moves to an earlier one (a seat came free), is only scheduled.
    """
    result = []
    for case_ref, to in planned.items():
        before = current.get(case_ref)
        if case_ref in taken_off:
            off = taken_off[case_ref]
            result.append(Move(case_ref, off.meeting_id, to, off.reason, off.missing_parties))
        elif to == before:
            continue
        elif before is not None and (to is None or dates[to] > dates[before]):
            result.append(Move(case_ref, before, to, PostponementReason.DISPLACED))
        else:
            result.append(Move(case_ref, before, to, None))
    for case_ref, off in taken_off.items():
        if case_ref not in planned:  # off the agenda and not waiting (on hold)
            result.append(Move(case_ref, off.meeting_id, None, off.reason, off.missing_parties))
    return result


def expected_date(*, position: int, open_slots: list[Slot], cadence_weeks: int,
                  capacity: int, last_meeting: date | None, today: date) -> date | None:
    """When a case at ``position`` in the queue (1 = first) can expect its meeting, if the
    calendar continued as it is: beyond the open meetings, one more meeting per ``capacity``
    cases ahead."""
    seats = 0
    for slot in sorted(open_slots, key=lambda s: s.meeting_date):
        seats += slot.capacity
        if position <= seats:
            return slot.meeting_date
    if capacity <= 0:
        return None
    meetings_more = math.ceil((position - seats) / capacity)
    start = last_meeting or today
    return start + timedelta(weeks=cadence_weeks * meetings_more)


# --------------------------------------------------------------------------- consent


def missing_consents(required: tuple[str, ...], consents: dict[str, str]) -> tuple[Party, ...]:
    """The required parties (the team's fixed parties) whose consent was never given. A consent
    given and then withdrawn is not 'missing': ``held_back_by`` and the configuration decide."""
    return tuple(Party(p) for p in sorted(required) if p not in consents)


def held_back_by(consents: dict[str, str], postpone_parties: frozenset[str]) -> tuple[Party, ...]:
    """The parties whose withdrawn consent keeps a case off the agenda (configuration)."""
    return tuple(Party(p) for p, status in sorted(consents.items())
                 if status == "withdrawn" and p in postpone_parties)


# --------------------------------------------------------------------------- the meeting itself


def check_cancellable(*, status: str, meeting_date: date, today: date, consultations: int) -> None:
    if status == "cancelled":
        raise Refused("meeting_cancelled", "the meeting is already cancelled", conflict=True)
    if consultations:
        raise Refused("meeting_held", "consultations are recorded for this meeting", conflict=True)
    if meeting_date < today:
        raise Refused("meeting_past", "the meeting date has passed", conflict=True)


def check_pre_meeting(*, status: str, meeting_date: date, held_on: date, today: date) -> None:
    if status == "cancelled":
        raise Refused("meeting_cancelled", "the meeting is cancelled", conflict=True)
    if held_on > today:
        raise Refused("held_on_in_future", "held_on is after today")
    if held_on > meeting_date:
        raise Refused("pre_meeting_after_meeting", "the pre-meeting is held before the meeting")
    if held_on < meeting_date - timedelta(days=28):
        raise Refused("pre_meeting_too_early", "held_on is more than four weeks before the meeting")


@dataclass(frozen=True)
class ActionRecord:
    type: str
    responsible_party: str
    due_on: date


def check_consultation(*, meeting_status: str, meeting_date: date, case_status: str,
                       on_this_meeting: bool, held_on: date, today: date,
                       parties_present: tuple[str, ...], actions: tuple[ActionRecord, ...]) -> None:
    """A consultation (or 'not consulted') can be recorded for a case on this meeting's agenda
    once the meeting has been held: not for a cancelled meeting, not ahead of time."""
    if meeting_status == "cancelled":
        raise Refused("meeting_cancelled", "the meeting is cancelled", conflict=True)
    if case_status != "queued" or not on_this_meeting:
        raise Refused("not_on_agenda", "the case is not on this meeting's agenda", conflict=True)
    if meeting_status == "open":
        raise Refused("agenda_open", "the meeting's agenda is still open (cut-off not passed)",
                      conflict=True)
    if held_on > today:
        raise Refused("held_on_in_future", "held_on is after today")
    if held_on < meeting_date:
        raise Refused("held_before_meeting", "held_on is before the meeting date")
    if len(set(parties_present)) != len(parties_present):
        raise Refused("party_repeated", "a party is listed twice in parties_present")
    for action in actions:
        if action.due_on < held_on:
            raise Refused("action_due_before_consultation", "an action is due before held_on")
