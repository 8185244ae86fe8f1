"""Follow-up HTTP API (thin): a party's due and overdue follow-ups, recording and correcting
them, and closing a case. A follow-up is seen and recorded only by users of its responsible
party; a case is closed by an officer of the referring party or the team's coordinator.

Each route authenticates the caller, opens a unit of work, runs one use case of
``followups.py`` and turns its decision into the answer, after the unit of work has committed."""

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import asdict
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, StrictBool

from shared.contracts.vocabulary import ExitReason, IncomeSource, PlanStatus, Readiness
from shared.platform.auth import Caller, Principal, Role, require_roles
from shared.platform.commands import reasons
from shared.platform.http import FORBIDDEN, UNAUTHENTICATED, ErrorBody, units_of_work

from . import followups
from .domain import FollowUp, FollowUpRecord
from .handlers import answers_of
from .uow import FollowUpUnitOfWork

FollowUpId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
CaseRef = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
NOT_FOUND = {404: {"model": ErrorBody, "description": "No such follow-up or case"}}
FOLLOWUP_NOT_FOUND = {"code": "followup_not_found", "message": "no such follow-up"}
# Why a case is not closed by hand: the answer's status and detail.
REFUSALS = {
    "case_not_found": (404, {"code": "case_not_found", "message": "no such case"}),
    "not_allowed": (
        403,
        {"code": "not_allowed", "message": "only an officer of the referring party or the team's coordinator"},
    ),
    "not_in_team": (403, {"code": "not_in_team", "message": "the case is not of a team you are assigned to"}),
    "case_closed": (409, {"code": "case_closed", "message": "the case is closed"}),
}
UnitsOfWork = Annotated[Callable[[], AbstractAsyncContextManager[FollowUpUnitOfWork]], Depends(units_of_work)]

router = APIRouter(prefix="/api/v1")


class RecordBody(BaseModel):
    """A follow-up as the responsible party records it. ``reached`` false: the person could not
    be reached (then no answers)."""

    model_config = ConfigDict(extra="forbid")
    recorded_on: date
    reached: StrictBool
    income_source: IncomeSource | None = None
    readiness: Readiness | None = None
    plan_status: PlanStatus | None = None


class ClosureBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: ExitReason


def party_user(principal: Principal) -> None:
    require_roles(principal, Role.OFFICER, Role.COORDINATOR, Role.MEMBER)


