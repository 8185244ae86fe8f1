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

The use cases (``calendar.py``, ``agenda.py``, ``consultation.py``) load the entities below
through the unit of work's repositories, ask a function here what to do, and apply the
answer: a decision (where cases go, what becomes of a meeting) and the events announcing it.
Meeting events carry references, codes and dates only: never personal data or free text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from shared.contracts import (
    CaseNotConsulted,
    CasePostponed,
    CaseScheduled,
    ConsentReminder,
    ConsultationHeld,
    Contract,
    MeetingCancelled,
    MeetingScheduled,
    PlanAction,
    PreMeetingHeld,
    TeamUpdated,
)
from shared.contracts.vocabulary import (
    CancellationReason,
    HostUnit,
    Invitee,
    NotConsultedReason,
    Party,
    PostponementReason,
)
from shared.platform.clock import STOCKHOLM, stockholm_date

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
ALL_TEAMS = "*"  # a skip date for every team

MeetingStatus = Literal["open", "closed", "cancelled"]  # closed: cut-off passed, agenda fixed
# queued: waiting or on an agenda; on_hold: off the agenda until consent is given again;
# consulted / not_consulted / closed: out of the queue
CaseStatus = Literal["queued", "on_hold", "consulted", "not_consulted", "closed"]
AWAITING_MEETING: tuple[CaseStatus, ...] = ("queued", "on_hold")  # still to be consulted


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


@dataclass(frozen=True)
class TeamEntry:
    """A team's registry entry, as the registry file or an administrator sets it."""

    name: str
    municipality: str
    host_unit_type: str  # a HostUnit
    host_unit_name: str
    cadence_weeks: int
    weekday: int  # Monday = 0
    meeting_time: time  # Swedish time
    capacity: int
    cutoff_days: int
    fixed_members: dict[str, str]  # party -> its fixed member's id; their consent is required


@dataclass(frozen=True)
class Team:
    """A team of the registry and its current calendar."""

    team_id: str
    entry: TeamEntry
    calendar_anchor: date
    revision: int
    file_version: int | None  # the registry file version it last came from, if it did
    updated_by: str
    updated_at: datetime

    @property
    def municipality(self) -> str:
        return self.entry.municipality

    @property
    def fixed_parties(self) -> tuple[str, ...]:
        """The parties whose consent a case needs to keep its seat at the cut-off."""
        return tuple(sorted(self.entry.fixed_members))

    @property
    def calendar(self) -> TeamCalendar:
        e = self.entry
        return TeamCalendar(
            team_id=self.team_id,
            cadence_weeks=e.cadence_weeks,
            weekday=e.weekday,
            meeting_time=e.meeting_time,
            capacity=e.capacity,
            cutoff_days=e.cutoff_days,
            anchor=self.calendar_anchor,
        )


@dataclass(frozen=True)
class SkipDate:
    """A date without meetings, for one team or every team (``ALL_TEAMS``)."""

    team_id: str
    on_date: date
    reason: str


def weekday_number(name: str) -> int:
    try:
        return WEEKDAYS.index(name.lower())
    except ValueError:
        raise Refused("weekday_invalid", f"weekday must be one of {', '.join(WEEKDAYS)}") from None


def team_entry(entry: Mapping[str, Any]) -> TeamEntry:
    """A team entry of the registry file (or an administrator's request). Raises KeyError,
    TypeError, ValueError or Refused for an entry that is not one."""
    hour, minute = (int(x) for x in entry["time"].split(":"))
    return TeamEntry(
        name=entry["name"],
        municipality=entry["municipality"],
        host_unit_type=HostUnit(entry["host_unit"]["type"]).value,
        host_unit_name=entry["host_unit"]["name"],
        cadence_weeks=entry["cadence_weeks"],
        weekday=weekday_number(entry["weekday"]),
        meeting_time=time(hour, minute),
        capacity=entry["capacity"],
        cutoff_days=entry["cutoff_days"],
        fixed_members={Party(p).value: m for p, m in sorted(entry["fixed_members"].items())},
    )


