"""Referral HTTP API (thin): the same use cases as the AMQP intake, for agencies without AMQP,
and the consent-gated, audited reads of a case's personal data.

A route checks the caller's role, opens a unit of work, runs one use case in it, and answers;
the unit of work commits before the answer (a refused read's access-log entry included)."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, ValidationError

from shared.contracts import RecordConsent, SubmitReferral, WithdrawConsent, Witness, safe_errors
from shared.contracts.vocabulary import ConsentSource, Party
from shared.platform.auth import Caller, Principal, Role, require_roles
from shared.platform.http import FORBIDDEN, TEXT, UNAUTHENTICATED, ErrorBody, runtime_of, units_of_work

from . import domain, use_cases
from .domain import Accepted, AccessEntry, Case, ConsentChange, Problem, Refusal, Submission
from .uow import ReferralUnitOfWork


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
    if isinstance(value, date) or (isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value)):
        return value
    raise ValueError("a date is written YYYY-MM-DD")


IsoDate = Annotated[date, BeforeValidator(_iso_date)]


class WitnessBody(BaseModel):
    """The staff member who witnessed a verbal consent."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100, pattern=TEXT)
    role: str = Field(min_length=1, max_length=100, pattern=TEXT)


class ConsentBody(BaseModel):
    """A consent on a signed form (``form_ref``; ``source`` may be left out) or verbal
    (``source: verbal``) with a ``witness``."""

    model_config = ConfigDict(extra="forbid")
    party: Party
    given_on: IsoDate
    source: ConsentSource | None = None
    form_ref: str | None = Field(default=None, min_length=1, max_length=64, pattern=TEXT)
    witness: WitnessBody | None = None


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
CONSENT_CHANGE = {
    400: {"model": ParseErrorBody, "description": "The body could not be decoded"},
    **UNAUTHENTICATED,
    403: {
        "model": RejectionBody | ErrorBody,
        "description": "Your role may not (detail code role_not_allowed), your "
        "party may not change this consent (reason not_allowed), or the case is not of your teams "
        "(reason not_in_team, when recording consent)",
    },
    404: {"model": RejectionBody, "description": "No such case (code case_not_found)"},
    **REJECTED,
}
DETAILS_REFUSED = {
    **UNAUTHENTICATED,
    403: {
        "model": ErrorBody,
        "description": "Your role, team or party's consent does not allow it (the refusal is logged)",
    },
    **CASE_NOT_FOUND,
    422: {
        "model": RejectionBody | ErrorBody,
        "description": "Invalid purpose: its length (rejection reasons), or it holds an "
        "identity number (detail code purpose_holds_identity)",
    },
}

# ------------------------------------------------------------------------------ dependencies

NewUnitOfWork = Callable[[], AbstractAsyncContextManager[ReferralUnitOfWork]]
UnitsOfWork = Annotated[NewUnitOfWork, Depends(units_of_work)]

router = APIRouter(prefix="/api/v1")

# ------------------------------------------------------------------------------ referrals


SUBMISSION_BODY = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": inline_schema(SubmitReferral)}}}
}
SUBMISSION_ANSWERS = {
    201: {"description": "Accepted (or the same agency reference accepted before: the same answer)"},
    **UNAUTHENTICATED,
    403: {
        "model": RejectionBody | ErrorBody,
        "description": "Your role may not (detail code role_not_allowed), or the team is not one of "
        "yours (reason not_your_team)",
    },
    **REJECTED,
}


@router.post(
    "/referrals", tags=["referrals"], status_code=201, openapi_extra=SUBMISSION_BODY, responses=SUBMISSION_ANSWERS
)
async def submit_referral(request: Request, principal: Caller, new_uow: UnitsOfWork) -> JSONResponse:
    """Submit a referral: the same payload and rules as the AMQP `SubmitReferral` command.
    The referring party is the caller's, from the token."""
    require_roles(principal, Role.OFFICER)
    submission = submission_from(await request.body())
    if isinstance(submission, Problem):  # not stored as a rejection either: it could not be
        return problem_response([submission])
    async with new_uow() as uow:
        outcome = await use_cases.submit_referral(uow, submission=submission, channel="http", **_person(principal))
    if isinstance(outcome, Accepted):
        return JSONResponse(
            {
                "status": "accepted",
                "case_ref": outcome.case_ref,
                "agency_ref": outcome.agency_ref,
                "accepted_at": outcome.accepted_at.isoformat(),
            },
            status_code=201,
            headers={"Idempotent-Replayed": "true"} if outcome.replay else {},
        )
    runtime_of(request).metrics.count_rejection(
        SubmitReferral.name, _party(principal).value, [p.code for p in outcome.problems]
    )
    return problem_response(list(outcome.problems), agency_ref=outcome.agency_ref)


