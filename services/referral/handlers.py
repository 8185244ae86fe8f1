"""Referral handlers for AMQP (thin): who sent it, run the rule, reply to that agency alone."""

from __future__ import annotations

from shared.contracts import (CaseClosed, InvalidPayload, RecordConsent, ReferralAccepted,
                              ReferralRejected, SubmitReferral, TeamUpdated, WithdrawConsent)
from shared.platform.commands import answer, invalid_case_ref, reasons, sender
from shared.platform.handlers import HandlerTable

from . import domain, intake, store
from .intake import Accepted
from .uow import ReferralUnitOfWork

handlers = HandlerTable("referral")


@handlers.on(SubmitReferral, answers_invalid=True)
async def on_submit_referral(command: SubmitReferral | InvalidPayload, uow: ReferralUnitOfWork) -> None:
    party = sender(uow.message, uow.agency_users)
    invalid = command if isinstance(command, InvalidPayload) else None
    outcome = await uow.intake.submit(
        uow.conn, uow, party=party, command=None if invalid else command,
        raw=invalid.raw if invalid else {}, schema_errors=invalid.errors if invalid else [],
        channel="amqp", now=uow.clock.now())
    if isinstance(outcome, Accepted):
        await uow.emit(ReferralAccepted(recipient=party, agency_ref=outcome.agency_ref,
                                        case_ref=outcome.case_ref, accepted_at=outcome.accepted_at),
                       ordering_key=outcome.case_ref)
    else:
        assert uow.message is not None
        await uow.emit(ReferralRejected(recipient=party, agency_ref=outcome.agency_ref,
                                        reasons=reasons(outcome.problems), rejected_at=outcome.rejected_at),
                       ordering_key=f"rejection:{uow.message.envelope.event_id}")


@handlers.on(RecordConsent, answers_invalid=True)
async def on_record_consent(command: RecordConsent | InvalidPayload, uow: ReferralUnitOfWork) -> None:
    await _consent_command(command, uow, intake.record_consent)


@handlers.on(WithdrawConsent, answers_invalid=True)
async def on_withdraw_consent(command: WithdrawConsent | InvalidPayload, uow: ReferralUnitOfWork) -> None:
    await _consent_command(command, uow, intake.withdraw_consent)


async def _consent_command(command, uow: ReferralUnitOfWork, apply) -> None:
    party = sender(uow.message, uow.agency_users)
    if isinstance(command, InvalidPayload):
        problems, case_ref = domain.problems_from_schema(command.errors), invalid_case_ref(command)
    else:
        problems = await apply(uow.conn, uow, by=party, command=command, now=uow.clock.now())
        case_ref = command.case_ref
    await answer(uow, party, problems, case_ref)


@handlers.on(CaseClosed)
async def on_case_closed(event: CaseClosed, uow: ReferralUnitOfWork) -> None:
    await store.close_case(uow.conn, event.case_ref, event.reason.value, event.closed_at)


@handlers.on(TeamUpdated)
async def on_team_updated(event: TeamUpdated, uow: ReferralUnitOfWork) -> None:
    await store.register_team(uow.conn, event.team_id, event.municipality, event.revision, event.updated_at)
