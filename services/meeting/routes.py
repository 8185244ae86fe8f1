"""Meeting HTTP API (thin): a team's meetings and agendas, the queue, the pre-meeting, the
consultation record, cancellations, and the team registry.

Who may do what: a team's coordinator and members read its meetings and agendas; its
coordinator records pre-meetings and consultations and cancels meetings; administrators manage
teams and skip dates; the referring party's officers may ask where their case stands.

Each route checks the caller, runs a use case (``calendar``, ``agenda``, ``consultation``) in
a unit of work that commits before the answer, and shapes the answer. A refusal of the rules
rolls the unit of work back and is answered 404 (not found), 409 (state) or 422 (input).
"""

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import date
from typing import Annotated, Any, Literal
from weakref import WeakKeyDictionary

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from shared.contracts import PlanAction
from shared.contracts.vocabulary import CancellationReason, HostUnit, Invitee, NotConsultedReason, Party
from shared.platform.auth import Caller, Principal, Role, require_roles
from shared.platform.http import FORBIDDEN, TEXT, UNAUTHENTICATED, ErrorBody, runtime_of, units_of_work

from . import agenda, calendar, consultation, domain
from .domain import AgendaEntry, Case, Consultation, Meeting, Refused, SkipDate, Team
from .referral_api import ReferralApi
from .uow import MeetingUnitOfWork

Id = Annotated[str, Path(min_length=1, max_length=48, pattern=r"^[A-Za-z0-9_-]+$")]
TeamId = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
NOT_FOUND = {404: {"model": ErrorBody, "description": "No such team, meeting or case"}}
CONFLICT = {409: {"model": ErrorBody, "description": "Not possible in the current state"}}
REFUSED = {422: {"model": ErrorBody, "description": "Invalid request, with the reason"}}


# Each runtime's client of the referral service (``app.spec`` wires it with ``routes_with``).
_referral_clients: WeakKeyDictionary[Any, ReferralApi] = WeakKeyDictionary()


def _referral_client(request: Request) -> ReferralApi:
    return _referral_clients[runtime_of(request)]


UnitsOfWork = Annotated[Callable[[], AbstractAsyncContextManager[MeetingUnitOfWork]], Depends(units_of_work)]
Referral = Annotated[ReferralApi, Depends(_referral_client)]

router = APIRouter(prefix="/api/v1")


def routes_with(referral: ReferralApi) -> Callable[[Any], APIRouter]:
    """``ServiceSpec.routes``: the router, its runtime's requests served with this referral client."""

    def routes(runtime: Any) -> APIRouter:
        _referral_clients[runtime] = referral
        return router

    return routes


@asynccontextmanager
async def refusals_answered(
    new_uow: Callable[[], AbstractAsyncContextManager[MeetingUnitOfWork]],
) -> AsyncIterator[MeetingUnitOfWork]:
    """The request's unit of work, committed when the block ends; a refusal of the rules rolls
    it back and becomes the HTTP answer with its code."""
    try:
        async with new_uow() as uow:
            yield uow
    except Refused as exc:
        status = 404 if exc.code.endswith("_not_found") else 409 if exc.conflict else 422
        raise HTTPException(status, {"code": exc.code, "message": exc.message}) from None


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HostUnitBody(Strict):
    type: HostUnit
    name: str = Field(min_length=1, max_length=120, pattern=TEXT)


class TeamBody(Strict):
    """A team's registry entry (as in deploy/teams.json)."""

    name: str = Field(min_length=1, max_length=120, pattern=TEXT)
    municipality: str = Field(min_length=1, max_length=60, pattern=TEXT)
    host_unit: HostUnitBody
    cadence_weeks: int = Field(ge=2, le=4)
    weekday: Literal[domain.WEEKDAYS]  # type: ignore[valid-type]
    time: str = Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="HH:MM, Swedish time")
    capacity: int = Field(ge=1, le=50, description="cases per meeting")
    cutoff_days: int = Field(ge=0, le=28, description="agenda cut-off, days before the meeting")
    fixed_members: dict[Party, Annotated[str, Field(min_length=1, max_length=64, pattern=TEXT)]] = Field(
        min_length=1, description="the fixed member per party; their consent is required"
    )