def saved_team(
    existing: Team | None, team_id: str, entry: TeamEntry, *, by: str, file_version: int | None, now: datetime
) -> Team | None:
    """The team as it is to be saved, or None when nothing changes. A new team, or a new
    weekday or cadence, starts a new calendar at the first date whose cut-off is ahead."""
    new_anchor = first_anchor(entry.weekday, entry.meeting_time, entry.cutoff_days, now)
    if existing is None:
        return Team(
            team_id, entry, new_anchor, revision=1, file_version=file_version, updated_by=by, updated_at=in_utc(now)
        )
    if existing.entry == entry and file_version is None:
        return None
    same_calendar = (existing.entry.weekday, existing.entry.cadence_weeks) == (entry.weekday, entry.cadence_weeks)
    return Team(
        team_id,
        entry,
        existing.calendar_anchor if same_calendar else new_anchor,
        revision=existing.revision + 1,
        file_version=file_version or existing.file_version,
        updated_by=by,
        updated_at=in_utc(now),
    )


def in_utc(moment: datetime) -> datetime:
    """Instants are kept in UTC, as the database gives them back: an event announces the same
    instant alike whether it was just decided or loaded."""
    return moment.astimezone(UTC)


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


def calendar_dates(team: TeamCalendar, *, now: datetime, horizon_weeks: int, skip_dates: set[date]) -> list[date]:
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


# --------------------------------------------------------------------------- meetings


@dataclass(frozen=True)
class Meeting:
    """A Trisam meeting of a team: its date, start, cut-off, capacity and state."""

    meeting_id: str
    team_id: str
    meeting_date: date
    starts_at: datetime
    cutoff_at: datetime
    capacity: int
    status: MeetingStatus = "open"
    cancel_reason: str | None = None
    pre_meeting_held_on: date | None = None


def cutoff_due(open_meetings: Sequence[Meeting], now: datetime) -> list[Meeting]:
    """The open meetings whose cut-off has come (their agenda is to be fixed), in date order."""
    return sorted((m for m in open_meetings if m.cutoff_at <= now), key=lambda m: m.meeting_date)


def calendar_meetings(team: Team, *, now: datetime, horizon_weeks: int, skip_dates: set[date]) -> list[Meeting]:
    """The open meetings the team's calendar has from now to the horizon (``calendar_dates``),
    each with the team's time, cut-off and capacity."""
    calendar = team.calendar
    return [
        Meeting(
            meeting_id(team.team_id, day),
            team.team_id,
            day,
            in_utc(starts_at(day, calendar.meeting_time)),
            in_utc(cutoff_at(day, calendar.meeting_time, calendar.cutoff_days)),
            calendar.capacity,
        )
        for day in calendar_dates(calendar, now=now, horizon_weeks=horizon_weeks, skip_dates=skip_dates)
    ]


@dataclass(frozen=True)
class Retiming:
    """A meeting that takes its team's new time (and cut-off and capacity), announced again,
    and so is each case on it when the start changed."""

    meeting: Meeting  # as it is now
    events: tuple[Contract, ...]


def retiming(
    team: Team, meeting: Meeting, on_agenda: Sequence[Case], now: datetime, *, keep_cutoff: bool = False
) -> Retiming | None:
    """None if the meeting has the team's time already. A meeting whose agenda is fixed
    (``keep_cutoff``) keeps its cut-off and capacity: only the start moves."""
    calendar = team.calendar
    retimed = replace(
        meeting,
        starts_at=in_utc(starts_at(meeting.meeting_date, calendar.meeting_time)),
        cutoff_at=(
            meeting.cutoff_at
            if keep_cutoff
            else in_utc(cutoff_at(meeting.meeting_date, calendar.meeting_time, calendar.cutoff_days))
        ),
        capacity=meeting.capacity if keep_cutoff else calendar.capacity,
    )
    if retimed == meeting:
        return None
    moved = retimed.starts_at != meeting.starts_at
    return Retiming(
        retimed,
        (
            meeting_scheduled(team, retimed),
            *(case_scheduled(team.team_id, case.case_ref, retimed, now) for case in on_agenda if moved),
        ),
    )


def check_cancellable(*, status: str, meeting_date: date, today: date, consultations: int) -> None:
    if status == "cancelled":
        raise Refused("meeting_cancelled", "the meeting is already cancelled", conflict=True)
    if consultations:
        raise Refused("meeting_held", "consultations are recorded for this meeting", conflict=True)
    if meeting_date < today:
        raise Refused("meeting_past", "the meeting date has passed", conflict=True)


def holiday_cancels(meeting: Meeting, *, today: date, consultations: int) -> bool:
    """A new skip date cancels the meeting on it, unless it is past or has been held."""
    return meeting.meeting_date >= today and consultations == 0


