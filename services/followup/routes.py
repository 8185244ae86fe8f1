"""Follow-up HTTP API (thin): a party's due and overdue follow-ups, recording and correcting
them, and closing a case. A follow-up is seen and recorded only by users of its responsible
party; a case is closed by an officer of the referring party or the team's coordinator."""

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, StrictBool

from shared.platform.auth import Principal, Role, authenticate, require_roles
from shared.platform.commands import reasons
from shared.platform.http import FORBIDDEN, UNAUTHENTICATED, ErrorBody, request_emitter
from shared.contracts.vocabulary import ExitReason, IncomeSource, PlanStatus, Readiness

from . import store
from .followups import FollowUps
from .handlers import answers_of

FollowUpId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
CaseRef = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
NOT_FOUND = {404: {"model": ErrorBody, "description": "No such follow-up or case"}}
STATES = {"due": ["due"], "overdue": ["due"], "open": ["pending", "due"], "pending": ["pending"],
          "completed": ["completed"], "cancelled": ["cancelled"]}


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


def make_routes(runtime, followups: FollowUps) -> APIRouter:
    router = APIRouter(prefix="/api/v1")
    caller = Annotated[Principal, Depends(authenticate(runtime.settings))]

    def party_user(principal: Principal) -> None:
        require_roles(principal, Role.OFFICER, Role.COORDINATOR, Role.MEMBER)

    async def own_followup(conn, followup_id: str, principal: Principal):
        row = await store.get_followup(conn, followup_id)
        if row is None:
            raise HTTPException(404, {"code": "followup_not_found", "message": "no such follow-up"})
        if row["responsible_party"] != principal.party.value:  # as if absent: nothing learnt
            raise HTTPException(404, {"code": "followup_not_found", "message": "no such follow-up"})
        return row

    @router.get("/followups", tags=["follow-up"], responses={**UNAUTHENTICATED, **FORBIDDEN})
    async def party_followups(principal: caller,
                              state: Literal["due", "overdue", "open", "pending", "completed",
                                             "cancelled"] = "open",
                              limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> dict:
        """Your party's follow-ups: ``open`` (default: due, overdue and not yet due), ``due``
        (reminded, no reminder of being overdue yet), ``overdue``, ``pending``, ``completed``,
        ``cancelled``. Earliest due first."""
        party_user(principal)
        async with runtime.pool.acquire() as conn:
            rows = await store.party_followups(conn, principal.party.value, STATES[state], limit,
                                               reminded={"due": False, "overdue": True}.get(state))
        return {"party": principal.party.value, "state": state,
                "followups": [_followup(r) for r in rows]}

    @router.get("/followups/{followup_id}", tags=["follow-up"],
                responses={**UNAUTHENTICATED, **FORBIDDEN, **NOT_FOUND})
    async def followup(followup_id: FollowUpId, principal: caller) -> dict:
        """A follow-up of your party with every record (corrections keep the history)."""
        party_user(principal)
        async with runtime.pool.acquire() as conn:
            row = await own_followup(conn, followup_id, principal)
            history = await store.records(conn, followup_id)
        return {**_followup(row), "records": [
            {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in dict(r).items()
             if k != "followup_id"} for r in history]}

    @router.post("/followups/{followup_id}/records", tags=["follow-up"], status_code=201,
                 responses={200: {"description": "The same answers as the latest record: nothing new"},
                            **UNAUTHENTICATED, **FORBIDDEN, **NOT_FOUND,
                            409: {"model": ErrorBody, "description": "The case is closed"},
                            422: {"description": "Rejected, with every reason"}})
    async def record(followup_id: FollowUpId, body: RecordBody, request: Request,
                     principal: caller) -> JSONResponse:
        """Record the follow-up, or correct it (a new revision; the latest counts). Announced as
        FollowUpCompleted."""
        party_user(principal)
        async with runtime.pool.acquire() as conn, conn.transaction():
            row = await own_followup(conn, followup_id, principal)
            emitter = request_emitter(conn, request, "followup")
            problems, published = await followups.record(
                conn, emitter.emit, followup_id, answers_of(body), by_party=principal.party,
                by_user=principal.user_id, channel="http")
        if problems:
            codes = {p.code for p in problems}
            status = 404 if "followup_not_found" in codes else 409 if "followup_cancelled" in codes else 422
            return JSONResponse({"status": "rejected", "reasons": [
                r.model_dump() for r in reasons(problems)]}, status_code=status)
        return JSONResponse(published, status_code=201 if emitter.emitted else 200)

    @router.post("/cases/{case_ref}/closure", tags=["follow-up"],
                 responses={**UNAUTHENTICATED, **FORBIDDEN, **NOT_FOUND,
                            409: {"model": ErrorBody, "description": "Closed already"}})
    async def close_case(case_ref: CaseRef, body: ClosureBody, request: Request,
                         principal: caller) -> dict:
        """Close a case with its exit reason (CaseClosed); its pending follow-ups are cancelled.
        By an officer of the referring party or the team's coordinator."""
        async with runtime.pool.acquire() as conn, conn.transaction():
            case = await store.lock_case(conn, case_ref)
            if case is None:
                raise HTTPException(404, {"code": "case_not_found", "message": "no such case"})
            referring_officer = (principal.role == Role.OFFICER
                                 and principal.party.value == case["referring_party"])
            coordinator = principal.role == Role.COORDINATOR and principal.in_team(case["team_id"] or "")
            if not (referring_officer or coordinator):
                raise HTTPException(403, {"code": "not_allowed", "message": "only an officer of the "
                                          "referring party or the team's coordinator"})
            if case["status"] == "closed":
                raise HTTPException(409, {"code": "case_closed", "message": "the case is closed"})
            await followups.close(conn, request_emitter(conn, request, "followup").emit,
                                  case_ref, body.reason)
        return {"case_ref": case_ref, "status": "closed", "reason": body.reason.value}

    return router


def _followup(row) -> dict:
    state = {"pending": "pending", "completed": "completed", "cancelled": "cancelled"}.get(
        row["status"], "overdue" if row["reminders_sent"] else "due")
    return {"followup_id": row["followup_id"], "case_ref": row["case_ref"], "kind": row["kind"],
            "team_id": row["team_id"], "responsible_party": row["responsible_party"],
            "consultation_held_on": row["consultation_held_on"].isoformat(),
            "due_on": row["due_on"].isoformat(), "state": state,
            "reminders_sent": row["reminders_sent"], "revision": row["revision"],
            "escalated": row["escalated_at"] is not None}
