"""Metrics handlers (thin): keep every event in the event log, update projections."""

from shared import consent
from shared.consumer import HandlerContext
from shared.events import (CaseClosed, CaseNotConsulted, CasePostponed, CaseReferred,
                           CaseScheduled, ConsentRecorded, ConsentWithdrawn, ConsultationHeld,
                           FollowUpCancelled, FollowUpCompleted, FollowUpScheduled,
                           MeetingCancelled, MeetingScheduled, PreMeetingHeld, TeamUpdated)

from . import store


async def case_referred(ctx: HandlerContext) -> None:
    event: CaseReferred = ctx.payload
    await store.log_event(ctx.conn, ctx.envelope)
    await consent.record_initial(ctx.conn, event)
    await store.count_referral(ctx.conn, event.referring_party.value)


def logged(handler=None):
    """A handler that keeps the event in the log, then runs ``handler`` (if any)."""
    async def handle(ctx: HandlerContext) -> None:
        await store.log_event(ctx.conn, ctx.envelope)
        if handler is not None:
            await handler(ctx)

    return handle


HANDLERS = {
    CaseReferred.name: case_referred,
    ConsentRecorded.name: logged(consent.consent_recorded),
    ConsentWithdrawn.name: logged(consent.consent_withdrawn),
    **{contract.name: logged() for contract in (
        CaseClosed, TeamUpdated, MeetingScheduled, MeetingCancelled, PreMeetingHeld,
        CaseScheduled, CasePostponed, ConsultationHeld, CaseNotConsulted, FollowUpScheduled,
        FollowUpCompleted, FollowUpCancelled)},
}