class SkipDateBody(Strict):
    on_date: date
    team_id: str = Field(
        default=domain.ALL_TEAMS,
        min_length=1,
        max_length=48,
        pattern=r"^([A-Za-z0-9_-]+|\*)$",
        description="a team, or * for all",
    )
    reason: str = Field(min_length=1, max_length=200, pattern=TEXT)


class CancelBody(Strict):
    reason: Literal[CancellationReason.STAFF_ABSENT, CancellationReason.OTHER]
    note: str | None = Field(
        default=None,
        min_length=1,
        max_length=500,
        pattern=TEXT,
        description="required for reason 'other'; kept here, never published",
    )

    @model_validator(mode="after")
    def _note_for_other(self) -> "CancelBody":
        if self.reason == CancellationReason.OTHER and not self.note:
            raise ValueError("reason 'other' needs a note")
        return self


class PreMeetingBody(Strict):
    held_on: date


class HeldBody(Strict):
    outcome: Literal["held"]
    held_on: date
    parties_present: list[Party] = Field(min_length=1, max_length=4)
    others_invited: list[Invitee] = Field(default=[], max_length=len(Invitee))
    individual_attended: StrictBool
    actions: list[PlanAction] = Field(default=[], max_length=30)

    def consultation(self) -> Consultation:
        return Consultation(
            held_on=self.held_on,
            parties_present=tuple(self.parties_present),
            others_invited=tuple(self.others_invited),
            individual_attended=self.individual_attended,
            actions=tuple(self.actions),
        )


class NotConsultedBody(Strict):
    outcome: Literal["not_consulted"]
    reason: NotConsultedReason


ConsultationBody = Annotated[HeldBody | NotConsultedBody, Field(discriminator="outcome")]


def may_read_team(principal: Principal, team_id: str) -> None:
    require_roles(principal, Role.COORDINATOR, Role.MEMBER)
    if not principal.in_team(team_id):
        raise HTTPException(403, {"code": "not_in_team", "message": "not a member of this team"})


def coordinator_of(principal: Principal, team_id: str) -> None:
    require_roles(principal, Role.COORDINATOR)
    if not principal.in_team(team_id):
        raise HTTPException(403, {"code": "not_in_team", "message": "not the coordinator of this team"})


async def coordinator_of_meeting(uow: MeetingUnitOfWork, principal: Principal, meeting_id: str) -> None:
    coordinator_of(principal, (await agenda.meeting(uow, meeting_id)).team_id)


# --------------------------------------------------------------------------- the registry


@router.get("/teams", tags=["teams"], responses={**UNAUTHENTICATED})
async def teams(principal: Caller, new_uow: UnitsOfWork) -> list[dict]:
    """Every team of the registry (the fixed members' ids only for administrators and the
    team's own members)."""
    async with refusals_answered(new_uow) as uow:
        found = await calendar.teams(uow)
    return [_team(t, principal) for t in found]


@router.get("/teams/{team_id}", tags=["teams"], responses={**UNAUTHENTICATED, **NOT_FOUND})
async def team(team_id: Id, principal: Caller, new_uow: UnitsOfWork) -> dict:
    async with refusals_answered(new_uow) as uow:
        found = await calendar.team(uow, team_id)
    return _team(found, principal)


@router.put("/teams/{team_id}", tags=["teams"], responses={**UNAUTHENTICATED, **FORBIDDEN, **REFUSED})
async def save_team(team_id: TeamId, body: TeamBody, principal: Caller, new_uow: UnitsOfWork) -> dict:
    """Create or change a team (administrators). Announced as TeamUpdated. A new weekday or
    cadence starts a new calendar: open meetings off it are cancelled (rescheduled) and
    their cases move on; a new time, cut-off or capacity applies to open meetings."""
    require_roles(principal, Role.ADMIN)
    entry = domain.team_entry({**body.model_dump(mode="json"), "time": body.time})
    async with refusals_answered(new_uow) as uow:
        changed = await calendar.save_team(uow, team_id, entry, by=f"admin:{principal.user_id}")
        saved = await calendar.team(uow, team_id)
    return {**_team(saved, principal), "changed": changed}