# --------------------------------------------------------------------------- the agenda


@dataclass(frozen=True)
class Case:
    """A case referred to a team, and where it stands (a reference and codes: no personal data)."""

    case_ref: str
    team_id: str
    municipality: str
    referring_party: Party
    referred_at: datetime
    queue_seq: int  # its place in the team's queue: first come, first served
    status: CaseStatus
    meeting_id: str | None  # the meeting whose agenda it is on (or was consulted at)
    postponements: int = 0
    last_postponement: str | None = None  # why it was last postponed (a PostponementReason)
    postponement_parties: tuple[Party, ...] = ()  # whose consent was missing or withdrawn then


@dataclass(frozen=True)
class AgendaEntry:
    """A case on a meeting's agenda, or consulted at it, with each party's consent."""

    meeting_id: str
    case: Case
    outcome: str | None  # held or not_consulted, once recorded
    consents: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Slot:
    """An open meeting: its agenda can still change."""

    meeting_id: str
    meeting_date: date
    capacity: int


def slots(meetings: Sequence[Meeting]) -> list[Slot]:
    return [Slot(m.meeting_id, m.meeting_date, m.capacity) for m in meetings]


@dataclass(frozen=True)
class Waiting:
    """A case in the team's queue that may be placed on an open meeting."""

    case_ref: str
    queue_seq: int  # its place in the team's queue: first come, first served
    meeting_id: str | None  # where it is now (an open meeting) or None


def queue_order(case: Waiting) -> int:
    return case.queue_seq


def queue_position(case: Case, queue: Sequence[Waiting]) -> int:
    """1 + the queued cases ahead of this one (cases on a fixed agenda are not in the queue)."""
    return 1 + sum(1 for w in queue if w.queue_seq < case.queue_seq)


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


def place_newcomers(
    team: Team,
    open_meetings: Sequence[Meeting],
    agenda: Mapping[str | None, int],
    newcomers: Sequence[str],
    now: datetime,
) -> Replan | None:
    """Cases just referred to the team, placed without its queue: they are last in the queue, so
    on a settled agenda (the open meetings filled in date order, as ``plan_agenda`` fills them)
    only they can move. ``agenda``: how many of the queue's other cases are on each open meeting
    (None: waiting without one); ``newcomers`` in their queue order. The same placements and
    events as ``replan`` would give; None when the agenda is not settled (a case ahead of them
    would move, or sits on a meeting that is not open): then ``replan`` it all."""
    open_ids = [m.meeting_id for m in sorted(open_meetings, key=lambda m: m.meeting_date)]
    if any(meeting_id is not None and meeting_id not in open_ids for meeting_id in agenda):
        return None
    # the cases ahead, as plan_agenda would order them if the agenda is settled: by meeting, then
    # those waiting; the newcomers after them
    ahead = [
        Waiting(f"ahead:{i}", i, meeting_id)
        for i, meeting_id in enumerate(m for m in [*open_ids, None] for _ in range(agenda.get(m, 0)))
    ]
    arriving = [Waiting(ref, len(ahead) + i, None) for i, ref in enumerate(newcomers)]
    plan = plan_agenda(slots(open_meetings), ahead + arriving)
    if any(plan[w.case_ref] != w.meeting_id for w in ahead):
        return None
    meetings = {m.meeting_id: m for m in open_meetings}
    placed = [(ref, meetings[to]) for ref in newcomers if (to := plan[ref]) is not None]
    return Replan(
        tuple(Placement(ref, meeting.meeting_id) for ref, meeting in placed),
        tuple(case_scheduled(team.team_id, ref, meeting, now) for ref, meeting in placed),
    )


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


def moves(
    current: dict[str, str | None],
    planned: dict[str, str | None],
    dates: dict[str, date],
    taken_off: Mapping[str, TakenOff],
) -> list[Move]:
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


@dataclass(frozen=True)
class Placement:
    """A case's new place: a meeting, or none (it waits); ``postponed`` counts a postponement."""

    case_ref: str
    meeting_id: str | None
    postponed: bool = False
    reason: str | None = None  # why it was postponed (a PostponementReason), if it was
    missing_parties: tuple[Party, ...] = ()


@dataclass(frozen=True)
class Replan:
    """The agenda planned again: where cases go, and the events announcing each move."""

    placements: tuple[Placement, ...]
    events: tuple[Contract, ...]


