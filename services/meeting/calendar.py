"""The calendar's use cases: the team registry (seeded from the registry file, changed by
administrators), generating each team's meetings ahead, skip dates, and re-timing meetings
when a team's time changes; and the scheduler's round for one team.

A change of the calendar changes agendas too (a cancelled meeting's cases move on), so each
use case ends by settling the team's agenda (``agenda.settle``), with the team's row locked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

import structlog

from shared.contracts.vocabulary import CancellationReason
from shared.platform.clock import stockholm_date

from . import agenda, domain
from .domain import ALL_TEAMS, Meeting, Refused, SkipDate, TakenOff, Team, TeamEntry
from .uow import MeetingUnitOfWork, announce

log = structlog.get_logger("meeting")

REGISTRY_FILE = "registry-file"  # who saved a team that came from the registry file


# --------------------------------------------------------------------------- the registry


async def seed_teams(uow: MeetingUnitOfWork, entries: Sequence[Mapping[str, Any]], file_version: int) -> int:
    """Teams of the registry file that are new, or whose entry came from an older file
    version, are saved. Returns how many were saved."""
    saved = 0
    for raw in sorted(entries, key=lambda e: str(e.get("team_id"))):  # one lock order everywhere
        try:
            team_id, entry = raw["team_id"], domain.team_entry(raw)
        except (KeyError, TypeError, ValueError, AttributeError, Refused) as exc:
            log.error("registry file entry invalid; skipped", team_id=raw.get("team_id"), error=type(exc).__name__)
            continue
        existing = await uow.teams.get(team_id)
        if existing is not None and (existing.file_version or 0) >= file_version:
            continue
        if await save_team(uow, team_id, entry, by=REGISTRY_FILE, file_version=file_version):
            saved += 1
    return saved


async def save_team(
    uow: MeetingUnitOfWork, team_id: str, entry: TeamEntry, *, by: str, file_version: int | None = None
) -> bool:
    """Create or change a team, announced as TeamUpdated. A new weekday or cadence starts a new
    calendar: open meetings not on it are cancelled (``rescheduled``) and their cases move on;
    a new time, cut-off or capacity applies to the open meetings. False if nothing changed."""
    now = uow.clock.now()
    existing = await uow.teams.lock(team_id)
    team = domain.saved_team(existing, team_id, entry, by=by, file_version=file_version, now=now)
    if team is None:
        return False
    if existing is not None:
        await uow.teams.update(team)
    elif not await uow.teams.add(team):
        return False  # another instance created it just now
    await announce(uow, [domain.team_updated(team)])
    log.info("team saved", team_id=team_id, revision=team.revision, by=by)
    taken_off = await _apply_calendar_change(uow, team, now) if existing is not None else {}
    await generate(uow, team, now)
    await agenda.settle(uow, team, now, taken_off)
    return True


async def _apply_calendar_change(uow: MeetingUnitOfWork, team: Team, now: datetime) -> dict[str, TakenOff]:
    """Open meetings off the team's (new) calendar are cancelled; those on it, and the meetings
    ahead whose agenda is fixed already, take the team's time. Returns the cases taken off."""
    calendar = team.calendar
    taken_off: dict[str, TakenOff] = {}
    for meeting in await uow.meetings.open(team.team_id):
        if domain.on_calendar(calendar, meeting.meeting_date):
            await _retime(uow, team, meeting, now)
        else:
            taken_off |= await agenda.cancel(
                uow, team, meeting, CancellationReason.RESCHEDULED, note=None, by="registry", now=now
            )
    # meetings past their cut-off but still ahead keep their agenda and take the new time
    for meeting in await uow.meetings.fixed_ahead(team.team_id, stockholm_date(now)):
        if domain.on_calendar(calendar, meeting.meeting_date):
            await _retime(uow, team, meeting, now, keep_cutoff=True)
    return taken_off


async def _retime(
    uow: MeetingUnitOfWork, team: Team, meeting: Meeting, now: datetime, *, keep_cutoff: bool = False
) -> None:
    retiming = domain.retiming(
        team, meeting, await uow.cases.on_meeting(meeting.meeting_id), now, keep_cutoff=keep_cutoff
    )
    if retiming is not None:
        await uow.meetings.retime(retiming.meeting)
        await announce(uow, retiming.events)


# --------------------------------------------------------------------------- the calendar


async def maintain(uow: MeetingUnitOfWork, team_id: str) -> bool:
    """The scheduler's work for one team: generate the calendar ahead, pass due cut-offs,
    re-plan. Skips a team another instance is working on. True if it ran."""
    team = await uow.teams.lock(team_id, skip_locked=True)
    if team is None:
        return False
    now = uow.clock.now()
    await generate(uow, team, now)
    await agenda.settle(uow, team, now)
    return True


async def generate(uow: MeetingUnitOfWork, team: Team, now: datetime) -> None:
    """The team's meetings up to the horizon are on the calendar, each new one announced; one
    cancelled for a skip date or a calendar change that is undone is open again."""
    for meeting in domain.calendar_meetings(
        team, now=now, horizon_weeks=uow.horizon_weeks, skip_dates=await uow.skip_dates.of_team(team.team_id)
    ):
        if await uow.meetings.add(meeting) or await uow.meetings.reopen(meeting):
            await announce(uow, [domain.meeting_scheduled(team, meeting)])


async def add_skip_date(uow: MeetingUnitOfWork, skip: SkipDate, *, by: str) -> int:
    """No meeting on this date (for one team or all): an open meeting then is cancelled
    (``holiday``) and its cases move on. Returns how many meetings were cancelled."""
    if skip.team_id != ALL_TEAMS:
        await team(uow, skip.team_id)
    await uow.skip_dates.add(skip)
    now = uow.clock.now()
    cancelled = 0
    for team_id in [skip.team_id] if skip.team_id != ALL_TEAMS else await uow.teams.ids():
        locked = await uow.teams.lock(team_id)
        if locked is None:
            continue
        meeting = await uow.meetings.on_date(team_id, skip.on_date)
        taken_off: dict[str, TakenOff] = {}
        if meeting is not None and domain.holiday_cancels(
            meeting, today=stockholm_date(now), consultations=await uow.consultations.count_at(meeting.meeting_id)
        ):
            taken_off = await agenda.cancel(uow, locked, meeting, CancellationReason.HOLIDAY, note=None, by=by, now=now)
            cancelled += 1
        await agenda.settle(uow, locked, now, taken_off)
    return cancelled


async def remove_skip_date(uow: MeetingUnitOfWork, team_id: str, on_date: date) -> None:
    """The calendar fills the date again at the scheduler's next round."""
    if not await uow.skip_dates.remove(team_id, on_date):
        raise Refused("skip_date_not_found", "no such skip date")


# --------------------------------------------------------------------------- reads


async def team(uow: MeetingUnitOfWork, team_id: str) -> Team:
    found = await uow.teams.get(team_id)
    if found is None:
        raise Refused("team_not_found", "no such team")
    return found


async def teams(uow: MeetingUnitOfWork) -> list[Team]:
    return await uow.teams.all()


async def skip_dates(uow: MeetingUnitOfWork) -> list[SkipDate]:
    return await uow.skip_dates.all()
