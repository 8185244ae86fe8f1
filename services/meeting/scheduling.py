"""Meeting use-cases: the team registry, the calendar, the agenda, cut-offs, cancellations,
pre-meetings and consultations. Each runs inside the caller's transaction, with the team's row
locked, and announces what changed through ``emit`` (the transactional outbox).

The rules themselves live in ``domain.py``; the SQL in ``store.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Awaitable, Callable

import asyncpg
import structlog

from shared.platform import consent
from shared.platform.clock import Clock, stockholm_date
from shared.contracts import (CaseNotConsulted, CasePostponed, CaseReferred, CaseScheduled,
                           ConsentReminder, ConsultationHeld, Contract, MeetingCancelled,
                           MeetingScheduled, PlanAction, PreMeetingHeld, TeamUpdated)
from shared.platform.logging import bind_contextvars
from shared.contracts.vocabulary import (CancellationReason, HostUnit, NotConsultedReason, Party,
                               PostponementReason)

from . import domain, store
from .domain import Refused, TakenOff

log = structlog.get_logger("meeting")

Emit = Callable[..., Awaitable[object]]  # emit(event, ordering_key=...)
REGISTRY_FILE = "registry-file"


@dataclass(frozen=True)
class Consultation:
    """What the coordinator records for a case that was consulted."""

    held_on: date
    parties_present: tuple[Party, ...]
    others_invited: tuple[str, ...]
    individual_attended: bool
    actions: tuple[PlanAction, ...]


class Scheduling:
    def __init__(self, *, clock: Clock, horizon_weeks: int, postpone_on_withdrawal: frozenset[str]):
        self.clock = clock
        self.horizon_weeks = horizon_weeks
        self.postpone_on_withdrawal = postpone_on_withdrawal

    # ------------------------------------------------------------------ the registry

    async def seed_teams(self, conn: asyncpg.Connection, emit: Emit, teams: list[dict],
                         file_version: int) -> int:
        """Teams of the registry file that are new, or whose entry came from an older file
        version, are saved. Returns how many were saved."""
        saved = 0
        for entry in sorted(teams, key=lambda e: str(e.get("team_id"))):  # one lock order everywhere
            try:
                team_id, fields = entry["team_id"], entry_fields(entry)
            except (KeyError, TypeError, ValueError, AttributeError, Refused) as exc:
                log.error("registry file entry invalid; skipped", team_id=entry.get("team_id"),
                          error=type(exc).__name__)
                continue
            existing = await store.get_team(conn, team_id)
            if existing is not None and (existing["file_version"] or 0) >= file_version:
                continue
            if await self.save_team(conn, emit, team_id, fields, by=REGISTRY_FILE,
                                    file_version=file_version):
                saved += 1
        return saved

    async def save_team(self, conn: asyncpg.Connection, emit: Emit, team_id: str, fields: dict,
                        *, by: str, file_version: int | None = None) -> bool:
        """Create or change a team. A new weekday or cadence starts a new calendar: open
        meetings not on it are cancelled (``rescheduled``) and their cases move on; a new time,
        cut-off or capacity applies to the open meetings. False if nothing changed."""
        now = self.clock.now()
        existing = await store.lock_team(conn, team_id)
        if existing is None:
            anchor = domain.first_anchor(fields["weekday"], fields["meeting_time"],
                                         fields["cutoff_days"], now)
            if not await store.insert_team(conn, team_id, fields, anchor=anchor,
                                           file_version=file_version, by=by, now=now):
                return False  # another instance created it just now
        else:
            if store.team_fields(existing) == fields and file_version is None:
                return False
            anchor = existing["calendar_anchor"]
            if (existing["weekday"], existing["cadence_weeks"]) != (fields["weekday"],
                                                                    fields["cadence_weeks"]):
                anchor = domain.first_anchor(fields["weekday"], fields["meeting_time"],
                                             fields["cutoff_days"], now)
            await store.update_team(conn, team_id, fields, anchor=anchor,
                                    file_version=file_version or existing["file_version"],
                                    by=by, now=now)
        team = await store.get_team(conn, team_id)
        await emit(team_updated(team), ordering_key=f"team:{team_id}")
        log.info("team saved", team_id=team_id, revision=team["revision"], by=by)
        taken_off = await self._apply_calendar_change(conn, emit, team, now) if existing else {}
        await self._settle(conn, emit, team, now, taken_off, generate=True)
        return True

    async def _apply_calendar_change(self, conn, emit, team, now) -> dict[str, TakenOff]:
        calendar = store.calendar_of(team)
        taken_off: dict[str, TakenOff] = {}
        for meeting in await store.open_meetings(conn, team["team_id"]):
            if not domain.on_calendar(calendar, meeting["meeting_date"]):
                taken_off |= await self._cancel(conn, emit, team, meeting,
                                                CancellationReason.RESCHEDULED, None, "registry", now)
                continue
            await self._retime(conn, emit, team, meeting, calendar, now)
        # meetings past their cut-off but still ahead keep their agenda and take the new time
        for meeting in await store.fixed_meetings_ahead(conn, team["team_id"], stockholm_date(now)):
            if domain.on_calendar(calendar, meeting["meeting_date"]):
                await self._retime(conn, emit, team, meeting, calendar, now, keep_cutoff=True)
        return taken_off

    async def _retime(self, conn, emit, team, meeting, calendar, now, *, keep_cutoff=False) -> None:
        """A meeting takes the team's time, cut-off and capacity; announced again, and so is
        each case on it (its start time changed)."""
        day = meeting["meeting_date"]
        starts = domain.starts_at(day, calendar.meeting_time)
        cutoff = (meeting["cutoff_at"] if keep_cutoff
                  else domain.cutoff_at(day, calendar.meeting_time, calendar.cutoff_days))
        capacity = meeting["capacity"] if keep_cutoff else calendar.capacity
        if (starts, cutoff, capacity) == (meeting["starts_at"], meeting["cutoff_at"], meeting["capacity"]):
            return
        await store.reschedule_meeting(conn, meeting["meeting_id"], starts_at=starts,
                                       cutoff_at=cutoff, capacity=capacity)
        retimed = await store.get_meeting(conn, meeting["meeting_id"])
        await emit(meeting_scheduled(team, retimed), ordering_key=meeting["meeting_id"])
        if starts != meeting["starts_at"]:
            for case in await store.cases_on_meeting(conn, meeting["meeting_id"]):
                await emit(case_scheduled(team["team_id"], case["case_ref"], retimed, now),
                           ordering_key=case["case_ref"])

    async def add_skip_date(self, conn, emit, team_id: str, on_date: date, reason: str, by: str) -> int:
        """No meeting on this date (for one team or all): an open meeting then is cancelled
        (``holiday``). Returns how many meetings were cancelled."""
        await store.add_skip_date(conn, team_id, on_date, reason)
        cancelled = 0
        now = self.clock.now()
        for tid in ([team_id] if team_id != store.ALL_TEAMS else await store.team_ids(conn)):
            team = await store.lock_team(conn, tid)
            if team is None:
                continue
            meeting = await conn.fetchrow(
                "SELECT * FROM meetings WHERE team_id = $1 AND meeting_date = $2 AND status <> 'cancelled'",
                tid, on_date)
            taken_off = {}
            if (meeting is not None and on_date >= stockholm_date(now)
                    and await store.count_consultations(conn, meeting["meeting_id"]) == 0):
                taken_off = await self._cancel(conn, emit, team, meeting,
                                               CancellationReason.HOLIDAY, None, by, now)
                cancelled += 1
            await self._settle(conn, emit, team, now, taken_off)
        return cancelled

    # ------------------------------------------------------------------ the agenda

    async def case_referred(self, conn: asyncpg.Connection, emit: Emit, event: CaseReferred) -> None:
        """The case joins its team's queue and is placed on the first open meeting with room."""
        now = self.clock.now()
        team = await store.lock_team(conn, event.team_id)
        await consent.record_initial(conn, event)
        held = domain.held_back_by(await consent.consents_of(conn, event.case_ref),
                                   self.postpone_on_withdrawal)
        inserted = await store.insert_case(
            conn, case_ref=event.case_ref, team_id=event.team_id, municipality=event.municipality,
            referring_party=event.referring_party.value, referred_at=event.referred_at,
            status="on_hold" if held else "queued", now=now)
        if not inserted:
            return
        if team is None:
            log.error("case referred to a team not in the registry; it waits in the queue "
                      "until the team is registered", team_id=event.team_id)
            return
        await self._settle(conn, emit, team, now)

    async def consent_changed(self, conn: asyncpg.Connection, emit: Emit, case_ref: str) -> None:
        """After a consent change: a withdrawal for a party that postpones takes the case off
        its agenda (on hold); consent given again puts it back in the queue at its place."""
        case = await store.get_case(conn, case_ref)
        if case is None or case["status"] not in ("queued", "on_hold"):
            return
        team = await store.lock_team(conn, case["team_id"])
        case = await store.get_case(conn, case_ref)  # as it is now that the team is locked
        if team is None:
            return
        now = self.clock.now()
        held = domain.held_back_by(await consent.consents_of(conn, case_ref),
                                   self.postpone_on_withdrawal)
        if case["status"] == "queued" and held and case["meeting_id"]:
            meeting = await store.get_meeting(conn, case["meeting_id"])
            if meeting["meeting_date"] < stockholm_date(now):  # held already: stays to be recorded
                return
        if case["status"] == "queued" and held:
            await store.set_case_status(conn, case_ref, "on_hold", now)
            taken_off = {}
            if case["meeting_id"]:
                taken_off[case_ref] = TakenOff(case["meeting_id"],
                                               PostponementReason.CONSENT_WITHDRAWN, held)
            log.info("case on hold: consent withdrawn", parties=[p.value for p in held])
            await self._settle(conn, emit, team, now, taken_off)
        elif case["status"] == "on_hold" and not held:
            await store.set_case_status(conn, case_ref, "queued", now)
            log.info("case back in the queue: consent given again")
            await self._settle(conn, emit, team, now)

    async def case_closed(self, conn: asyncpg.Connection, emit: Emit, case_ref: str) -> None:
        """A closed case leaves the queue; its seat goes to the next case."""
        case = await store.get_case(conn, case_ref)
        if case is None or case["status"] not in ("queued", "on_hold"):
            return
        team = await store.lock_team(conn, case["team_id"])
        case = await store.get_case(conn, case_ref)  # as it is now that the team is locked
        if case["status"] not in ("queued", "on_hold"):
            return
        await store.set_case_status(conn, case_ref, "closed", self.clock.now())
        if team is not None:
            await self._settle(conn, emit, team, self.clock.now())

    async def maintain(self, conn: asyncpg.Connection, emit: Emit, team_id: str) -> bool:
        """The scheduler's work for one team: generate the calendar ahead, pass due cut-offs,
        re-plan. Skips a team another instance is working on. True if it ran."""
        team = await store.lock_team(conn, team_id, skip_locked=True)
        if team is None:
            return False
        await self._settle(conn, emit, team, self.clock.now(), generate=True)
        return True

    async def _settle(self, conn, emit, team, now: datetime,
                      taken_off: dict[str, TakenOff] | None = None, *, generate: bool = False) -> None:
        """Bring the team's calendar and agenda up to date: (new meetings,) due cut-offs, then
        fill the open meetings from the queue and announce every change."""
        taken_off = dict(taken_off or {})
        if generate:
            await self._generate(conn, emit, team, now)
        for meeting in await store.due_cutoffs(conn, team["team_id"], now):
            taken_off |= await self._pass_cutoff(conn, emit, team, meeting, now)
        await self._refill(conn, emit, team, now, taken_off)

    async def _generate(self, conn, emit, team, now: datetime) -> None:
        calendar = store.calendar_of(team)
        for day in domain.calendar_dates(calendar, now=now, horizon_weeks=self.horizon_weeks,
                                         skip_dates=await store.skip_dates(conn, team["team_id"])):
            meeting_id = domain.meeting_id(team["team_id"], day)
            times = dict(starts_at=domain.starts_at(day, calendar.meeting_time),
                         cutoff_at=domain.cutoff_at(day, calendar.meeting_time, calendar.cutoff_days),
                         capacity=calendar.capacity)
            if (await store.insert_meeting(conn, meeting_id=meeting_id, team_id=team["team_id"],
                                           meeting_date=day, **times)
                    # cancelled for a skip date or a calendar change that is undone: back again
                    or await store.reopen_meeting(conn, team["team_id"], day, **times)):
                await emit(meeting_scheduled(team, await store.get_meeting(conn, meeting_id)),
                           ordering_key=meeting_id)

    async def _pass_cutoff(self, conn, emit, team, meeting, now: datetime) -> dict[str, TakenOff]:
        """At the cut-off: cases lacking a fixed party's consent are taken off (to the next
        meeting, ahead of newer cases); the agenda is fixed, or the meeting cancelled if empty."""
        cases = await store.cases_on_meeting(conn, meeting["meeting_id"])
        consents = await store.consents_of_cases(conn, [c["case_ref"] for c in cases])
        required = store.fixed_parties(team)
        taken_off = {}
        for case in cases:
            missing = domain.missing_consents(required, consents[case["case_ref"]])
            if missing:
                await store.place_case(conn, case["case_ref"], None, postponed=False, now=now)
                taken_off[case["case_ref"]] = TakenOff(
                    meeting["meeting_id"], PostponementReason.CONSENT_MISSING, missing)
        seats = meeting["capacity"] - (len(cases) - len(taken_off))
        moved_up = await self._fill_freed_seats(conn, emit, team, meeting, seats, required,
                                                set(taken_off), now) if taken_off else 0
        if len(taken_off) == len(cases) and not moved_up:
            await store.cancel_meeting(conn, meeting["meeting_id"], reason=CancellationReason.NO_CASES,
                                       note=None, by="cut-off", now=now)
            await emit(meeting_cancelled(team, meeting, CancellationReason.NO_CASES,
                                         len(taken_off), now), ordering_key=meeting["meeting_id"])
            log.info("meeting cancelled at cut-off: no cases", meeting_id=meeting["meeting_id"])
        else:
            await store.set_meeting_status(conn, meeting["meeting_id"], "closed")
            log.info("agenda fixed at cut-off", meeting_id=meeting["meeting_id"],
                     cases=len(cases) - len(taken_off) + moved_up, postponed=len(taken_off))
        return taken_off

    async def _fill_freed_seats(self, conn, emit, team, meeting, seats: int, required,
                                taken_off: set[str], now: datetime) -> int:
        """Seats freed at the cut-off go to the next cases in the queue that have every fixed
        party's consent (they move up from a later meeting, or get their first)."""
        waiting = [w for w in await store.waiting_cases(conn, team["team_id"])
                   if w.case_ref not in taken_off and w.meeting_id != meeting["meeting_id"]]
        consents = await store.consents_of_cases(conn, [w.case_ref for w in waiting])
        moved = 0
        for case in waiting:
            if moved >= seats:
                break
            if domain.missing_consents(required, consents[case.case_ref]):
                continue
            await store.place_case(conn, case.case_ref, meeting["meeting_id"], postponed=False, now=now)
            bind_contextvars(case_ref=case.case_ref)
            await emit(case_scheduled(team["team_id"], case.case_ref, meeting, now),
                       ordering_key=case.case_ref)
            moved += 1
        return moved

    async def _refill(self, conn, emit, team, now: datetime, taken_off: dict[str, TakenOff]) -> None:
        open_meetings = {m["meeting_id"]: m for m in await store.open_meetings(conn, team["team_id"])}
        waiting = await store.waiting_cases(conn, team["team_id"])
        planned = domain.plan_agenda(store.slots(open_meetings.values()), waiting)
        current = {w.case_ref: w.meeting_id for w in waiting}
        dates = {mid: m["meeting_date"] for mid, m in open_meetings.items()}
        origins = {off.meeting_id for off in taken_off.values()} - dates.keys()
        dates |= await store.meeting_dates(conn, origins)
        for move in domain.moves(current, planned, dates, taken_off):
            if move.to_meeting != current.get(move.case_ref):
                await store.place_case(conn, move.case_ref, move.to_meeting,
                                       postponed=move.postponed is not None, now=now)
            elif move.postponed is not None:  # taken off and put straight back (no other seat)
                await store.place_case(conn, move.case_ref, move.to_meeting, postponed=True, now=now)
            bind_contextvars(case_ref=move.case_ref)
            to = open_meetings.get(move.to_meeting) if move.to_meeting else None
            if move.postponed is not None:
                await emit(CasePostponed(
                    case_ref=move.case_ref, team_id=team["team_id"],
                    from_meeting_id=move.from_meeting, from_meeting_date=dates[move.from_meeting],
                    to_meeting_id=move.to_meeting, to_meeting_date=to and to["meeting_date"],
                    reason=move.postponed, missing_parties=move.missing_parties,
                    postponed_at=now), ordering_key=move.case_ref)
            if to is not None:
                await emit(case_scheduled(team["team_id"], move.case_ref, to, now),
                           ordering_key=move.case_ref)
            if move.postponed == PostponementReason.CONSENT_MISSING:
                case = await store.get_case(conn, move.case_ref)
                await emit(ConsentReminder(
                    recipient=Party(case["referring_party"]), case_ref=move.case_ref,
                    team_id=team["team_id"], missing_parties=move.missing_parties,
                    next_meeting_id=move.to_meeting, next_meeting_date=to and to["meeting_date"],
                    reminded_at=now), ordering_key=move.case_ref)

    # ------------------------------------------------------------------ the meeting

    async def cancel(self, conn, emit, meeting_id: str, reason: CancellationReason,
                     note: str | None, by: str) -> dict:
        """A coordinator cancels a meeting; its cases move to the next meeting ahead of newer ones."""
        team, meeting = await self._meeting_of_locked_team(conn, meeting_id)
        now = self.clock.now()
        domain.check_cancellable(status=meeting["status"], meeting_date=meeting["meeting_date"],
                                 today=stockholm_date(now),
                                 consultations=await store.count_consultations(conn, meeting_id))
        taken_off = await self._cancel(conn, emit, team, meeting, reason, note, by, now)
        await self._settle(conn, emit, team, now, taken_off)
        return {"meeting_id": meeting_id, "status": "cancelled", "reason": reason.value,
                "cases_moved": len(taken_off)}

    async def _cancel(self, conn, emit, team, meeting, reason, note, by, now) -> dict[str, TakenOff]:
        cases = await store.cases_on_meeting(conn, meeting["meeting_id"])
        for case in cases:
            await store.place_case(conn, case["case_ref"], None, postponed=False, now=now)
        await store.cancel_meeting(conn, meeting["meeting_id"], reason=reason, note=note, by=by, now=now)
        await emit(meeting_cancelled(team, meeting, reason, len(cases), now),
                   ordering_key=meeting["meeting_id"])
        log.info("meeting cancelled", meeting_id=meeting["meeting_id"], reason=reason.value,
                 cases_moved=len(cases))
        return {c["case_ref"]: TakenOff(meeting["meeting_id"], PostponementReason.MEETING_CANCELLED)
                for c in cases}

    async def record_pre_meeting(self, conn, emit, meeting_id: str, held_on: date, by: str) -> dict:
        team, meeting = await self._meeting_of_locked_team(conn, meeting_id)
        now = self.clock.now()
        domain.check_pre_meeting(status=meeting["status"], meeting_date=meeting["meeting_date"],
                                 held_on=held_on, today=stockholm_date(now))
        if meeting["pre_meeting_held_on"] != held_on:
            await store.record_pre_meeting(conn, meeting_id, held_on, by)
            await emit(PreMeetingHeld(
                meeting_id=meeting_id, team_id=team["team_id"], municipality=team["municipality"],
                meeting_date=meeting["meeting_date"], held_on=held_on, recorded_at=now),
                ordering_key=meeting_id)
        return {"meeting_id": meeting_id, "pre_meeting_held_on": held_on.isoformat()}

    async def record_consultation(self, conn, emit, meeting_id: str, case_ref: str,
                                  record: Consultation | NotConsultedReason, by: str) -> tuple[bool, dict]:
        """Record the consultation of a case (or that it was not consulted). The same record
        again is answered as before (False: nothing new); a different one is refused."""
        team, meeting = await self._meeting_of_locked_team(conn, meeting_id)
        now = self.clock.now()
        case = await store.get_case(conn, case_ref)
        if case is None or case["team_id"] != team["team_id"]:
            raise Refused("case_not_found", "no such case in this team", conflict=True)
        bind_contextvars(case_ref=case_ref)
        event = self._consultation_event(team, meeting, case, record, now)
        published = event.model_dump(mode="json", exclude={"recorded_at"})
        earlier = await store.get_consultation(conn, case_ref)
        if earlier is not None:
            if earlier["meeting_id"] == meeting_id and _record_of(earlier) == published:
                return False, published
            raise Refused("already_recorded", "a different outcome is already recorded for "
                                              "this case", conflict=True)
        held_on = record.held_on if isinstance(record, Consultation) else stockholm_date(now)
        domain.check_consultation(
            meeting_status=meeting["status"], meeting_date=meeting["meeting_date"],
            case_status=case["status"], on_this_meeting=case["meeting_id"] == meeting_id,
            held_on=held_on, today=stockholm_date(now),
            parties_present=tuple(record.parties_present) if isinstance(record, Consultation) else (),
            actions=tuple(domain.ActionRecord(a.type, a.responsible_party, a.due_on)
                          for a in record.actions) if isinstance(record, Consultation) else ())
        outcome = "held" if isinstance(record, Consultation) else "not_consulted"
        await store.insert_consultation(conn, case_ref=case_ref, meeting_id=meeting_id,
                                        outcome=outcome, record=published, by=by, now=now)
        await store.set_case_status(conn, case_ref, "consulted" if outcome == "held" else outcome,
                                    now, keep_meeting=True)
        await emit(event, ordering_key=case_ref)
        log.info("consultation recorded", outcome=outcome, meeting_id=meeting_id)
        return True, published

    def _consultation_event(self, team, meeting, case, record, now) -> Contract:
        common = dict(case_ref=case["case_ref"], team_id=team["team_id"],
                      municipality=team["municipality"], meeting_id=meeting["meeting_id"],
                      meeting_date=meeting["meeting_date"],
                      referring_party=Party(case["referring_party"]), recorded_at=now)
        if isinstance(record, Consultation):
            return ConsultationHeld(**common, held_on=record.held_on, referred_at=case["referred_at"],
                                    parties_present=record.parties_present,
                                    others_invited=record.others_invited,
                                    individual_attended=record.individual_attended,
                                    actions=record.actions)
        return CaseNotConsulted(**common, reason=record)

    async def _meeting_of_locked_team(self, conn, meeting_id: str):
        meeting = await store.get_meeting(conn, meeting_id)
        if meeting is None:
            raise Refused("meeting_not_found", "no such meeting", conflict=True)
        team = await store.lock_team(conn, meeting["team_id"])
        return team, await store.get_meeting(conn, meeting_id)