def replan(
    team: Team,
    open_meetings: Sequence[Meeting],
    queue: Sequence[Waiting],
    taken_off: Mapping[str, TakenOff],
    *,
    origin_dates: Mapping[str, date],
    referring: Mapping[str, Party],
    now: datetime,
) -> Replan:
    """Fill the open meetings from the queue (``plan_agenda``) and announce every move: a case
    taken off or displaced is postponed (CasePostponed), a case with a new meeting is scheduled
    (CaseScheduled), and the referring party of a case postponed for a missing consent is
    reminded (ConsentReminder). ``origin_dates``: the dates of the meetings cases were taken
    off that are no longer open; ``referring``: the referring party of those reminded."""
    meetings = {m.meeting_id: m for m in open_meetings}
    dates = {**origin_dates, **{mid: m.meeting_date for mid, m in meetings.items()}}
    current = {w.case_ref: w.meeting_id for w in queue}
    placements: list[Placement] = []
    events: list[Contract] = []
    for move in moves(current, plan_agenda(slots(open_meetings), list(queue)), dates, taken_off):
        if move.to_meeting != current.get(move.case_ref) or move.postponed is not None:
            placements.append(
                Placement(
                    move.case_ref,
                    move.to_meeting,
                    postponed=move.postponed is not None,
                    reason=move.postponed.value if move.postponed is not None else None,
                    missing_parties=tuple(move.missing_parties),
                )
            )
        to = meetings.get(move.to_meeting) if move.to_meeting else None
        if move.postponed is not None and move.from_meeting is not None:
            events.append(
                CasePostponed(
                    case_ref=move.case_ref,
                    team_id=team.team_id,
                    from_meeting_id=move.from_meeting,
                    from_meeting_date=dates[move.from_meeting],
                    to_meeting_id=move.to_meeting,
                    to_meeting_date=to.meeting_date if to else None,
                    reason=move.postponed,
                    missing_parties=move.missing_parties,
                    postponed_at=now,
                )
            )
        if to is not None:
            events.append(case_scheduled(team.team_id, move.case_ref, to, now))
        if move.postponed == PostponementReason.CONSENT_MISSING:
            events.append(
                ConsentReminder(
                    recipient=referring[move.case_ref],
                    case_ref=move.case_ref,
                    team_id=team.team_id,
                    missing_parties=move.missing_parties,
                    next_meeting_id=move.to_meeting,
                    next_meeting_date=to.meeting_date if to else None,
                    reminded_at=now,
                )
            )
    return Replan(tuple(placements), tuple(events))


def expected_date(
    *, position: int, open_slots: list[Slot], cadence_weeks: int, capacity: int, last_meeting: date | None, today: date
) -> date | None:
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


# --------------------------------------------------------------------------- the cut-off


@dataclass(frozen=True)
class CutOff:
    """What a meeting's cut-off comes to. Cases lacking a fixed party's consent are taken off
    (to the next meeting, ahead of newer cases); the seats they free go to the next cases in
    the queue that have every fixed party's consent. The agenda is then fixed, or the meeting
    cancelled (``no_cases``) if nothing is left on it."""

    taken_off: dict[str, TakenOff]
    moved_up: tuple[str, ...]  # cases that take the freed seats, in queue order
    cancelled: bool
    placements: tuple[Placement, ...]
    events: tuple[Contract, ...]


def cut_off(
    team: Team,
    meeting: Meeting,
    on_agenda: Sequence[Case],
    queue: Sequence[Waiting],
    consents: Mapping[str, Mapping[str, str]],
    now: datetime,
) -> CutOff:
    """``on_agenda``: the meeting's cases; ``queue``: the team's waiting cases (those of this
    meeting included or not); ``consents``: each of these cases' consent per party."""
    required = team.fixed_parties
    taken_off = {}
    for case in on_agenda:
        missing = missing_consents(required, consents.get(case.case_ref, {}))
        if missing:
            taken_off[case.case_ref] = TakenOff(meeting.meeting_id, PostponementReason.CONSENT_MISSING, missing)
    seats = meeting.capacity - (len(on_agenda) - len(taken_off))
    candidates = [
        w.case_ref
        for w in sorted(queue, key=queue_order)
        if w.case_ref not in taken_off
        and w.meeting_id != meeting.meeting_id
        and not missing_consents(required, consents.get(w.case_ref, {}))
    ]
    moved_up = candidates[: max(seats, 0)] if taken_off else []
    cancelled = len(taken_off) == len(on_agenda) and not moved_up
    events: list[Contract] = [case_scheduled(team.team_id, ref, meeting, now) for ref in moved_up]
    if cancelled:
        events.append(meeting_cancelled(team, meeting, CancellationReason.NO_CASES, len(taken_off), now))
    placements = [Placement(ref, None) for ref in taken_off] + [Placement(ref, meeting.meeting_id) for ref in moved_up]
    return CutOff(taken_off, tuple(moved_up), cancelled, tuple(placements), tuple(events))


