"""Meeting HTTP API (thin): a team's meetings and agendas, the queue, the pre-meeting, the
consultation record, cancellations, and the team registry.

Who may do what: a team's coordinator and members read its meetings and agendas; its
coordinator records pre-meetings and consultations and cancels meetings; administrators manage
teams and skip dates; the referring party's officers may ask where their case stands.
"""


from datetime import date, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from shared.platform.auth import Principal, Role, authenticate, require_roles
from shared.platform.clock import stockholm_date
from shared.contracts import PlanAction
from shared.platform.http import FORBIDDEN, TEXT, UNAUTHENTICATED, ErrorBody, request_emitter
from shared.contracts.vocabulary import CancellationReason, HostUnit, Invitee, NotConsultedReason, Party

from . import domain, store
from .domain import Refused
from .referral_api import ReferralApi
from .scheduling import Consultation, Scheduling, entry_fields

Id = Annotated[str, Path(min_length=1, max_length=48, pattern=r"^[A-Za-z0-9_-]+$")]
TeamId = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
NOT_FOUND = {404: {"model": ErrorBody, "description": "No such team, meeting or case"}}
CONFLICT = {409: {"model": ErrorBody, "description": "Not possible in the current state"}}
REFUSED = {422: {"model": ErrorBody, "description": "Invalid request, with the reason"}}


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
    fixed_members: dict[Party, Annotated[str, Field(min_length=1, max_length=64, pattern=TEXT)]] = \
        Field(min_length=1, description="the fixed member per party; their consent is required")


class SkipDateBody(Strict):
    on_date: date
    team_id: str = Field(default=store.ALL_TEAMS, min_length=1, max_length=48,
                         pattern=r"^([A-Za-z0-9_-]+|\*)$", description="a team, or * for all")
    reason: str = Field(min_length=1, max_length=200, pattern=TEXT)


class CancelBody(Strict):
    reason: Literal[CancellationReason.STAFF_ABSENT, CancellationReason.OTHER]
    note: str | None = Field(default=None, min_length=1, max_length=500, pattern=TEXT,
                             description="required for reason 'other'; kept here, never published")

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


class NotConsultedBody(Strict):
    outcome: Literal["not_consulted"]
    reason: NotConsultedReason


ConsultationBody = Annotated[HeldBody | NotConsultedBody, Field(discriminator="outcome")]