def _record_of(row) -> dict:
    return json.loads(row["record"])


# --------------------------------------------------------------------------- events of rows


def entry_fields(entry: dict) -> dict:
    """A team entry of the registry file (or an administrator's request) as table fields."""
    hour, minute = (int(x) for x in entry["time"].split(":"))
    return {"name": entry["name"], "municipality": entry["municipality"],
            "host_unit_type": HostUnit(entry["host_unit"]["type"]).value,
            "host_unit_name": entry["host_unit"]["name"],
            "cadence_weeks": entry["cadence_weeks"],
            "weekday": domain.weekday_number(entry["weekday"]),
            "meeting_time": time(hour, minute), "capacity": entry["capacity"],
            "cutoff_days": entry["cutoff_days"],
            "fixed_members": {Party(p).value: m for p, m in sorted(entry["fixed_members"].items())}}


def team_updated(team) -> TeamUpdated:
    return TeamUpdated(
        team_id=team["team_id"], team_name=team["name"], municipality=team["municipality"],
        host_unit_type=team["host_unit_type"], host_unit_name=team["host_unit_name"],
        cadence_weeks=team["cadence_weeks"], weekday=team["weekday"],
        meeting_time=team["meeting_time"].strftime("%H:%M"), capacity=team["capacity"],
        cutoff_days=team["cutoff_days"], fixed_parties=store.fixed_parties(team),
        revision=team["revision"], updated_at=team["updated_at"])


def meeting_scheduled(team, meeting) -> MeetingScheduled:
    return MeetingScheduled(
        meeting_id=meeting["meeting_id"], team_id=team["team_id"],
        municipality=team["municipality"], meeting_date=meeting["meeting_date"],
        starts_at=meeting["starts_at"], cutoff_at=meeting["cutoff_at"],
        capacity=meeting["capacity"])


def case_scheduled(team_id: str, case_ref: str, meeting, now: datetime) -> CaseScheduled:
    return CaseScheduled(case_ref=case_ref, team_id=team_id, meeting_id=meeting["meeting_id"],
                         meeting_date=meeting["meeting_date"], starts_at=meeting["starts_at"],
                         scheduled_at=now)


def meeting_cancelled(team, meeting, reason, cases_moved: int, now: datetime) -> MeetingCancelled:
    return MeetingCancelled(
        meeting_id=meeting["meeting_id"], team_id=team["team_id"],
        municipality=team["municipality"], meeting_date=meeting["meeting_date"],
        reason=reason, cases_moved=cases_moved, cancelled_at=now)