@dataclass(frozen=True)
class Cancellation:
    """A meeting cancelled: its cases are taken off (they move to the next meeting, ahead of
    newer cases, when the agenda is planned again)."""

    taken_off: dict[str, TakenOff]
    placements: tuple[Placement, ...]
    events: tuple[Contract, ...]


def cancellation(
    team: Team, meeting: Meeting, on_agenda: Sequence[Case], reason: CancellationReason, now: datetime
) -> Cancellation:
    taken_off = {
        case.case_ref: TakenOff(meeting.meeting_id, PostponementReason.MEETING_CANCELLED) for case in on_agenda
    }
    return Cancellation(
        taken_off,
        tuple(Placement(ref, None) for ref in taken_off),
        (meeting_cancelled(team, meeting, reason, len(on_agenda), now),),
    )


# --------------------------------------------------------------------------- consent


def missing_consents(required: tuple[str, ...], consents: Mapping[str, str]) -> tuple[Party, ...]:
    """The required parties (the team's fixed parties) whose consent was never given. A consent
    given and then withdrawn is not 'missing': ``held_back_by`` and the configuration decide."""
    return tuple(Party(p) for p in sorted(required) if p not in consents)


def held_back_by(consents: Mapping[str, str], postpone_parties: frozenset[str]) -> tuple[Party, ...]:
    """The parties whose withdrawn consent keeps a case off the agenda (configuration)."""
    return tuple(Party(p) for p, status in sorted(consents.items()) if status == "withdrawn" and p in postpone_parties)


def arriving_status(consents: Mapping[str, str], postpone_parties: frozenset[str]) -> CaseStatus:
    """A case arrives in the queue, or on hold if a consent that postpones is withdrawn already."""
    return "on_hold" if held_back_by(consents, postpone_parties) else "queued"


@dataclass(frozen=True)
class ConsentChange:
    """A case goes on hold (taken off its agenda) or back in the queue at its place."""

    status: CaseStatus
    taken_off: dict[str, TakenOff]


def after_consent_change(
    case: Case, held: tuple[Party, ...], *, meeting_date: date | None, today: date
) -> ConsentChange | None:
    """After a consent change: a withdrawal for a party that postpones (``held``) puts a queued
    case on hold, off its agenda, unless its meeting has been held already (it stays, to be
    recorded); consent given again puts a case on hold back in the queue. None: no change."""
    if case.status == "queued" and held:
        if case.meeting_id is None:
            return ConsentChange("on_hold", {})
        if meeting_date is not None and meeting_date < today:
            return None
        return ConsentChange(
            "on_hold", {case.case_ref: TakenOff(case.meeting_id, PostponementReason.CONSENT_WITHDRAWN, held)}
        )
    if case.status == "on_hold" and not held:
        return ConsentChange("queued", {})
    return None


# --------------------------------------------------------------------------- the meeting itself


def check_pre_meeting(*, status: str, meeting_date: date, held_on: date, today: date) -> None:
    if status == "cancelled":
        raise Refused("meeting_cancelled", "the meeting is cancelled", conflict=True)
    if held_on > today:
        raise Refused("held_on_in_future", "held_on is after today")
    if held_on > meeting_date:
        raise Refused("pre_meeting_after_meeting", "the pre-meeting is held before the meeting")
    if held_on < meeting_date - timedelta(days=28):
        raise Refused("pre_meeting_too_early", "held_on is more than four weeks before the meeting")