@router.get("/referrals", tags=["referrals"], responses={**UNAUTHENTICATED, **FORBIDDEN})
async def party_referrals(
    principal: Caller, new_uow: UnitsOfWork, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> list[dict]:
    """Your party's referrals, the latest first: references, team, dates, closure (no personal
    data). Where each stands: the meeting service (``/cases/{case_ref}/schedule``) and the
    follow-up service."""
    require_roles(principal, Role.OFFICER)
    async with new_uow() as uow:
        found = await use_cases.cases_of(uow, _party(principal), limit)
    return [
        {
            "case_ref": c.case_ref,
            "agency_ref": c.agency_ref,
            "team_id": c.team_id,
            "referred_at": c.referred_at.isoformat(),
            "closed_at": c.closed_at.isoformat() if c.closed_at else None,
            "exit_reason": c.exit_reason,
        }
        for c in found
    ]


@router.get("/referrals/rejections", tags=["referrals"], responses={**UNAUTHENTICATED, **FORBIDDEN})
async def rejections(principal: Caller, new_uow: UnitsOfWork) -> list[dict]:
    """Your party's latest rejected submissions (codes and fields; no personal data)."""
    require_roles(principal, Role.OFFICER)
    async with new_uow() as uow:
        kept = await use_cases.rejections_of(uow, _party(principal))
    return [
        {"agency_ref": r.agency_ref, "channel": r.channel, "reasons": list(r.reasons), "rejected_at": r.rejected_at}
        for r in kept
    ]


def submission_from(body: bytes) -> Submission | Problem:
    """The request body as a submission, or the Problem that it is no JSON object or holds what
    PostgreSQL cannot store. A body over the size limit is not read at all."""
    limit = SubmitReferral.max_bytes
    if limit is not None and len(body) > limit:
        return Submission(None, raw=None, schema_errors=({"loc": (), "type": "payload_too_large"},))
    try:
        raw = json.loads(body)
    except ValueError:
        return Problem("invalid_value", None)
    if not isinstance(raw, dict):
        return Problem("invalid_value", None)
    where = unstorable(raw)
    if where is not None:
        return Problem("invalid_value", where or None)
    try:
        return Submission(SubmitReferral.model_validate(raw))
    except ValidationError as exc:
        return Submission(None, raw=raw, schema_errors=tuple(safe_errors(exc)))


# ------------------------------------------------------------------------------ consent


@router.post("/cases/{case_ref}/consents", tags=["consent"], status_code=201, responses=CONSENT_CHANGE)
async def record_consent(
    case_ref: CaseRef, body: ConsentBody, request: Request, principal: Caller, new_uow: UnitsOfWork
) -> JSONResponse:
    """Record the individual's consent for a party (given after the referral, or again)."""
    require_roles(principal, Role.OFFICER, Role.COORDINATOR)
    return await consent_change(
        request,
        principal,
        new_uow,
        RecordConsent,
        use_cases.record_consent,
        case_ref=case_ref,
        party=body.party,
        given_on=body.given_on,
        source=body.source,
        form_ref=body.form_ref,
        witness=Witness(**body.witness.model_dump()) if body.witness else None,
    )


@router.post(
    "/cases/{case_ref}/consents/{party}/withdrawal", tags=["consent"], status_code=201, responses=CONSENT_CHANGE
)
async def withdraw_consent(
    case_ref: CaseRef, party: Party, body: WithdrawalBody, request: Request, principal: Caller, new_uow: UnitsOfWork
) -> JSONResponse:
    """Withdraw a party's consent (by the party, or on the individual's behalf)."""
    require_roles(principal, Role.OFFICER, Role.COORDINATOR)
    return await consent_change(
        request,
        principal,
        new_uow,
        WithdrawConsent,
        use_cases.withdraw_consent,
        case_ref=case_ref,
        party=party,
        withdrawn_on=body.withdrawn_on,
        on_behalf_of_individual=body.on_behalf_of_individual,
    )


async def consent_change(
    request: Request,
    principal: Principal,
    new_uow: NewUnitOfWork,
    command_cls: type[RecordConsent] | type[WithdrawConsent],
    use_case: Callable[..., Awaitable[list[Problem]]],
    **fields: Any,
) -> JSONResponse:
    """Run a consent command as the caller's party; a coordinator does it for the team's cases."""
    try:
        command = command_cls(**fields)
    except ValidationError as exc:  # a rule of the command that the body's model lacks
        return problem_response(domain.problems_from_schema(safe_errors(exc)))
    coordinator_of = principal.teams if principal.role == Role.COORDINATOR else frozenset()
    async with new_uow() as uow:
        problems = await use_case(
            uow,
            by=_party(principal),
            by_user=principal.user_id,
            command=command,
            coordinator_of=coordinator_of,
            person_teams=principal.teams,
        )
    if problems:
        runtime_of(request).metrics.count_rejection(command.name, _party(principal).value, [p.code for p in problems])
        return problem_response(problems, case_ref=command.case_ref)
    return JSONResponse(
        {"status": "recorded", "case_ref": command.case_ref, "party": command.party.value}, status_code=201
    )


@router.get(
    "/cases/{case_ref}/consents",
    tags=["consent"],
    responses={**UNAUTHENTICATED, **FORBIDDEN, **CASE_NOT_FOUND, **REJECTED},
)
async def consents(case_ref: CaseRef, principal: Caller, new_uow: UnitsOfWork) -> dict:
    """A case's consent history per party (no personal data)."""
    require_roles(principal, Role.OFFICER, Role.MEMBER, Role.COORDINATOR, Role.AUDITOR)
    async with new_uow() as uow:
        found = await use_cases.consent_history(uow, principal, case_ref)
    if isinstance(found, Refusal):
        raise refused(found)
    case, history = found
    return {
        "case_ref": case.case_ref,
        "history": [_change_json(change) for change in history],
        "closure": _closure_json(case),
    }


# ------------------------------------------------------------------------------ reads of a case


@router.get("/cases/{case_ref}", tags=["cases"], responses=DETAILS_REFUSED)
async def case_details(
    case_ref: CaseRef,
    principal: Caller,
    purpose: Annotated[str, Query(min_length=3, max_length=200, pattern=TEXT, description="why you read it (audited)")],
    new_uow: UnitsOfWork,
) -> dict:
    """The case's personal data (identity, question, purpose), for team members whose party
    has the individual's consent. Every read, granted or denied, is written to the access log."""
    async with new_uow() as uow:  # committed before the answer: a refusal is logged too
        read = await use_cases.read_case_details(uow, principal, case_ref, purpose)
    if isinstance(read, Refusal):
        raise refused(read)
    case = read.case
    return {
        "case_ref": case.case_ref,
        "team_id": case.team_id,
        "referring_party": case.referring_party.value,
        "protected_identity": case.protected_identity,
        "personnummer": read.personal.get("personnummer"),
        "question": read.personal.get("question"),
        "purpose": read.personal.get("purpose"),
        "erased": read.erased_at is not None,
        "referred_at": case.referred_at.isoformat(),
    }


@router.get(
    "/cases/{case_ref}/access-log",
    tags=["cases"],
    responses={**UNAUTHENTICATED, **FORBIDDEN, **CASE_NOT_FOUND, **REJECTED},
)
async def access_log(case_ref: CaseRef, principal: Caller, new_uow: UnitsOfWork) -> dict:
    """Who read the case's personal data, when and why (the individual's right to know)."""
    require_roles(principal, Role.AUDITOR)
    async with new_uow() as uow:
        found = await use_cases.access_log(uow, case_ref)
    if isinstance(found, Refusal):
        raise refused(found)
    case, entries = found
    return {"case_ref": case.case_ref, "entries": [_entry_json(entry) for entry in entries]}


# ------------------------------------------------------------------------------ answers


def _person(principal: Principal) -> dict[str, Any]:
    """A signed-in person as the use cases take them: their party, who they are, and their
    teams (the only ones they act on)."""
    return {"party": _party(principal), "by_user": principal.user_id, "person_teams": principal.teams}


def _party(principal: Principal) -> Party:
    assert principal.party is not None  # every role the case routes serve has a party
    return principal.party


# Problems that mean "not you": the caller's party, team or role may not (403).
FORBIDDEN_CODES = frozenset({"not_allowed", "not_in_team", "not_your_team"})


def problem_response(
    problems: list[Problem], *, agency_ref: str | None = None, case_ref: str | None = None
) -> JSONResponse:
    codes = {p.code for p in problems}
    status = 404 if "case_not_found" in codes else 403 if codes & FORBIDDEN_CODES else 422
    body: dict[str, Any] = {"status": "rejected", "reasons": domain.reasons_of(problems)}
    if agency_ref is not None:
        body["agency_ref"] = agency_ref
    if case_ref is not None:
        body["case_ref"] = case_ref
    return JSONResponse(body, status_code=status)


_REFUSAL_STATUS = {"case_not_found": 404, "purpose_holds_identity": 422}


def refused(refusal: Refusal) -> HTTPException:
    """A refused read as an error answer: 404 no such case, 422 a bad purpose, else 403."""
    return HTTPException(_REFUSAL_STATUS.get(refusal.code, 403), {"code": refusal.code, "message": refusal.message})


def _change_json(change: ConsentChange) -> dict:
    return {
        "party": change.party.value,
        "action": change.action,
        "on_date": change.on_date.isoformat(),
        "source": change.source.value if change.source else None,
        "form_ref": change.form_ref,
        "witness": change.witness.model_dump() if change.witness else None,
        "on_behalf_of_individual": change.on_behalf_of_individual,
        "recorded_by": change.recorded_by.value,
        "recorded_by_user": change.recorded_by_user,
        "recorded_at": change.recorded_at.isoformat(),
    }


def _closure_json(case: Case) -> dict | None:
    """When, why and by whom the case was closed (None: open)."""
    if case.closed_at is None:
        return None
    return {
        "closed_at": case.closed_at.isoformat(),
        "exit_reason": case.exit_reason,
        "closed_by": case.closed_by,
        "closed_by_party": case.closed_by_party.value if case.closed_by_party else None,
    }


def _entry_json(entry: AccessEntry) -> dict:
    return {
        "user_id": entry.user_id,
        "party": entry.party.value,
        "role": entry.role,
        "purpose": entry.purpose,
        "outcome": entry.outcome,
        "reason": entry.reason,
        "read_at": entry.read_at.isoformat() if entry.read_at else None,
    }