def make_routes(runtime, scheduling: Scheduling, referral: ReferralApi) -> APIRouter:
    router = APIRouter(prefix="/api/v1")
    caller = Annotated[Principal, Depends(authenticate(runtime.settings))]
    clock = scheduling.clock

    def refused(exc: Refused) -> HTTPException:
        status = 404 if exc.code.endswith("_not_found") else 409 if exc.conflict else 422
        return HTTPException(status, {"code": exc.code, "message": exc.message})

    async def in_transaction(request: Request, action):
        async with runtime.pool.acquire() as conn, conn.transaction():
            emitter = request_emitter(conn, request, "meeting")
            try:
                return await action(conn, emitter.emit)
            except Refused as exc:
                raise refused(exc) from None

    async def team_or_404(conn, team_id: str):
        team = await store.get_team(conn, team_id)
        if team is None:
            raise HTTPException(404, {"code": "team_not_found", "message": "no such team"})
        return team

    async def meeting_or_404(conn, meeting_id: str):
        meeting = await store.get_meeting(conn, meeting_id)
        if meeting is None:
            raise HTTPException(404, {"code": "meeting_not_found", "message": "no such meeting"})
        return meeting

    # ------------------------------------------------------------------ the registry

    @router.get("/teams", tags=["teams"], responses={**UNAUTHENTICATED})
    async def teams(principal: caller) -> list[dict]:
        """Every team of the registry (the fixed members' ids only for administrators and the
        team's own members)."""
        async with runtime.pool.acquire() as conn:
            return [_team(t, principal) for t in await store.list_teams(conn)]

    @router.get("/teams/{team_id}", tags=["teams"], responses={**UNAUTHENTICATED, **NOT_FOUND})
    async def team(team_id: Id, principal: caller) -> dict:
        async with runtime.pool.acquire() as conn:
            return _team(await team_or_404(conn, team_id), principal)

    @router.put("/teams/{team_id}", tags=["teams"],
                responses={**UNAUTHENTICATED, **FORBIDDEN, **REFUSED})
    async def save_team(team_id: TeamId, body: TeamBody, request: Request, principal: caller) -> dict:
        """Create or change a team (administrators). Announced as TeamUpdated. A new weekday or
        cadence starts a new calendar: open meetings off it are cancelled (rescheduled) and
        their cases move on; a new time, cut-off or capacity applies to open meetings."""
        require_roles(principal, Role.ADMIN)
        fields = entry_fields({**body.model_dump(mode="json"), "time": body.time})

        async def save(conn, emit):
            changed = await scheduling.save_team(conn, emit, team_id, fields,
                                                 by=f"admin:{principal.user_id}")
            return {**_team(await store.get_team(conn, team_id), principal), "changed": changed}

        return await in_transaction(request, save)

    @router.get("/skip-dates", tags=["teams"], responses={**UNAUTHENTICATED})
    async def skip_dates(principal: caller) -> list[dict]:
        async with runtime.pool.acquire() as conn:
            return [_jsonable(dict(r)) for r in await store.list_skip_dates(conn)]

    @router.put("/skip-dates", tags=["teams"], responses={**UNAUTHENTICATED, **FORBIDDEN, **NOT_FOUND})
    async def add_skip_date(body: SkipDateBody, request: Request, principal: caller) -> dict:
        """No meeting on this date, for one team or all (administrators). A meeting already on
        the calendar then is cancelled (holiday) and its cases move to the next meeting."""
        require_roles(principal, Role.ADMIN)

        async def add(conn, emit):
            if body.team_id != store.ALL_TEAMS:
                await team_or_404(conn, body.team_id)
            cancelled = await scheduling.add_skip_date(conn, emit, body.team_id, body.on_date,
                                                       body.reason, f"admin:{principal.user_id}")
            return {**body.model_dump(mode="json"), "meetings_cancelled": cancelled}

        return await in_transaction(request, add)

    @router.delete("/skip-dates/{team_id}/{on_date}", tags=["teams"], status_code=204,
                   responses={**UNAUTHENTICATED, **FORBIDDEN, **NOT_FOUND})
    async def remove_skip_date(team_id: Annotated[str, Path(pattern=r"^([A-Za-z0-9_-]+|\*)$",
                                                            max_length=48)],
                               on_date: date, principal: caller) -> None:
        """Remove a skip date; the calendar fills the date at the scheduler's next round."""
        require_roles(principal, Role.ADMIN)
        async with runtime.pool.acquire() as conn:
            if not await store.remove_skip_date(conn, team_id, on_date):
                raise HTTPException(404, {"code": "skip_date_not_found", "message": "no such skip date"})

    # ------------------------------------------------------------------ meetings and agendas

    def may_read_team(principal: Principal, team_id: str) -> None:
        require_roles(principal, Role.COORDINATOR, Role.MEMBER)
        if not principal.in_team(team_id):
            raise HTTPException(403, {"code": "not_in_team", "message": "not a member of this team"})

    def coordinator_of(principal: Principal, team_id: str) -> None:
        require_roles(principal, Role.COORDINATOR)
        if not principal.in_team(team_id):
            raise HTTPException(403, {"code": "not_in_team",
                                      "message": "not the coordinator of this team"})

    @router.get("/teams/{team_id}/meetings", tags=["meetings"],
                responses={**UNAUTHENTICATED, **FORBIDDEN, **NOT_FOUND})
    async def team_meetings(team_id: Id, principal: caller,
                            weeks: Annotated[int, Query(ge=1, le=52)] = 12,
                            since: Annotated[date | None, Query(ge=date(2000, 1, 1),
                                                                le=date(2100, 1, 1))] = None) -> dict:
        """The team's meetings from ``since`` (default today) for ``weeks`` weeks, each with its
        agenda: case references, their place, consent per party and postponements (no
        personal data)."""
        may_read_team(principal, team_id)
        start = since or stockholm_date(clock.now())
        async with runtime.pool.acquire() as conn:
            team = await team_or_404(conn, team_id)
            meetings = await store.team_meetings(conn, team_id, start, start + timedelta(weeks=weeks))
            agendas = await _agendas(conn, meetings)
        return {"team": _team(team, principal), "meetings": [_meeting(m, agendas[m["meeting_id"]]) for m in meetings]}

    @router.get("/meetings/{meeting_id}", tags=["meetings"],
                responses={**UNAUTHENTICATED, **FORBIDDEN, **NOT_FOUND})
    async def meeting(meeting_id: Id, principal: caller) -> dict:
        async with runtime.pool.acquire() as conn:
            found = await meeting_or_404(conn, meeting_id)
            may_read_team(principal, found["team_id"])
            agendas = await _agendas(conn, [found])
        return _meeting(found, agendas[meeting_id])

    @router.get("/teams/{team_id}/queue", tags=["meetings"],
                responses={**UNAUTHENTICATED, **FORBIDDEN, **NOT_FOUND})
    async def queue(team_id: Id, principal: caller) -> dict:
        """The team's queue in order, with each case's meeting or expected date."""
        may_read_team(principal, team_id)
        async with runtime.pool.acquire() as conn:
            team = await team_or_404(conn, team_id)
            waiting = await store.waiting_cases(conn, team_id)
            schedule = await _expectations(conn, team, len(waiting))
        return {"team_id": team_id, "cases": [
            {"case_ref": w.case_ref, "position": i, "meeting_id": w.meeting_id,
             "expected_date": _iso(schedule(i))} for i, w in enumerate(waiting, start=1)]}

    @router.get("/cases/{case_ref}/schedule", tags=["meetings"],
                responses={**UNAUTHENTICATED, **FORBIDDEN, **NOT_FOUND})
    async def case_schedule(case_ref: Id, principal: caller) -> dict:
        """Where a case stands: its place in the team's queue and its meeting (or the date it
        can expect). For the team, and for officers of the referring party."""
        async with runtime.pool.acquire() as conn:
            case = await store.get_case(conn, case_ref)
            if case is None:
                raise HTTPException(404, {"code": "case_not_found", "message": "no such case"})
            if not (principal.role == Role.OFFICER and principal.party.value == case["referring_party"]):
                may_read_team(principal, case["team_id"])
            answer = {"case_ref": case_ref, "team_id": case["team_id"], "status": case["status"],
                      "postponements": case["postponements"], "position": None,
                      "meeting_id": case["meeting_id"], "meeting_date": None, "expected_date": None}
            if case["meeting_id"]:
                answer["meeting_date"] = (await store.get_meeting(conn, case["meeting_id"]))["meeting_date"].isoformat()
            if case["status"] == "queued":
                team = await store.get_team(conn, case["team_id"])
                position = await store.queue_position(conn, case)
                answer["position"] = position
                if team is not None:
                    answer["expected_date"] = _iso((await _expectations(conn, team, position))(position))
                if answer["meeting_date"]:
                    answer["expected_date"] = answer["meeting_date"]
        return answer

    async def _expectations(conn, team, _positions: int):
        open_slots = store.slots(await store.open_meetings(conn, team["team_id"]))
        last = await store.last_meeting_date(conn, team["team_id"])
        today = stockholm_date(clock.now())
        return lambda position: domain.expected_date(
            position=position, open_slots=open_slots, cadence_weeks=team["cadence_weeks"],
            capacity=team["capacity"], last_meeting=last, today=today)

    # ------------------------------------------------------------------ pre-meeting

    @router.get("/meetings/{meeting_id}/pre-meeting-agenda", tags=["pre-meeting"],
                responses={**UNAUTHENTICATED, **FORBIDDEN, **NOT_FOUND})
    async def pre_meeting_agenda(meeting_id: Id, request: Request, principal: caller) -> dict:
        """The agenda with each case's question and identity for the caller, where the
        referral service grants it (team member whose party has the individual's consent);
        otherwise the case shows only its reference and why details are withheld. Each read is
        in the referral service's access log under the caller's name."""
        async with runtime.pool.acquire() as conn:
            found = await meeting_or_404(conn, meeting_id)
            may_read_team(principal, found["team_id"])
            agenda = (await _agendas(conn, [found]))[meeting_id]
        for item in agenda:
            if item["consents"].get(principal.party.value) != "given":
                item["withheld"] = "no_consent"
                continue
            item.update(await referral.case_details(
                item["case_ref"], authorization=request.headers["authorization"],
                purpose=f"pre-meeting {meeting_id}"))
        return {**_meeting(found, agenda)}

    @router.post("/meetings/{meeting_id}/pre-meeting", tags=["pre-meeting"],
                 responses={**UNAUTHENTICATED, **FORBIDDEN, **NOT_FOUND, **CONFLICT, **REFUSED})
    async def record_pre_meeting(meeting_id: Id, body: PreMeetingBody, request: Request,
                                 principal: caller) -> dict:
        """The team's coordinator records that the pre-meeting was held (PreMeetingHeld)."""
        async def record(conn, emit):
            coordinator_of(principal, (await meeting_or_404(conn, meeting_id))["team_id"])
            return await scheduling.record_pre_meeting(conn, emit, meeting_id, body.held_on,
                                                       principal.user_id)

        return await in_transaction(request, record)

    # ------------------------------------------------------------------ the meeting

    @router.post("/meetings/{meeting_id}/cancellation", tags=["meetings"],
                 responses={**UNAUTHENTICATED, **FORBIDDEN, **NOT_FOUND, **CONFLICT})
    async def cancel_meeting(meeting_id: Id, body: CancelBody, request: Request,
                             principal: caller) -> dict:
        """The team's coordinator cancels a meeting (staff_absent, or other with a note kept
        here). Its cases move to the next meeting ahead of newer cases (CasePostponed,
        meeting_cancelled); MeetingCancelled is announced."""
        async def cancel(conn, emit):
            coordinator_of(principal, (await meeting_or_404(conn, meeting_id))["team_id"])
            return await scheduling.cancel(conn, emit, meeting_id, body.reason, body.note,
                                           principal.user_id)

        return await in_transaction(request, cancel)

    @router.post("/meetings/{meeting_id}/cases/{case_ref}/consultation", tags=["meetings"],
                 status_code=201,
                 responses={200: {"description": "The same record again: already recorded"},
                            **UNAUTHENTICATED, **FORBIDDEN, **NOT_FOUND, **CONFLICT, **REFUSED})
    async def record_consultation(meeting_id: Id, case_ref: Id, body: ConsultationBody,
                                  request: Request, principal: caller) -> JSONResponse:
        """The team's coordinator records the consultation of a case on the meeting's agenda
        once the meeting is held: when, who was present, others invited, whether the individual
        attended, and the plan's actions (type, responsible party, due date) - or that it was
        not consulted, with the reason. Announced as ConsultationHeld or CaseNotConsulted,
        without personal data or free text."""
        record = (Consultation(held_on=body.held_on, parties_present=tuple(body.parties_present),
                               others_invited=tuple(body.others_invited),
                               individual_attended=body.individual_attended,
                               actions=tuple(body.actions))
                  if isinstance(body, HeldBody) else body.reason)

        async def save(conn, emit):
            coordinator_of(principal, (await meeting_or_404(conn, meeting_id))["team_id"])
            return await scheduling.record_consultation(conn, emit, meeting_id, case_ref, record,
                                                        principal.user_id)

        created, published = await in_transaction(request, save)
        return JSONResponse(published, status_code=201 if created else 200)

    return router


