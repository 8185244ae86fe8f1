"""Follow-up handlers (thin): events and agency commands in, use-cases of ``followups`` out."""

from __future__ import annotations

from shared.platform import consent
from shared.platform.commands import answer, invalid_case_ref, sender
from shared.platform.config import Settings
from shared.platform.consumer import HandlerContext
from shared.contracts import (CaseNotConsulted, CaseReferred, ConsentRecorded, ConsentWithdrawn,
                           ConsultationHeld, InvalidPayload, RecordFollowUp)
from shared.platform.problems import problems_from_schema

from . import domain, store
from .domain import Answers, TrackedCase
from .followups import FollowUps


def make_handlers(settings: Settings, followups: FollowUps) -> tuple[dict, dict]:
    async def case_referred(ctx: HandlerContext) -> None:
        event: CaseReferred = ctx.payload
        await consent.record_initial(ctx.conn, event)
        await store.track(ctx.conn, TrackedCase(
            case_ref=event.case_ref, referring_party=event.referring_party.value,
            income_source_at_referral=event.income_source.value, referred_at=event.referred_at,
            team_id=event.team_id, municipality=event.municipality))

    async def consultation_held(ctx: HandlerContext) -> None:
        await followups.consultation_held(ctx.conn, ctx.emit, ctx.payload)

    async def not_consulted(ctx: HandlerContext) -> None:
        event: CaseNotConsulted = ctx.payload
        await store.track_consulted(ctx.conn, case_ref=event.case_ref,
                                    referring_party=event.referring_party.value, referred_at=None,
                                    team_id=event.team_id, municipality=event.municipality)
        await followups.close(ctx.conn, ctx.emit, event.case_ref,
                              domain.exit_reason_when_not_consulted(event.reason))

    async def consent_recorded(ctx: HandlerContext) -> None:
        await store.lock_case(ctx.conn, ctx.payload.case_ref)  # consent changes of a case in turn
        await consent.consent_recorded(ctx)

    async def consent_withdrawn(ctx: HandlerContext) -> None:
        await store.lock_case(ctx.conn, ctx.payload.case_ref)  # so two withdrawals see each other
        await consent.consent_withdrawn(ctx)
        await followups.consent_withdrawn(ctx.conn, ctx.emit, ctx.payload.case_ref)

    async def record_followup(ctx: HandlerContext) -> None:
        party = sender(ctx, settings.agency_users)
        if isinstance(ctx.payload, InvalidPayload):
            problems, case_ref = problems_from_schema(ctx.payload.errors), invalid_case_ref(ctx.payload)
        else:
            command: RecordFollowUp = ctx.payload
            case_ref = command.case_ref
            problems, _ = await followups.record(
                ctx.conn, ctx.emit, domain.followup_id(command.case_ref, command.kind),
                answers_of(command), by_party=party, by_user=ctx.user_id or "", channel="amqp")
        await answer(ctx, party, problems, case_ref)

    handlers = {CaseReferred.name: case_referred, ConsultationHeld.name: consultation_held,
                CaseNotConsulted.name: not_consulted,
                ConsentRecorded.name: consent_recorded,
                ConsentWithdrawn.name: consent_withdrawn,
                RecordFollowUp.name: record_followup}
    return handlers, {RecordFollowUp.name: record_followup}  # invalid commands are answered


def answers_of(body) -> Answers:
    """The answers of a RecordFollowUp command or HTTP body."""
    value = lambda v: v.value if v is not None else None  # noqa: E731
    return Answers(recorded_on=body.recorded_on, reached=body.reached,
                   income_source=value(body.income_source), readiness=value(body.readiness),
                   plan_status=value(body.plan_status))
