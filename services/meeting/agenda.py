"""The agenda's use cases: a case arriving, the cut-off and its seat allocation, filling the
open meetings from the queue again, consent changes, closure, and a meeting's cancellation
with the moves it causes; and the reads of agendas, the queue and a case's schedule.

Each runs in the caller's unit of work with the team's row locked (every change of a team's
agenda is serialised on it), loads its facts through the repositories, asks ``domain`` what to
do, and applies the decision: the cases' places, the meeting's state, the events.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import structlog

from shared.contracts import CaseReferred, ConsentRecorded, ConsentWithdrawn
from shared.contracts.vocabulary import CancellationReason, PostponementReason
from shared.platform.clock import stockholm_date
from shared.platform.retention import RETENTION_BATCH

from . import domain
from .domain import AgendaEntry, Case, Meeting, Placement, Refused, TakenOff, Team, Waiting
from .uow import MeetingUnitOfWork, announce

log = structlog.get_logger("meeting")


# --------------------------------------------------------------------------- events in


async def case_referred(uow: MeetingUnitOfWork, event: CaseReferred) -> None:
    """The case joins its team's queue and is placed on the first open meeting with room (on
    hold instead, if a consent that postpones is withdrawn already)."""
    await cases_referred(uow, [event])


async def cases_referred(uow: MeetingUnitOfWork, events: Sequence[CaseReferred]) -> None:
    """``case_referred`` for many cases at once (a group commit's batch), set-based: their teams
    locked and read, their consents recorded and their cases added in a statement each, in the
    order they arrived; then the new cases placed, in that order, as one by one would have placed
    them: the teams' open meetings and how many cases each holds read in a statement each, not
    the queues (``domain.place_newcomers``; a team whose agenda is not settled, or has a cut-off
    due, is settled as a whole)."""
    now = uow.clock.now()
    teams = await uow.teams.lock_many(sorted({e.team_id for e in events}))
    consents = await uow.consents.record_initial_many(events)  # (and read)
    arriving = [(e, domain.arriving_status(consents[e.case_ref], uow.postpone_on_withdrawal)) for e in events]
    new = await uow.cases.add_many(arriving, now)
    newcomers: dict[str, list[str]] = {}  # per team with new cases, its new queued ones in arrival order
    for e, status in arriving:
        if e.case_ref in new:
            queued = newcomers.setdefault(e.team_id, [])
            if status == "queued" and e.case_ref not in queued:
                queued.append(e.case_ref)
    for team_id in [t for t in newcomers if t not in teams]:
        log.error(
            "case referred to a team not in the registry; it waits in the queue until the team is registered",
            team_id=team_id,
        )
        del newcomers[team_id]
    open_meetings = await uow.meetings.open_many(list(newcomers))
    placeable = [t for t, refs in newcomers.items() if refs and not domain.cutoff_due(open_meetings[t], now)]
    agendas = await uow.cases.agenda_counts_many(placeable, excluding=[r for t in placeable for r in newcomers[t]])
    plans: list[domain.Replan] = []
    for team_id, refs in newcomers.items():
        plan = None
        if team_id in agendas:
            plan = domain.place_newcomers(teams[team_id], open_meetings[team_id], agendas[team_id], refs, now)
        if plan is None:
            await settle(uow, teams[team_id], now)
        else:
            plans.append(plan)
    await _place(uow, [p for plan in plans for p in plan.placements], now)
    await announce(uow, [e for plan in plans for e in plan.events])


async def consent_given(uow: MeetingUnitOfWork, event: ConsentRecorded) -> None:
    await uow.consents.given(event)
    await consent_changed(uow, event.case_ref)


async def consent_withdrawn(uow: MeetingUnitOfWork, event: ConsentWithdrawn) -> None:
    await uow.consents.withdrawn(event)
    await consent_changed(uow, event.case_ref)


async def consent_changed(uow: MeetingUnitOfWork, case_ref: str) -> None:
    """After a consent change: a withdrawal for a party that postpones takes the case off its
    agenda (on hold); consent given again puts it back in the queue at its place."""
    case = await uow.cases.get(case_ref)
    if case is None or case.status not in domain.AWAITING_MEETING:
        return
    team = await uow.teams.lock(case.team_id)
    case = await uow.cases.get(case_ref)  # as it is now that the team is locked
    if team is None or case is None:
        return
    now = uow.clock.now()
    held = domain.held_back_by(await uow.consents.of(case_ref), uow.postpone_on_withdrawal)
    meeting = await uow.meetings.get(case.meeting_id) if case.meeting_id else None
    change = domain.after_consent_change(
        case, held, meeting_date=meeting.meeting_date if meeting else None, today=stockholm_date(now)
    )
    if change is None:
        return
    await uow.cases.set_status(case_ref, change.status, now)
    if change.status == "on_hold":
        log.info("case on hold: consent withdrawn", parties=[p.value for p in held])
    else:
        log.info("case back in the queue: consent given again")
    await settle(uow, team, now, change.taken_off)


async def case_closed(uow: MeetingUnitOfWork, case_ref: str, closed_at: datetime) -> None:
    """A closed case leaves the queue; its seat goes to the next case. When it was closed is
    kept, whatever its state here: its retention period runs from then."""
    case = await uow.cases.get(case_ref)
    if case is None:
        return
    await uow.cases.closed(case_ref, closed_at)
    if case.status not in domain.AWAITING_MEETING:
        return
    team = await uow.teams.lock(case.team_id)
    case = await uow.cases.get(case_ref)  # as it is now that the team is locked
    if case is None or case.status not in domain.AWAITING_MEETING:
        return
    now = uow.clock.now()
    await uow.cases.set_status(case_ref, "closed", now)
    if team is not None:
        await settle(uow, team, now)


# --------------------------------------------------------------------------- the team's agenda


async def settle(
    uow: MeetingUnitOfWork, team: Team, now: datetime, taken_off: Mapping[str, TakenOff] | None = None
) -> None:
    """Bring the team's agenda up to date: pass the due cut-offs, then fill the open meetings
    from the queue and announce every change. ``taken_off``: cases just taken off a meeting."""
    taken_off = dict(taken_off or {})
    open_meetings = await uow.meetings.open(team.team_id)
    due = domain.cutoff_due(open_meetings, now)
    for meeting in due:
        taken_off |= await pass_cutoff(uow, team, meeting, now)
    await refill(uow, team, now, taken_off, None if due else open_meetings)


async def pass_cutoff(uow: MeetingUnitOfWork, team: Team, meeting: Meeting, now: datetime) -> dict[str, TakenOff]:
    """The meeting's agenda is fixed (``domain.cut_off``); returns the cases taken off it."""
    on_agenda = await uow.cases.on_meeting(meeting.meeting_id)
    queue = await uow.cases.queue(team.team_id)
    consents = await uow.consents.of_cases(list({c.case_ref for c in on_agenda} | {w.case_ref for w in queue}))
    cut = domain.cut_off(team, meeting, on_agenda, queue, consents, now)
    await _place(uow, cut.placements, now)
    if cut.cancelled:
        await uow.meetings.cancel(
            meeting.meeting_id, reason=CancellationReason.NO_CASES, note=None, by="cut-off", now=now
        )
        log.info("meeting cancelled at cut-off: no cases", meeting_id=meeting.meeting_id)
    else:
        await uow.meetings.close(meeting.meeting_id)
        log.info(
            "agenda fixed at cut-off",
            meeting_id=meeting.meeting_id,
            cases=len(on_agenda) - len(cut.taken_off) + len(cut.moved_up),
            postponed=len(cut.taken_off),
        )
    await announce(uow, cut.events)
    return cut.taken_off


async def refill(
    uow: MeetingUnitOfWork,
    team: Team,
    now: datetime,
    taken_off: Mapping[str, TakenOff],
    open_meetings: list[Meeting] | None = None,
) -> None:
    """The open meetings (as loaded already, or loaded now) filled from the queue again
    (``domain.replan``), every move announced."""
    if open_meetings is None:
        open_meetings = await uow.meetings.open(team.team_id)
    queue = await uow.cases.queue(team.team_id)
    origins = {off.meeting_id for off in taken_off.values()} - {m.meeting_id for m in open_meetings}
    reminded = [ref for ref, off in taken_off.items() if off.reason == PostponementReason.CONSENT_MISSING]
    plan = domain.replan(
        team,
        open_meetings,
        queue,
        taken_off,
        origin_dates=await uow.meetings.dates(origins) if origins else {},
        referring={c.case_ref: c.referring_party for c in await uow.cases.get_many(reminded)} if reminded else {},
        now=now,
    )
    await _place(uow, plan.placements, now)
    await announce(uow, plan.events)


async def cancel(
    uow: MeetingUnitOfWork,
    team: Team,
    meeting: Meeting,
    reason: CancellationReason,
    *,
    note: str | None,
    by: str,
    now: datetime,
) -> dict[str, TakenOff]:
    """The meeting is cancelled and its cases taken off (they move on when the agenda is
    planned again, ahead of newer cases). Returns the cases taken off."""
    decision = domain.cancellation(team, meeting, await uow.cases.on_meeting(meeting.meeting_id), reason, now)
    await _place(uow, decision.placements, now)
    await uow.meetings.cancel(meeting.meeting_id, reason=reason, note=note, by=by, now=now)
    await announce(uow, decision.events)
    log.info(
        "meeting cancelled", meeting_id=meeting.meeting_id, reason=reason.value, cases_moved=len(decision.taken_off)
    )
    return decision.taken_off


async def _place(uow: MeetingUnitOfWork, placements: Sequence[Placement], now: datetime) -> None:
    await uow.cases.place_many(placements, now)


# --------------------------------------------------------------------------- the coordinator


async def cancel_meeting(
    uow: MeetingUnitOfWork, meeting_id: str, reason: CancellationReason, note: str | None, by: str
) -> int:
    """A coordinator cancels a meeting; its cases move to the next meeting ahead of newer ones.
    Returns how many cases moved."""
    team, meeting = await locked_meeting(uow, meeting_id)
    now = uow.clock.now()
    domain.check_cancellable(
        status=meeting.status,
        meeting_date=meeting.meeting_date,
        today=stockholm_date(now),
        consultations=await uow.consultations.count_at(meeting_id),
    )
    taken_off = await cancel(uow, team, meeting, reason, note=note, by=by, now=now)
    await settle(uow, team, now, taken_off)
    return len(taken_off)


async def locked_meeting(uow: MeetingUnitOfWork, meeting_id: str) -> tuple[Team, Meeting]:
    """The meeting and its team, the team's row locked (Refused if there is no such meeting)."""
    found = await meeting(uow, meeting_id)
    team = await uow.teams.lock(found.team_id)
    now_locked = await uow.meetings.get(meeting_id)  # as it is now that the team is locked
    assert team is not None and now_locked is not None  # a meeting's team and the meeting stay
    return team, now_locked


# --------------------------------------------------------------------------- reads


async def meeting(uow: MeetingUnitOfWork, meeting_id: str) -> Meeting:
    found = await uow.meetings.get(meeting_id)
    if found is None:
        raise Refused("meeting_not_found", "no such meeting", conflict=True)
    return found


async def agenda_of(uow: MeetingUnitOfWork, meeting: Meeting) -> list[AgendaEntry]:
    return (await uow.agendas.of([meeting.meeting_id]))[meeting.meeting_id]


async def team_meetings(
    uow: MeetingUnitOfWork, team: Team, since: date | None, weeks: int
) -> list[tuple[Meeting, list[AgendaEntry]]]:
    """The team's meetings from ``since`` (default today) for ``weeks`` weeks, with agendas."""
    start = since or stockholm_date(uow.clock.now())
    meetings = await uow.meetings.of_team(team.team_id, start, start + timedelta(weeks=weeks))
    agendas = await uow.agendas.of([m.meeting_id for m in meetings])
    return [(m, agendas[m.meeting_id]) for m in meetings]


async def queue(uow: MeetingUnitOfWork, team: Team) -> list[tuple[Waiting, date | None]]:
    """The team's queue in order, each case with its meeting's date or the date it can expect."""
    waiting = await uow.cases.queue(team.team_id)
    expected = await _expectation(uow, team)
    return [(case, expected(position)) for position, case in enumerate(waiting, start=1)]


@dataclass(frozen=True)
class CaseSchedule:
    """Where a case stands: its place in the team's queue and its meeting (or expected date)."""

    case: Case
    position: int | None  # None: not in the queue
    meeting_date: date | None
    expected_date: date | None


async def case_schedule(uow: MeetingUnitOfWork, case_ref: str) -> CaseSchedule:
    case = await uow.cases.get(case_ref)
    if case is None:
        raise Refused("case_not_found", "no such case")
    on = await uow.meetings.get(case.meeting_id) if case.meeting_id else None
    if case.status != "queued":
        return CaseSchedule(case, None, on.meeting_date if on else None, None)
    position = domain.queue_position(case, await uow.cases.queue(case.team_id))
    team = await uow.teams.get(case.team_id)
    expected = (await _expectation(uow, team))(position) if team is not None else None
    return CaseSchedule(case, position, on.meeting_date if on else None, on.meeting_date if on else expected)


async def _expectation(uow: MeetingUnitOfWork, team: Team) -> Callable[[int], date | None]:
    open_slots = domain.slots(await uow.meetings.open(team.team_id))
    last = await uow.meetings.last_date(team.team_id)
    today = stockholm_date(uow.clock.now())
    return lambda position: domain.expected_date(
        position=position,
        open_slots=open_slots,
        cadence_weeks=team.entry.cadence_weeks,
        capacity=team.entry.capacity,
        last_meeting=last,
        today=today,
    )


async def forget_closed_cases(uow: MeetingUnitOfWork, cutoff: datetime) -> list[str]:
    """Retention (``shared.platform.retention``): the case-level rows (the case, its
    consultation record, its consent state) of cases closed before ``cutoff`` are deleted; the
    meetings stay (they are the teams', not the cases'). Returns the cases deleted."""
    return await uow.cases.delete_closed_before(cutoff, RETENTION_BATCH)