def pre_meeting_held(team: Team, meeting: Meeting, held_on: date, now: datetime) -> PreMeetingHeld | None:
    """The pre-meeting recorded (Refused if it cannot be); None if it is recorded already."""
    check_pre_meeting(
        status=meeting.status, meeting_date=meeting.meeting_date, held_on=held_on, today=stockholm_date(now)
    )
    if meeting.pre_meeting_held_on == held_on:
        return None
    return PreMeetingHeld(
        meeting_id=meeting.meeting_id,
        team_id=team.team_id,
        municipality=team.municipality,
        meeting_date=meeting.meeting_date,
        held_on=held_on,
        recorded_at=now,
    )


@dataclass(frozen=True)
class ActionRecord:
    type: str
    responsible_party: str
    due_on: date


def consultation_problems(
    *,
    meeting_status: str,
    meeting_date: date,
    case_status: str,
    on_this_meeting: bool,
    held_on: date,
    today: date,
    parties_present: tuple[str, ...],
    actions: tuple[ActionRecord, ...],
) -> list[Refused]:
    """Why a consultation (or 'not consulted') cannot be recorded, most important first. It
    can for a case on this meeting's agenda once the meeting has been held: not for a
    cancelled meeting, not ahead of time."""
    problems = []
    if meeting_status == "cancelled":
        problems.append(Refused("meeting_cancelled", "the meeting is cancelled", conflict=True))
    if case_status != "queued" or not on_this_meeting:
        problems.append(Refused("not_on_agenda", "the case is not on this meeting's agenda", conflict=True))
    if meeting_status == "open":
        problems.append(
            Refused("agenda_open", "the meeting's agenda is still open (cut-off not passed)", conflict=True)
        )
    if held_on > today:
        problems.append(Refused("held_on_in_future", "held_on is after today"))
    if held_on < meeting_date:
        problems.append(Refused("held_before_meeting", "held_on is before the meeting date"))
    if len(set(parties_present)) != len(parties_present):
        problems.append(Refused("party_repeated", "a party is listed twice in parties_present"))
    if any(action.due_on < held_on for action in actions):
        problems.append(Refused("action_due_before_consultation", "an action is due before held_on"))
    return problems


def check_consultation(**facts: Any) -> None:
    """``consultation_problems``, raising the first."""
    problems = consultation_problems(**facts)
    if problems:
        raise problems[0]


@dataclass(frozen=True)
class Consultation:
    """What the coordinator records for a case that was consulted."""

    held_on: date
    parties_present: tuple[Party, ...]
    others_invited: tuple[Invitee, ...]
    individual_attended: bool
    actions: tuple[PlanAction, ...]


@dataclass(frozen=True)
class ConsultationRecord:
    """The recorded outcome of a case: what is kept, and answered to a repeated request."""

    case_ref: str
    meeting_id: str
    outcome: Literal["held", "not_consulted"]
    published: dict[str, Any]  # the record as announced (codes and dates), without recorded_at


@dataclass(frozen=True)
class ConsultationDecision:
    """Recording a consultation: ``problems`` (nothing is recorded; the first is answered), or
    the record, the case's new status and the event; ``repeated``: the same record again,
    answered as before with nothing new."""

    problems: tuple[Refused, ...] = ()
    record: ConsultationRecord | None = None
    case_status: CaseStatus | None = None
    repeated: bool = False
    events: tuple[Contract, ...] = ()


def consultation_decision(
    *,
    team: Team,
    meeting: Meeting,
    case: Case | None,
    earlier: ConsultationRecord | None,
    record: Consultation | NotConsultedReason,
    now: datetime,
) -> ConsultationDecision:
    """The consultation of a case (or that it was not consulted). The same record again is
    answered as before; a different one is refused (``already_recorded``)."""
    if case is None or case.team_id != team.team_id:
        return ConsultationDecision(problems=(Refused("case_not_found", "no such case in this team", conflict=True),))
    event = consultation_event(team, meeting, case, record, now)
    outcome: Literal["held", "not_consulted"] = "held" if isinstance(record, Consultation) else "not_consulted"
    recorded = ConsultationRecord(
        case.case_ref, meeting.meeting_id, outcome, event.model_dump(mode="json", exclude={"recorded_at"})
    )
    if earlier is not None:
        if (earlier.meeting_id, earlier.published) == (recorded.meeting_id, recorded.published):
            return ConsultationDecision(record=earlier, repeated=True)
        return ConsultationDecision(
            problems=(
                Refused("already_recorded", "a different outcome is already recorded for this case", conflict=True),
            )
        )
    consulted = record if isinstance(record, Consultation) else None
    problems = consultation_problems(
        meeting_status=meeting.status,
        meeting_date=meeting.meeting_date,
        case_status=case.status,
        on_this_meeting=case.meeting_id == meeting.meeting_id,
        held_on=consulted.held_on if consulted else stockholm_date(now),
        today=stockholm_date(now),
        parties_present=tuple(consulted.parties_present) if consulted else (),
        actions=tuple(ActionRecord(a.type, a.responsible_party, a.due_on) for a in consulted.actions)
        if consulted
        else (),
    )
    if problems:
        return ConsultationDecision(problems=tuple(problems))
    return ConsultationDecision(
        record=recorded, case_status="consulted" if consulted else "not_consulted", events=(event,)
    )