@router.get("/skip-dates", tags=["teams"], responses={**UNAUTHENTICATED})
async def skip_dates(principal: Caller, new_uow: UnitsOfWork) -> list[dict]:
    async with refusals_answered(new_uow) as uow:
        found = await calendar.skip_dates(uow)
    return [{"team_id": s.team_id, "on_date": s.on_date.isoformat(), "reason": s.reason} for s in found]


@router.put("/skip-dates", tags=["teams"], responses={**UNAUTHENTICATED, **FORBIDDEN, **NOT_FOUND})
async def add_skip_date(body: SkipDateBody, principal: Caller, new_uow: UnitsOfWork) -> dict:
    """No meeting on this date, for one team or all (administrators). A meeting already on
    the calendar then is cancelled (holiday) and its cases move to the next meeting."""
    require_roles(principal, Role.ADMIN)
    async with refusals_answered(new_uow) as uow:
        cancelled = await calendar.add_skip_date(
            uow, SkipDate(body.team_id, body.on_date, body.reason), by=f"admin:{principal.user_id}"
        )
    return {**body.model_dump(mode="json"), "meetings_cancelled": cancelled}


@router.delete(
    "/skip-dates/{team_id}/{on_date}",
    tags=["teams"],
    status_code=204,
    responses={**UNAUTHENTICATED, **FORBIDDEN, **NOT_FOUND},
)
async def remove_skip_date(
    team_id: Annotated[str, Path(pattern=r"^([A-Za-z0-9_-]+|\*)$", max_length=48)],
    on_date: date,
    principal: Caller,
    new_uow: UnitsOfWork,
) -> None:
    """Remove a skip date; the calendar fills the date at the scheduler's next round."""
    require_roles(principal, Role.ADMIN)
    async with refusals_answered(new_uow) as uow:
        await calendar.remove_skip_date(uow, team_id, on_date)


# --------------------------------------------------------------------------- meetings and agendas


@router.get("/teams/{team_id}/meetings", tags=["meetings"], responses={**UNAUTHENTICATED, **FORBIDDEN, **NOT_FOUND})
async def team_meetings(
    team_id: Id,
    principal: Caller,
    new_uow: UnitsOfWork,
    weeks: Annotated[int, Query(ge=1, le=52)] = 12,
    since: Annotated[date | None, Query(ge=date(2000, 1, 1), le=date(2100, 1, 1))] = None,
) -> dict:
    """The team's meetings from ``since`` (default today) for ``weeks`` weeks, each with its
    agenda: case references, their place, consent per party and postponements (no
    personal data)."""
    may_read_team(principal, team_id)
    async with refusals_answered(new_uow) as uow:
        found = await calendar.team(uow, team_id)
        meetings = await agenda.team_meetings(uow, found, since, weeks)
    return {"team": _team(found, principal), "meetings": [_meeting(m, entries) for m, entries in meetings]}


@router.get("/meetings/{meeting_id}", tags=["meetings"], responses={**UNAUTHENTICATED, **FORBIDDEN, **NOT_FOUND})
async def meeting(meeting_id: Id, principal: Caller, new_uow: UnitsOfWork) -> dict:
    async with refusals_answered(new_uow) as uow:
        found = await agenda.meeting(uow, meeting_id)
        may_read_team(principal, found.team_id)
        entries = await agenda.agenda_of(uow, found)
    return _meeting(found, entries)


