"""Referral handlers for AMQP (thin): who sent it, run the use case, reply to that agency alone."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from shared.contracts import (
    CaseClosed,
    InvalidPayload,
    RecordConsent,
    ReferralAccepted,
    ReferralRejected,
    SubmitReferral,
    TeamUpdated,
    WithdrawConsent,
)
from shared.platform.commands import answer, invalid_case_ref, reasons, sender
from shared.platform.handlers import HandlerTable
from shared.platform.problems import Problem

from . import domain, use_cases
from .domain import Accepted, Submission
from .uow import ReferralUnitOfWork

handlers = HandlerTable("referral")


@handlers.on(SubmitReferral, answers_invalid=True)
async def on_submit_referral(command: SubmitReferral | InvalidPayload, uow: ReferralUnitOfWork) -> None:
    party = sender(uow.message, uow.deps.agency_users)
    submission = (
        Submission(None, raw=command.raw, schema_errors=tuple(command.errors))
        if isinstance(command, InvalidPayload)
        else Submission(command)
    )
    outcome = await use_cases.submit_referral(
        uow, party=party, submission=submission, channel="amqp", by_user=agency_system(uow)
    )
    if isinstance(outcome, Accepted):
        await uow.emit(
            ReferralAccepted(
                recipient=party,
                agency_ref=outcome.agency_ref,
                case_ref=outcome.case_ref,
                accepted_at=outcome.accepted_at,
            ),
            ordering_key=outcome.case_ref,
        )
    else:
        assert uow.message is not None
        await uow.emit(
            ReferralRejected(
                recipient=party,
                agency_ref=outcome.agency_ref,
                reasons=reasons(outcome.problems),
                rejected_at=outcome.rejected_at,
            ),
            ordering_key=f"rejection:{uow.message.envelope.event_id}",
        )


@handlers.on(RecordConsent, answers_invalid=True)
async def on_record_consent(command: RecordConsent | InvalidPayload, uow: ReferralUnitOfWork) -> None:
    await _consent_command(command, uow, use_cases.record_consent)


@handlers.on(WithdrawConsent, answers_invalid=True)
async def on_withdraw_consent(command: WithdrawConsent | InvalidPayload, uow: ReferralUnitOfWork) -> None:
    await _consent_command(command, uow, use_cases.withdraw_consent)


async def _consent_command(
    command: RecordConsent | WithdrawConsent | InvalidPayload,
    uow: ReferralUnitOfWork,
    use_case: Callable[..., Awaitable[list[Problem]]],
) -> None:
    party = sender(uow.message, uow.deps.agency_users)
    if isinstance(command, InvalidPayload):
        problems, case_ref = domain.problems_from_schema(command.errors), invalid_case_ref(command)
    else:
        problems, case_ref = (
            await use_case(uow, by=party, by_user=agency_system(uow), command=command),
            command.case_ref,
        )
    await answer(uow, party, problems, case_ref)


def agency_system(uow: ReferralUnitOfWork) -> str:
    """Who records over AMQP: the agency's system, by its broker user."""
    return f"agency-system:{uow.message.user_id}" if uow.message else "agency-system"


@handlers.on(CaseClosed)
async def on_case_closed(event: CaseClosed, uow: ReferralUnitOfWork) -> None:
    await use_cases.close_case(uow, event)


@handlers.on(TeamUpdated)
async def on_team_updated(event: TeamUpdated, uow: ReferralUnitOfWork) -> None:
    await use_cases.register_team(uow, event)
