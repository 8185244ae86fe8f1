"""Follow-up handlers (thin): events and agency commands in, use-cases of ``followups`` out."""

from __future__ import annotations

from shared.platform import consent
from shared.platform.commands import answer, invalid_case_ref, sender
from shared.platform.handlers import HandlerTable
from shared.contracts import (CaseNotConsulted, CaseReferred, ConsentRecorded, ConsentWithdrawn,
                           ConsultationHeld, InvalidPayload, RecordFollowUp)
from shared.platform.problems import problems_from_schema

from . import domain, store
from .domain import Answers, TrackedCase
from .uow import FollowUpUnitOfWork


handlers = HandlerTable("followup")


@handlers.on(CaseReferred)
async def on_case_referred(event: CaseReferred, uow: FollowUpUnitOfWork) -> None:
    await consent.record_initial(uow.conn, event)
    await store.track(uow.conn, TrackedCase(
        case_ref=event.case_ref, referring_party=event.referring_party.value,
        income_source_at_referral=event.income_source.value, referred_at=event.referred_at,
        team_id=event.team_id, municipality=event.municipality))


@handlers.on(ConsultationHeld)
async def on_consultation_held(event: ConsultationHeld, uow: FollowUpUnitOfWork) -> None:
    await uow.followups.consultation_held(uow.conn, uow.emit, event)


@handlers.on(CaseNotConsulted)
async def on_case_not_consulted(event: CaseNotConsulted, uow: FollowUpUnitOfWork) -> None:
    await store.track_consulted(uow.conn, case_ref=event.case_ref,
                                referring_party=event.referring_party.value, referred_at=None,
                                team_id=event.team_id, municipality=event.municipality)
    await uow.followups.close(uow.conn, uow.emit, event.case_ref,
                              domain.exit_reason_when_not_consulted(event.reason))


@handlers.on(ConsentRecorded)
async def on_consent_recorded(event: ConsentRecorded, uow: FollowUpUnitOfWork) -> None:
    await store.lock_case(uow.conn, event.case_ref)  # consent changes of a case in turn
    await consent.consent_recorded(uow.conn, event)


@handlers.on(ConsentWithdrawn)
async def on_consent_withdrawn(event: ConsentWithdrawn, uow: FollowUpUnitOfWork) -> None:
    await store.lock_case(uow.conn, event.case_ref)  # so two withdrawals see each other
    await consent.consent_withdrawn(uow.conn, event)
    await uow.followups.consent_withdrawn(uow.conn, uow.emit, event.case_ref)


@handlers.on(RecordFollowUp, answers_invalid=True)
async def on_record_followup(command: RecordFollowUp | InvalidPayload, uow: FollowUpUnitOfWork) -> None:
    party = sender(uow.message, uow.agency_users)
    if isinstance(command, InvalidPayload):
        problems, case_ref = problems_from_schema(command.errors), invalid_case_ref(command)
    else:
        case_ref = command.case_ref
        problems, _ = await uow.followups.record(
            uow.conn, uow.emit, domain.followup_id(command.case_ref, command.kind),
            answers_of(command), by_party=party, by_user=uow.message.user_id or "", channel="amqp")
    await answer(uow, party, problems, case_ref)


def answers_of(body) -> Answers:
    """The answers of a RecordFollowUp command or HTTP body."""
    value = lambda v: v.value if v is not None else None  # noqa: E731
    return Answers(recorded_on=body.recorded_on, reached=body.reached,
                   income_source=value(body.income_source), readiness=value(body.readiness),
                   plan_status=value(body.plan_status))