@router.get("/teams/{team_id}/queue", tags=["meetings"], responses={**UNAUTHENTICATED, **FORBIDDEN, **NOT_FOUND})
async def queue(team_id: Id, principal: Caller, new_uow: UnitsOfWork) -> dict:
    """The team's queue in order, with each case's meeting or expected date."""
    may_read_team(principal, team_id)
    async with refusals_answered(new_uow) as uow:
        waiting = await agenda.queue(uow, await calendar.team(uow, team_id))
    return {
        "team_id": team_id,
        "cases": [
            {"case_ref": w.case_ref, "position": i, "meeting_id": w.meeting_id, "expected_date": _iso(expected)}
            for i, (w, expected) in enumerate(waiting, start=1)
        ],
    }


@router.get("/cases/{case_ref}/schedule", tags=["meetings"], responses={**UNAUTHENTICATED, **FORBIDDEN, **NOT_FOUND})
async def case_schedule(case_ref: Id, principal: Caller, new_uow: UnitsOfWork) -> dict:
    """Where a case stands: its place in the team's queue and its meeting (or the date it
    can expect). For the team, and for officers of the referring party."""
    async with refusals_answered(new_uow) as uow:
        where = await agenda.case_schedule(uow, case_ref)
    case = where.case
    if not (principal.role == Role.OFFICER and principal.party == case.referring_party):
        may_read_team(principal, case.team_id)
    return {
        "case_ref": case_ref,
        "team_id": case.team_id,
        "status": case.status,
        "postponements": case.postponements,
        "last_postponement": _postponement(case),
        "position": where.position,
        "meeting_id": case.meeting_id,
        "meeting_date": _iso(where.meeting_date),
        "expected_date": _iso(where.expected_date),
    }


# --------------------------------------------------------------------------- pre-meeting


@router.get(
    "/meetings/{meeting_id}/pre-meeting-agenda",
    tags=["pre-meeting"],
    responses={**UNAUTHENTICATED, **FORBIDDEN, **NOT_FOUND},
)
async def pre_meeting_agenda(
    meeting_id: Id, request: Request, principal: Caller, new_uow: UnitsOfWork, referral: Referral
) -> dict:
    """The agenda with each case's question and identity for the caller, where the
    referral service grants it (team member whose party has the individual's consent);
    otherwise the case shows only its reference and why details are withheld. Each read is
    in the referral service's access log under the caller's name."""
    async with refusals_answered(new_uow) as uow:
        found = await agenda.meeting(uow, meeting_id)
        may_read_team(principal, found.team_id)
        entries = await agenda.agenda_of(uow, found)
    details = await consultation.pre_meeting_details(
        referral, meeting_id, entries, principal.party, request.headers["authorization"]
    )
    answer = _meeting(found, entries)
    for item in answer["agenda"]:
        item.update(details[item["case_ref"]])
    return answer


@router.post(
    "/meetings/{meeting_id}/pre-meeting",
    tags=["pre-meeting"],
    responses={**UNAUTHENTICATED, **FORBIDDEN, **NOT_FOUND, **CONFLICT, **REFUSED},
)
async def record_pre_meeting(meeting_id: Id, body: PreMeetingBody, principal: Caller, new_uow: UnitsOfWork) -> dict:
    """The team's coordinator records that the pre-meeting was held (PreMeetingHeld)."""
    async with refusals_answered(new_uow) as uow:
        await coordinator_of_meeting(uow, principal, meeting_id)
        await consultation.record_pre_meeting(uow, meeting_id, body.held_on, principal.user_id)
    return {"meeting_id": meeting_id, "pre_meeting_held_on": body.held_on.isoformat()}


# --------------------------------------------------------------------------- the meeting


@router.post(
    "/meetings/{meeting_id}/cancellation",
    tags=["meetings"],
    responses={**UNAUTHENTICATED, **FORBIDDEN, **NOT_FOUND, **CONFLICT},
)
async def cancel_meeting(meeting_id: Id, body: CancelBody, principal: Caller, new_uow: UnitsOfWork) -> dict:
    """The team's coordinator cancels a meeting (staff_absent, or other with a note kept
    here). Its cases move to the next meeting ahead of newer cases (CasePostponed,
    meeting_cancelled); MeetingCancelled is announced."""
    async with refusals_answered(new_uow) as uow:
        await coordinator_of_meeting(uow, principal, meeting_id)
        moved = await agenda.cancel_meeting(uow, meeting_id, body.reason, body.note, principal.user_id)
    return {"meeting_id": meeting_id, "status": "cancelled", "reason": body.reason.value, "cases_moved": moved}