@router.get("/followups", tags=["follow-up"], responses={**UNAUTHENTICATED, **FORBIDDEN})
async def party_followups(
    principal: Caller,
    new_uow: UnitsOfWork,
    state: Literal["due", "overdue", "open", "pending", "completed", "cancelled"] = "open",
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict:
    """Your party's follow-ups: ``open`` (default: due, overdue and not yet due), ``due``
    (reminded, no reminder of being overdue yet), ``overdue``, ``pending``, ``completed``,
    ``cancelled``. Earliest due first."""
    party_user(principal)
    async with new_uow() as uow:
        found = await followups.party_followups(uow, principal.party, state, limit)
    return {"party": principal.party.value, "state": state, "followups": [_followup(f) for f in found]}


@router.get("/teams/{team_id}/followups", tags=["follow-up"], responses={**UNAUTHENTICATED, **FORBIDDEN})
async def team_followups(
    team_id: CaseRef,
    principal: Caller,
    new_uow: UnitsOfWork,
    state: Literal["due", "overdue", "open"] = "open",
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict:
    """The team's follow-ups of every responsible party, for the team's rehab coordinator:
    ``open``, ``due`` or ``overdue`` (which case, which kind, when, whose; no answers)."""
    require_roles(principal, Role.COORDINATOR)
    if not principal.in_team(team_id):
        raise HTTPException(403, {"code": "not_in_team", "message": "not the coordinator of this team"})
    async with new_uow() as uow:
        found = await followups.team_followups(uow, team_id, state, limit)
    return {"team_id": team_id, "state": state, "followups": [_followup(f) for f in found]}


@router.get("/followups/{followup_id}", tags=["follow-up"], responses={**UNAUTHENTICATED, **FORBIDDEN, **NOT_FOUND})
async def followup(followup_id: FollowUpId, principal: Caller, new_uow: UnitsOfWork) -> dict:
    """A follow-up of your party with every record (corrections keep the history)."""
    party_user(principal)
    async with new_uow() as uow:
        found = await followups.followup_with_records(uow, followup_id, principal.party)
    if found is None:  # or another party's: as if absent, nothing learnt
        raise HTTPException(404, FOLLOWUP_NOT_FOUND)
    row, history = found
    return {**_followup(row), "records": [_record(r) for r in history]}


RECORD_ANSWERS = {
    200: {"description": "The same answers as the latest record: nothing new"},
    **UNAUTHENTICATED,
    403: {
        "model": ErrorBody,
        "description": "Your role may not (role_not_allowed), or the case is not of your teams (not_in_team)",
    },
    **NOT_FOUND,
    409: {"model": ErrorBody, "description": "The case is closed"},
    422: {"description": "Rejected, with every reason"},
}


@router.post("/followups/{followup_id}/records", tags=["follow-up"], status_code=201, responses=RECORD_ANSWERS)
async def record(followup_id: FollowUpId, body: RecordBody, principal: Caller, new_uow: UnitsOfWork) -> JSONResponse:
    """Record the follow-up, or correct it (a new revision; the latest counts). Announced as
    FollowUpCompleted."""
    party_user(principal)
    async with new_uow() as uow:
        decision = await followups.record(
            uow,
            followup_id,
            answers_of(body),
            by_party=principal.party,
            by_user=principal.user_id,
            channel="http",
            person_teams=principal.teams,
        )
    codes = {p.code for p in decision.problems}
    if "followup_not_found" in codes:
        raise HTTPException(404, FOLLOWUP_NOT_FOUND)
    if "followup_not_in_team" in codes:
        raise HTTPException(403, {"code": "not_in_team", "message": "the case is not of a team you are assigned to"})
    if codes:
        return JSONResponse(
            {"status": "rejected", "reasons": [r.model_dump() for r in reasons(decision.problems)]},
            status_code=409 if "followup_cancelled" in codes else 422,
        )
    assert decision.completed is not None
    return JSONResponse(decision.completed.model_dump(mode="json"), status_code=201 if decision.record else 200)


@router.post(
    "/cases/{case_ref}/closure",
    tags=["follow-up"],
    responses={**UNAUTHENTICATED, **FORBIDDEN, **NOT_FOUND, 409: {"model": ErrorBody, "description": "Closed already"}},
)
async def close_case(case_ref: CaseRef, body: ClosureBody, principal: Caller, new_uow: UnitsOfWork) -> dict:
    """Close a case with its exit reason (CaseClosed, naming you as its closer); its pending
    follow-ups are cancelled. By an officer of the referring party assigned to the case's team
    (else 403 `not_in_team`), or the team's coordinator."""
    async with new_uow() as uow:
        decision = await followups.close_by_hand(uow, case_ref, body.reason, by=principal)
    if decision.refusal:
        status, detail = REFUSALS[decision.refusal]
        raise HTTPException(status, detail)
    return {"case_ref": case_ref, "status": "closed", "reason": body.reason.value}


def _followup(f: FollowUp) -> dict[str, Any]:
    return {
        "followup_id": f.followup_id,
        "case_ref": f.case_ref,
        "kind": f.kind.value,
        "team_id": f.team_id,
        "responsible_party": f.responsible_party.value,
        "consultation_held_on": f.consultation_held_on.isoformat(),
        "due_on": f.due_on.isoformat(),
        "state": f.state,
        "reminders_sent": f.reminders_sent,
        "revision": f.revision,
        "escalated": f.escalated_at is not None,
    }


def _record(r: FollowUpRecord) -> dict[str, Any]:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in asdict(r).items() if k != "followup_id"}
