"""Referral HTTP API (thin): the same rules as the AMQP intake, for agencies without AMQP,
and the consent-gated, audited reads of a case's personal data."""


import json
import uuid
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.auth import Principal, Role, authenticate, require_roles
from shared.events import (RecordConsent, SubmitReferral, WithdrawConsent, safe_errors)
from shared.outbox import Emitter
from shared.vocabulary import Party

from . import domain, intake, store
from .domain import Problem
from .intake import Accepted, Intake



def inline_schema(model: type[BaseModel]) -> dict:
    """The model's JSON schema with its $defs inlined (for a hand-declared request body)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node):
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(defs[node["$ref"].rsplit("/", 1)[1]])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)


class ConsentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    party: Party
    given_on: date
    form_ref: str = Field(min_length=1, max_length=64)


class WithdrawalBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    withdrawn_on: date
    on_behalf_of_individual: bool = False


def problem_response(problems: list[Problem], *, agency_ref: str | None = None,
                     case_ref: str | None = None) -> JSONResponse:
    status = 404 if any(p.code == "case_not_found" for p in problems) else 422
    body: dict[str, Any] = {"status": "rejected", "reasons": intake.Rejected(
        agency_ref, tuple(problems), None).reasons()}  # type: ignore[arg-type]
    if agency_ref is not None:
        body["agency_ref"] = agency_ref
    if case_ref is not None:
        body["case_ref"] = case_ref
    return JSONResponse(body, status_code=status)


def make_routes(runtime, referral_intake: Intake, clock) -> APIRouter:
    router = APIRouter(prefix="/api/v1")
    caller = Annotated[Principal, Depends(authenticate(runtime.settings))]

    def emitter(conn, request: Request) -> Emitter:
        correlation = request.headers.get("x-correlation-id") or str(uuid.uuid4())
        return Emitter(conn, "referral", correlation[:128])

    @router.post("/referrals", tags=["referrals"], status_code=201,
                 openapi_extra={"requestBody": {"required": True, "content": {
                     "application/json": {"schema": inline_schema(SubmitReferral)}}}},
                 responses={201: {"description": "Accepted (or the same agency reference "
                                                 "accepted before: the same answer)"},
                            422: {"description": "Rejected, with every reason"}})
    async def submit_referral(request: Request, principal: caller) -> JSONResponse:
        """Submit a referral: the same payload and rules as the AMQP `SubmitReferral` command.
        The referring party is the caller's, from the token."""
        require_roles(principal, Role.OFFICER)
        body = await request.body()
        command, raw, errors = None, {}, []
        if len(body) > SubmitReferral.max_bytes:
            errors = [{"loc": (), "type": "payload_too_large"}]
        else:
            try:
                raw = json.loads(body)
                if not isinstance(raw, dict):
                    raise ValueError
            except ValueError:
                return problem_response([Problem("invalid_value", None)])
            try:
                command = SubmitReferral.model_validate(raw)
            except ValidationError as exc:
                errors = safe_errors(exc)
        async with runtime.pool.acquire() as conn, conn.transaction():
            outcome = await referral_intake.submit(
                conn, emitter(conn, request), party=principal.party, command=command, raw=raw,
                schema_errors=errors, channel="http", now=clock.now())
        if isinstance(outcome, Accepted):
            return JSONResponse({"status": "accepted", "case_ref": outcome.case_ref,
                                 "agency_ref": outcome.agency_ref,
                                 "accepted_at": outcome.accepted_at.isoformat()},
                                status_code=201,
                                headers={"Idempotent-Replayed": "true"} if outcome.replay else {})
        runtime.metrics.count_rejection(SubmitReferral.name, principal.party.value,
                                        [p.code for p in outcome.problems])
        return problem_response(list(outcome.problems), agency_ref=outcome.agency_ref)

    @router.get("/referrals/rejections", tags=["referrals"])
    async def rejections(principal: caller) -> list[dict]:
        """Your party's latest rejected submissions (codes and fields; no personal data)."""
        require_roles(principal, Role.OFFICER)
        async with runtime.pool.acquire() as conn:
            return await store.rejections_of(conn, principal.party.value)

    async def consent_change(request: Request, principal: Principal, command) -> JSONResponse:
        apply = (intake.record_consent if isinstance(command, RecordConsent)
                 else intake.withdraw_consent)
        async with runtime.pool.acquire() as conn, conn.transaction():
            case = await store.get_case(conn, command.case_ref)
            if case is not None and not _may_change_consent(principal, case):
                raise HTTPException(403, {"code": "not_in_team",
                                          "message": "not a member of the case's team"})
            problems = await apply(conn, emitter(conn, request), by=principal.party,
                                   command=command, now=clock.now())
        if problems:
            runtime.metrics.count_rejection(command.name, principal.party.value,
                                            [p.code for p in problems])
            return problem_response(problems, case_ref=command.case_ref)
        return JSONResponse({"status": "recorded", "case_ref": command.case_ref,
                             "party": command.party.value}, status_code=201)

    @router.post("/cases/{case_ref}/consents", tags=["consent"], status_code=201)
    async def record_consent(case_ref: str, body: ConsentBody, request: Request,
                             principal: caller) -> JSONResponse:
        """Record the individual's consent for a party (given after the referral, or again)."""
        require_roles(principal, Role.OFFICER, Role.COORDINATOR)
        return await consent_change(request, principal, RecordConsent(
            case_ref=case_ref, party=body.party, given_on=body.given_on, form_ref=body.form_ref))

    @router.post("/cases/{case_ref}/consents/{party}/withdrawal", tags=["consent"],
                 status_code=201)
    async def withdraw_consent(case_ref: str, party: Party, body: WithdrawalBody,
                               request: Request, principal: caller) -> JSONResponse:
        """Withdraw a party's consent (by the party, or on the individual's behalf)."""
        require_roles(principal, Role.OFFICER, Role.COORDINATOR)
        return await consent_change(request, principal, WithdrawConsent(
            case_ref=case_ref, party=party, withdrawn_on=body.withdrawn_on,
            on_behalf_of_individual=body.on_behalf_of_individual))

    @router.get("/cases/{case_ref}/consents", tags=["consent"])
    async def consents(case_ref: str, principal: caller) -> dict:
        """A case's consent history per party (no personal data)."""
        require_roles(principal, Role.OFFICER, Role.MEMBER, Role.COORDINATOR, Role.AUDITOR)
        async with runtime.pool.acquire() as conn:
            case = await _visible_case(conn, case_ref, principal)
            history = await store.consent_history(conn, case.case_ref)
        return {"case_ref": case.case_ref, "history": _jsonable(history)}

    @router.get("/cases/{case_ref}", tags=["cases"])
    async def case_details(case_ref: str, principal: caller,
                           purpose: Annotated[str, Query(min_length=3, max_length=200,
                                                         description="why you read it (audited)")]
                           ) -> dict:
        """The case's personal data (identity, question, purpose), for team members whose party
        has the individual's consent. Every read, granted or denied, is written to the access log."""
        if domain.holds_identity_number(purpose):
            raise HTTPException(422, {"code": "purpose_holds_identity",
                                      "message": "the purpose may not contain an identity number"})
        async with runtime.pool.acquire() as conn, conn.transaction():
            case = await store.get_case(conn, case_ref)
            if case is None:
                raise HTTPException(404, {"code": "case_not_found", "message": "no such case"})
            consent = await store.consent_in_force(conn, case.case_ref, principal.party.value)
            refusal = domain.may_read_details(
                role=principal.role.value, party=principal.party.value, teams=principal.teams,
                case_team=case.team_id, referring_party=case.referring_party,
                party_has_consent=consent)
            await store.log_access(conn, case_ref=case.case_ref, user_id=principal.user_id,
                                   party=principal.party.value, role=principal.role.value,
                                   purpose=purpose, outcome="denied" if refusal else "granted",
                                   reason=refusal)
            if refusal:
                return JSONResponse({"detail": {"code": refusal, "message": _REFUSALS[refusal]}},
                                    status_code=403)
            sealed, erased_at = await store.sealed_fields(conn, case.case_ref)
        details = referral_intake.reveal(case.case_ref, sealed)
        return {"case_ref": case.case_ref, "team_id": case.team_id,
                "referring_party": case.referring_party,
                "protected_identity": case.protected_identity,
                "personnummer": details.get("personnummer"),
                "question": details.get("question"), "purpose": details.get("purpose"),
                "erased": erased_at is not None,
                "referred_at": case.referred_at.isoformat()}

    @router.get("/cases/{case_ref}/access-log", tags=["cases"])
    async def access_log(case_ref: str, principal: caller) -> dict:
        """Who read the case's personal data, when and why (the individual's right to know)."""
        require_roles(principal, Role.AUDITOR)
        async with runtime.pool.acquire() as conn:
            case = await store.get_case(conn, case_ref)
            if case is None:
                raise HTTPException(404, {"code": "case_not_found", "message": "no such case"})
            entries = await store.access_log(conn, case.case_ref)
        return {"case_ref": case.case_ref, "entries": _jsonable(entries)}

    return router


_REFUSALS = {"role_not_allowed": "your role may not read case details",
             "not_in_team": "you are not a member of the case's team",
             "no_consent": "the individual has not consented to sharing with your party"}


def _may_change_consent(principal: Principal, case) -> bool:
    if principal.role == Role.COORDINATOR:
        return principal.in_team(case.team_id)
    return True  # an officer of any party may record what the individual decided


async def _visible_case(conn, case_ref: str, principal: Principal):
    case = await store.get_case(conn, case_ref)
    if case is None:
        raise HTTPException(404, {"code": "case_not_found", "message": "no such case"})
    if principal.role != Role.AUDITOR and not (
            principal.in_team(case.team_id) or principal.party.value == case.referring_party):
        raise HTTPException(403, {"code": "not_in_team",
                                  "message": "not a member of the case's team"})
    return case


def _jsonable(rows: list[dict]) -> list[dict]:
    return [{k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in row.items()}
            for row in rows]