CONSULTATION_ANSWERS = {
    200: {"description": "The same record again: already recorded"},
    **UNAUTHENTICATED,
    **FORBIDDEN,
    **NOT_FOUND,
    **CONFLICT,
    **REFUSED,
}


@router.post(
    "/meetings/{meeting_id}/cases/{case_ref}/consultation",
    tags=["meetings"],
    status_code=201,
    responses=CONSULTATION_ANSWERS,
)
async def record_consultation(
    meeting_id: Id, case_ref: Id, body: ConsultationBody, principal: Caller, new_uow: UnitsOfWork
) -> JSONResponse:
    """The team's coordinator records the consultation of a case on the meeting's agenda
    once the meeting is held: when, who was present, others invited, whether the individual
    attended, and the plan's actions (type, responsible party, due date) - or that it was
    not consulted, with the reason. Announced as ConsultationHeld or CaseNotConsulted,
    without personal data or free text."""
    record = body.consultation() if isinstance(body, HeldBody) else body.reason
    async with refusals_answered(new_uow) as uow:
        await coordinator_of_meeting(uow, principal, meeting_id)
        created, published = await consultation.record_consultation(
            uow, meeting_id, case_ref, record, principal.user_id
        )
    return JSONResponse(published, status_code=201 if created else 200)


# --------------------------------------------------------------------------- answers


def _team(team: Team, principal: Principal) -> dict[str, Any]:
    """A team as the caller may see it: the fixed members' ids only for administrators and
    the team's own members."""
    e, own = team.entry, principal.role == Role.ADMIN or principal.in_team(team.team_id)
    return {
        "team_id": team.team_id,
        "name": e.name,
        "municipality": e.municipality,
        "host_unit": {"type": e.host_unit_type, "name": e.host_unit_name},
        "cadence_weeks": e.cadence_weeks,
        "weekday": domain.WEEKDAYS[e.weekday],
        "time": e.meeting_time.strftime("%H:%M"),
        "capacity": e.capacity,
        "cutoff_days": e.cutoff_days,
        "fixed_members": dict(e.fixed_members) if own else {party: None for party in e.fixed_members},
        "revision": team.revision,
        "updated_at": team.updated_at.isoformat(),
    }


def _meeting(meeting: Meeting, entries: list[AgendaEntry]) -> dict[str, Any]:
    return {
        "meeting_id": meeting.meeting_id,
        "team_id": meeting.team_id,
        "meeting_date": meeting.meeting_date.isoformat(),
        "starts_at": meeting.starts_at.isoformat(),
        "cutoff_at": meeting.cutoff_at.isoformat(),
        "capacity": meeting.capacity,
        "status": meeting.status,
        "cancel_reason": meeting.cancel_reason,
        "pre_meeting_held_on": _iso(meeting.pre_meeting_held_on),
        "agenda": [_agenda_item(place, entry) for place, entry in enumerate(entries, start=1)],
    }


def _agenda_item(place: int, entry: AgendaEntry) -> dict[str, Any]:
    case = entry.case
    return {
        "case_ref": case.case_ref,
        "place": place,
        "referring_party": case.referring_party.value,
        "referred_at": case.referred_at.isoformat(),
        "status": case.status,
        "outcome": entry.outcome,
        "postponements": case.postponements,
        "last_postponement": _postponement(case),
        "consents": entry.consents,
    }


def _postponement(case: Case) -> dict[str, Any] | None:
    """Why the case was last postponed, and whose consent was missing or withdrawn then."""
    if case.last_postponement is None:
        return None
    return {"reason": case.last_postponement, "parties": [p.value for p in case.postponement_parties]}


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None
