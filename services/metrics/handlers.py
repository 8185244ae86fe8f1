"""Metrics handlers (thin): keep every event in the event log and apply it to the projections
(the same ``projections.apply`` that ``rebuild`` replays)."""

from shared.platform import consent
from shared.platform.consumer import HandlerContext
from shared.contracts import (CaseClosed, CaseNotConsulted, CasePostponed, CaseReferred,
                           CaseScheduled, ConsentRecorded, ConsentWithdrawn, ConsultationHeld,
                           FollowUpCancelled, FollowUpCompleted, FollowUpScheduled,
                           MeetingCancelled, MeetingScheduled, PreMeetingHeld, TeamUpdated)

from . import projections, store


def projected(also=None):
    """A handler that logs the event, applies it to the projections, then runs ``also``."""
    async def handle(ctx: HandlerContext) -> None:
        if await store.log_event(ctx.conn, ctx.envelope):
            await projections.apply(ctx.conn, ctx.envelope.event_type, ctx.envelope.payload,
                                    ctx.envelope.event_id)
        if also is not None:
            await also(ctx)

    return handle


async def _initial_consent(ctx: HandlerContext) -> None:
    await consent.record_initial(ctx.conn, ctx.payload)


HANDLERS = {
    CaseReferred.name: projected(_initial_consent),
    ConsentRecorded.name: projected(consent.consent_recorded),
    ConsentWithdrawn.name: projected(consent.consent_withdrawn),
    **{contract.name: projected() for contract in (
        CaseClosed, TeamUpdated, MeetingScheduled, MeetingCancelled, PreMeetingHeld,
        CaseScheduled, CasePostponed, ConsultationHeld, CaseNotConsulted, FollowUpScheduled,
        FollowUpCompleted, FollowUpCancelled)},
}
