"""Follow-up handlers (thin): events and agency commands in, use cases of ``followups`` out."""

from __future__ import annotations

from shared.contracts import (
    CaseNotConsulted,
    CaseReferred,
    ConsentRecorded,
    ConsentWithdrawn,
    ConsultationHeld,
    InvalidPayload,
    RecordFollowUp,
)
from shared.platform.commands import answer, invalid_case_ref, sender
from shared.platform.handlers import HandlerTable, Received
from shared.platform.problems import problems_from_schema

from . import domain, followups
from .domain import Answers
from .uow import FollowUpUnitOfWork

handlers = HandlerTable("followup")


@handlers.on_batch(CaseReferred)
async def on_cases_referred(received: list[Received], uow: FollowUpUnitOfWork) -> None:
    await followups.cases_referred(uow, [r.event for r in received])


@handlers.on(ConsultationHeld)
async def on_consultation_held(event: ConsultationHeld, uow: FollowUpUnitOfWork) -> None:
    await followups.schedule(uow, event)


@handlers.on(CaseNotConsulted)
async def on_case_not_consulted(event: CaseNotConsulted, uow: FollowUpUnitOfWork) -> None:
    await followups.not_consulted(uow, event)


@handlers.on(ConsentRecorded)
async def on_consent_recorded(event: ConsentRecorded, uow: FollowUpUnitOfWork) -> None:
    await followups.consent_recorded(uow, event)


@handlers.on(ConsentWithdrawn)
async def on_consent_withdrawn(event: ConsentWithdrawn, uow: FollowUpUnitOfWork) -> None:
    await followups.consent_withdrawn(uow, event)


@handlers.on(RecordFollowUp, answers_invalid=True)
async def on_record_followup(command: RecordFollowUp | InvalidPayload, uow: FollowUpUnitOfWork) -> None:
    """The responsible agency records a follow-up; answered to that agency alone."""
    party = sender(uow.message, uow.agency_users)
    if isinstance(command, InvalidPayload):
        problems, case_ref = problems_from_schema(command.errors), invalid_case_ref(command)
    else:
        user = uow.message.user_id if uow.message else None
        decision = await followups.record(
            uow,
            domain.followup_id(command.case_ref, command.kind),
            answers_of(command),
            by_party=party,
            by_user=user or "",
            channel="amqp",
        )
        problems, case_ref = list(decision.problems), command.case_ref
    await answer(uow, party, problems, case_ref)


def answers_of(body) -> Answers:
    """The answers of a RecordFollowUp command or HTTP body (the same fields)."""
    value = lambda v: v.value if v is not None else None  # noqa: E731
    return Answers(
        recorded_on=body.recorded_on,
        reached=body.reached,
        income_source=value(body.income_source),
        readiness=value(body.readiness),
        plan_status=value(body.plan_status),
    )