def consultation_event(
    team: Team, meeting: Meeting, case: Case, record: Consultation | NotConsultedReason, now: datetime
) -> ConsultationHeld | CaseNotConsulted:
    common: dict[str, Any] = dict(
        case_ref=case.case_ref,
        team_id=team.team_id,
        municipality=team.municipality,
        meeting_id=meeting.meeting_id,
        meeting_date=meeting.meeting_date,
        referring_party=case.referring_party,
        recorded_at=now,
    )
    if isinstance(record, Consultation):
        return ConsultationHeld(
            **common,
            held_on=record.held_on,
            referred_at=case.referred_at,
            parties_present=record.parties_present,
            others_invited=record.others_invited,
            individual_attended=record.individual_attended,
            actions=record.actions,
        )
    return CaseNotConsulted(**common, reason=record)


def may_see_details(entry: AgendaEntry, party: Party | None) -> bool:
    """A team member sees a case's details on the pre-meeting agenda only if the individual has
    consented to sharing with the member's party (the referral service checks again)."""
    return party is not None and entry.consents.get(party.value) == "given"


# --------------------------------------------------------------------------- events


def team_updated(team: Team) -> TeamUpdated:
    e = team.entry
    return TeamUpdated(
        team_id=team.team_id,
        team_name=e.name,
        municipality=e.municipality,
        host_unit_type=HostUnit(e.host_unit_type),
        host_unit_name=e.host_unit_name,
        cadence_weeks=e.cadence_weeks,
        weekday=e.weekday,
        meeting_time=e.meeting_time.strftime("%H:%M"),
        capacity=e.capacity,
        cutoff_days=e.cutoff_days,
        fixed_parties=tuple(Party(p) for p in team.fixed_parties),
        revision=team.revision,
        updated_at=team.updated_at,
    )


def meeting_scheduled(team: Team, meeting: Meeting) -> MeetingScheduled:
    return MeetingScheduled(
        meeting_id=meeting.meeting_id,
        team_id=team.team_id,
        municipality=team.municipality,
        meeting_date=meeting.meeting_date,
        starts_at=meeting.starts_at,
        cutoff_at=meeting.cutoff_at,
        capacity=meeting.capacity,
    )


def case_scheduled(team_id: str, case_ref: str, meeting: Meeting, now: datetime) -> CaseScheduled:
    return CaseScheduled(
        case_ref=case_ref,
        team_id=team_id,
        meeting_id=meeting.meeting_id,
        meeting_date=meeting.meeting_date,
        starts_at=meeting.starts_at,
        scheduled_at=now,
    )


def meeting_cancelled(
    team: Team, meeting: Meeting, reason: CancellationReason, cases_moved: int, now: datetime
) -> MeetingCancelled:
    return MeetingCancelled(
        meeting_id=meeting.meeting_id,
        team_id=team.team_id,
        municipality=team.municipality,
        meeting_date=meeting.meeting_date,
        reason=reason,
        cases_moved=cases_moved,
        cancelled_at=now,
    )


CASE_EVENTS = (CaseScheduled, CasePostponed, ConsentReminder, ConsultationHeld, CaseNotConsulted)
MEETING_EVENTS = (MeetingScheduled, MeetingCancelled, PreMeetingHeld)


def ordering_key(event: Contract) -> str:
    """Consumers see a case's events in order, a meeting's, and a team's (the outbox relay
    keeps the order of events with the same key)."""
    if isinstance(event, CASE_EVENTS):
        return event.case_ref
    if isinstance(event, MEETING_EVENTS):
        return event.meeting_id
    if isinstance(event, TeamUpdated):
        return f"team:{event.team_id}"
    raise ValueError(f"{type(event).__name__} is not a meeting event")