async def _agendas(conn, meetings) -> dict[str, list[dict]]:
    ids = [m["meeting_id"] for m in meetings]
    agendas: dict[str, list[dict]] = {mid: [] for mid in ids}
    cases = await store.agenda_cases(conn, ids)
    consents = await store.consents_of_cases(conn, [c["case_ref"] for c in cases])
    for case in cases:
        meeting_cases = agendas[case["agenda_of"]]
        meeting_cases.append({"case_ref": case["case_ref"], "place": len(meeting_cases) + 1,
                              "referring_party": case["referring_party"],
                              "referred_at": case["referred_at"].isoformat(),
                              "status": case["status"], "outcome": case["outcome"],
                              "postponements": case["postponements"],
                              "consents": consents[case["case_ref"]]})
    return agendas


def _team(row, principal: Principal) -> dict:
    fields = store.team_fields(row)
    if principal.role != Role.ADMIN and not principal.in_team(row["team_id"]):
        fields["fixed_members"] = {party: None for party in fields["fixed_members"]}
    return {"team_id": row["team_id"], "name": fields["name"], "municipality": fields["municipality"],
            "host_unit": {"type": fields["host_unit_type"], "name": fields["host_unit_name"]},
            "cadence_weeks": fields["cadence_weeks"], "weekday": domain.WEEKDAYS[fields["weekday"]],
            "time": fields["meeting_time"].strftime("%H:%M"), "capacity": fields["capacity"],
            "cutoff_days": fields["cutoff_days"], "fixed_members": fields["fixed_members"],
            "revision": row["revision"], "updated_at": row["updated_at"].isoformat()}


def _meeting(row, agenda: list[dict]) -> dict:
    return {"meeting_id": row["meeting_id"], "team_id": row["team_id"],
            "meeting_date": row["meeting_date"].isoformat(),
            "starts_at": row["starts_at"].isoformat(), "cutoff_at": row["cutoff_at"].isoformat(),
            "capacity": row["capacity"], "status": row["status"],
            "cancel_reason": row["cancel_reason"],
            "pre_meeting_held_on": _iso(row["pre_meeting_held_on"]),
            "agenda": agenda}


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def _jsonable(row: dict) -> dict:
    return {k: _iso(v) if hasattr(v, "isoformat") else v for k, v in row.items()}
