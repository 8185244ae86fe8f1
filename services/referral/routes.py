"""Referral HTTP API (thin): the same rules as the AMQP intake, for agencies without AMQP,
and the consent-gated, audited reads of a case's personal data."""


import json
import re
from datetime import date
from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, StrictBool,
                      ValidationError)

from shared.platform.auth import Principal, Role, authenticate, require_roles
from shared.contracts import (RecordConsent, SubmitReferral, WithdrawConsent, safe_errors)
from shared.platform.http import FORBIDDEN, TEXT, UNAUTHENTICATED, ErrorBody, request_emitter
from shared.platform.outbox import Emitter
from shared.contracts.vocabulary import Party

from . import domain, intake, store
from .domain import Problem
from .intake import Accepted, Intake
from .vault import VaultError



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


log = structlog.get_logger("referral.routes")

# A case reference as the consent commands take it (cases get 'TS-' + 16 characters).
CaseRef = Annotated[str, Path(min_length=1, max_length=32, pattern=TEXT)]


def unstorable(value: Any, where: tuple = ()) -> str | None:
    """Where (a dotted path; "" for the top level) in a parsed JSON payload there is a string,
    key or value, that PostgreSQL cannot store: a NUL character, or an unpaired surrogate (no
    UTF-8). None if there is none."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return ".".join(where)
        return ".".join(where) if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            if unstorable(key) is not None:
                return ".".join(where)  # the key itself is not repeated
            found = unstorable(item, (*where, key))
            if found is not None:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = unstorable(item, (*where, str(i)))
            if found is not None:
                return found
    return None


def _iso_date(value: Any) -> Any:
    """A date as documented (format: date, 'YYYY-MM-DD'); pydantic would also take a number or
    a numeric string as a Unix time, and a datetime at midnight."""
    if isinstance(value, date) or (isinstance(value, str)
                                   and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value)):
        return value
    raise ValueError("a date is written YYYY-MM-DD")


IsoDate = Annotated[date, BeforeValidator(_iso_date)]


class ConsentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    party: Party
    given_on: IsoDate
    form_ref: str = Field(min_length=1, max_length=64, pattern=TEXT)


class WithdrawalBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    withdrawn_on: IsoDate
    on_behalf_of_individual: StrictBool = False  # true or false, not 1, "yes" or "on"


class Reason(BaseModel):
    code: str
    field: str | None = None
    message_sv: str | None = None
    message_en: str | None = None


class RejectionBody(BaseModel):
    """Every reason the request was rejected for: where and what, never the values sent."""
    status: Literal["rejected"]
    reasons: list[Reason]
    agency_ref: str | None = None
    case_ref: str | None = None


class ParseErrorBody(BaseModel):
    """A body FastAPI could not even decode (e.g. not UTF-8)."""
    detail: str


# The error answers the routes give, for the OpenAPI document (what clients may expect).
CASE_NOT_FOUND = {404: {"model": ErrorBody, "description": "No such case"}}
REJECTED = {422: {"model": RejectionBody, "description": "Rejected, with every reason"}}
CONSENT_CHANGE = {400: {"model": ParseErrorBody, "description": "The body could not be decoded"},
                  **UNAUTHENTICATED,
                  403: {"model": RejectionBody | ErrorBody,
                        "description": "Your role may not (detail code role_not_allowed), or your "
                                       "party may not change this consent (reason not_allowed)"},
                  404: {"model": RejectionBody, "description": "No such case (code case_not_found)"},
                  **REJECTED}


def problem_response(problems: list[Problem], *, agency_ref: str | None = None,
                     case_ref: str | None = None) -> JSONResponse:
    codes = {p.code for p in problems}
    status = 404 if "case_not_found" in codes else 403 if "not_allowed" in codes else 422
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
        return request_emitter(conn, request, "referral")

    @router.post("/referrals", tags=["referrals"], status_code=201,
                 openapi_extra={"requestBody": {"required": True, "content": {
                     "application/json": {"schema": inline_schema(SubmitReferral)}}}},
                 responses={201: {"description": "Accepted (or the same agency reference "
                                                 "accepted before: the same answer)"},
                            **UNAUTHENTICATED, **FORBIDDEN, **REJECTED})
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
            where = unstorable(raw)
            if where is not None:  # not stored as a rejection either: it could not be
                return problem_response([Problem("invalid_value", where or None)])
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

    @router.get("/referrals/rejections", tags=["referrals"],
                responses={**UNAUTHENTICATED, **FORBIDDEN})
    async def rejections(principal: caller) -> list[dict]:
        """Your party's latest rejected submissions (codes and fields; no personal data)."""
        require_roles(principal, Role.OFFICER)
        async with runtime.pool.acquire() as conn:
            return await store.rejections_of(conn, principal.party.value)

    async def consent_change(request: Request, principal: Principal, command_cls,
                             **fields) -> JSONResponse:
        try:
            command = command_cls(**fields)
        except ValidationError as exc:  # a rule of the command that the body's model lacks
            return problem_response(domain.problems_from_schema(safe_errors(exc)))
        apply = (intake.record_consent if command_cls is RecordConsent
                 else intake.withdraw_consent)
        coordinator_of = principal.teams if principal.role == Role.COORDINATOR else frozenset()
        async with runtime.pool.acquire() as conn, conn.transaction():
            problems = await apply(conn, emitter(conn, request), by=principal.party,
                                   command=command, now=clock.now(),
                                   coordinator_of=coordinator_of)
        if problems:
            runtime.metrics.count_rejection(command.name, principal.party.value,
                                            [p.code for p in problems])
            return problem_response(problems, case_ref=command.case_ref)
        return JSONResponse({"status": "recorded", "case_ref": command.case_ref,
                             "party": command.party.value}, status_code=201)

    @router.post("/cases/{case_ref}/consents", tags=["consent"], status_code=201,
                 responses=CONSENT_CHANGE)
    async def record_consent(case_ref: CaseRef, body: ConsentBody, request: Request,
                             principal: caller) -> JSONResponse:
        """Record the individual's consent for a party (given after the referral, or again)."""
        require_roles(principal, Role.OFFICER, Role.COORDINATOR)
        return await consent_change(
            request, principal, RecordConsent,
            case_ref=case_ref, party=body.party, given_on=body.given_on, form_ref=body.form_ref)

    @router.post("/cases/{case_ref}/consents/{party}/withdrawal", tags=["consent"],
                 status_code=201, responses=CONSENT_CHANGE)
    async def withdraw_consent(case_ref: CaseRef, party: Party, body: WithdrawalBody,
                               request: Request, principal: caller) -> JSONResponse:
        """Withdraw a party's consent (by the party, or on the individual's behalf)."""
        require_roles(principal, Role.OFFICER, Role.COORDINATOR)
        return await consent_change(
            request, principal, WithdrawConsent,
            case_ref=case_ref, party=party, withdrawn_on=body.withdrawn_on,
            on_behalf_of_individual=body.on_behalf_of_individual)

    @router.get("/cases/{case_ref}/consents", tags=["consent"],
                responses={**UNAUTHENTICATED, **FORBIDDEN, **CASE_NOT_FOUND,
                           **REJECTED})
    async def consents(case_ref: CaseRef, principal: caller) -> dict:
        """A case's consent history per party (no personal data)."""
        require_roles(principal, Role.OFFICER, Role.MEMBER, Role.COORDINATOR, Role.AUDITOR)
        async with runtime.pool.acquire() as conn:
            case = await _visible_case(conn, case_ref, principal)
            history = await store.consent_history(conn, case.case_ref)
        return {"case_ref": case.case_ref, "history": _jsonable(history)}

    @router.get("/cases/{case_ref}", tags=["cases"], responses={
        **UNAUTHENTICATED,
        403: {"model": ErrorBody, "description": "Your role, team or party's consent does not "
                                                 "allow it (the refusal is logged)"},
        **CASE_NOT_FOUND,
        422: {"model": RejectionBody | ErrorBody,
              "description": "Invalid purpose: its length (rejection reasons), or it holds an "
                             "identity number (detail code purpose_holds_identity)"}})
    async def case_details(case_ref: CaseRef, principal: caller,
                           purpose: Annotated[str, Query(min_length=3, max_length=200,
                                                         pattern=TEXT,
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
                role=principal.role.value, teams=principal.teams, case_team=case.team_id,
                party_has_consent=consent)
            await store.log_access(conn, case_ref=case.case_ref, user_id=principal.user_id,
                                   party=principal.party.value, role=principal.role.value,
                                   purpose=purpose, outcome="denied" if refusal else "granted",
                                   reason=refusal)
            if refusal:
                return JSONResponse({"detail": {"code": refusal, "message": _REFUSALS[refusal]}},
                                    status_code=403)
            sealed, erased_at = await store.sealed_fields(conn, case.case_ref)
        try:
            details = referral_intake.reveal(case.case_ref, sealed)
        except VaultError:  # its key destroyed: as good as erased
            log.error("vault field could not be opened", case_ref=case.case_ref)
            details, erased_at = {}, erased_at or case.referred_at
        return {"case_ref": case.case_ref, "team_id": case.team_id,
                "referring_party": case.referring_party,
                "protected_identity": case.protected_identity,
                "personnummer": details.get("personnummer"),
                "question": details.get("question"), "purpose": details.get("purpose"),
                "erased": erased_at is not None,
                "referred_at": case.referred_at.isoformat()}

    @router.get("/cases/{case_ref}/access-log", tags=["cases"],
                responses={**UNAUTHENTICATED, **FORBIDDEN, **CASE_NOT_FOUND,
                           **REJECTED})
    async def access_log(case_ref: CaseRef, principal: caller) -> dict:
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


async def _visible_case(conn, case_ref: str, principal: Principal):
    case = await store.get_case(conn, case_ref)
    if case is None:
        raise HTTPException(404, {"code": "case_not_found", "message": "no such case"})
    if principal.role != Role.AUDITOR and not principal.in_team(case.team_id):
        raise HTTPException(403, {"code": "not_in_team",
                                  "message": "not a member of the case's team"})
    return case


def _jsonable(rows: list[dict]) -> list[dict]:
    return [{k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in row.items()}
            for row in rows]
