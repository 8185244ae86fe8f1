"""Referral handlers for AMQP (thin): who sent it, run the rule, reply to that agency alone."""

from __future__ import annotations

from shared.platform.clock import Clock
from shared.platform.config import Settings
from shared.platform.commands import answer, invalid_case_ref, reasons, sender
from shared.platform.consumer import HandlerContext
from shared.contracts import (CaseClosed, InvalidPayload, RecordConsent, ReferralAccepted,
                           ReferralRejected, SubmitReferral, TeamUpdated, WithdrawConsent)

from . import domain, intake, store
from .intake import Accepted, Intake


def make_handlers(settings: Settings, referral_intake: Intake, clock: Clock):
    agency_users = settings.agency_users

    async def submit_referral(ctx: HandlerContext) -> None:
        party = sender(ctx, agency_users)
        invalid = ctx.payload if isinstance(ctx.payload, InvalidPayload) else None
        outcome = await referral_intake.submit(
            ctx.conn, ctx, party=party, command=None if invalid else ctx.payload,
            raw=invalid.raw if invalid else {}, schema_errors=invalid.errors if invalid else [],
            channel="amqp", now=clock.now())
        if isinstance(outcome, Accepted):
            reply = ReferralAccepted(recipient=party, agency_ref=outcome.agency_ref,
                                     case_ref=outcome.case_ref, accepted_at=outcome.accepted_at)
            await ctx.emit(reply, ordering_key=outcome.case_ref)
        else:
            ctx.metrics.count_rejection(SubmitReferral.name, party.value,
                                        [p.code for p in outcome.problems])
            reply = ReferralRejected(recipient=party, agency_ref=outcome.agency_ref,
                                     reasons=reasons(outcome.problems),
                                     rejected_at=outcome.rejected_at)
            await ctx.emit(reply, ordering_key=f"rejection:{ctx.envelope.event_id}")

    async def consent_command(ctx: HandlerContext) -> None:
        party = sender(ctx, agency_users)
        if isinstance(ctx.payload, InvalidPayload):
            problems = domain.problems_from_schema(ctx.payload.errors)
            case_ref = invalid_case_ref(ctx.payload)
        else:
            name = ctx.envelope.event_type
            apply = intake.record_consent if name == RecordConsent.name else intake.withdraw_consent
            problems = await apply(ctx.conn, ctx, by=party, command=ctx.payload, now=clock.now())
            case_ref = ctx.payload.case_ref
        await answer(ctx, party, problems, case_ref)

    async def case_closed(ctx: HandlerContext) -> None:
        event: CaseClosed = ctx.payload
        await store.close_case(ctx.conn, event.case_ref, event.reason.value, event.closed_at)

    async def team_updated(ctx: HandlerContext) -> None:
        event: TeamUpdated = ctx.payload
        await store.register_team(ctx.conn, event.team_id, event.municipality, event.revision,
                                  event.updated_at)

    handlers = {SubmitReferral.name: submit_referral, RecordConsent.name: consent_command,
                WithdrawConsent.name: consent_command, CaseClosed.name: case_closed,
                TeamUpdated.name: team_updated}
    # invalid commands are answered, not dead-lettered
    rejecters = {SubmitReferral.name: submit_referral, RecordConsent.name: consent_command,
                 WithdrawConsent.name: consent_command}
    return handlers, rejecters
