"""Meeting handlers (thin): events in, use-cases of ``scheduling`` out."""

from __future__ import annotations

from shared.platform import consent
from shared.platform.consumer import HandlerContext
from shared.contracts import CaseClosed, CaseReferred, ConsentRecorded, ConsentWithdrawn

from .scheduling import Scheduling


def make_handlers(scheduling: Scheduling) -> dict:
    async def case_referred(ctx: HandlerContext) -> None:
        await scheduling.case_referred(ctx.conn, ctx.emit, ctx.payload)

    async def consent_recorded(ctx: HandlerContext) -> None:
        await consent.consent_recorded(ctx)
        await scheduling.consent_changed(ctx.conn, ctx.emit, ctx.payload.case_ref)

    async def consent_withdrawn(ctx: HandlerContext) -> None:
        await consent.consent_withdrawn(ctx)
        await scheduling.consent_changed(ctx.conn, ctx.emit, ctx.payload.case_ref)

    async def case_closed(ctx: HandlerContext) -> None:
        await scheduling.case_closed(ctx.conn, ctx.emit, ctx.payload.case_ref)

    return {CaseReferred.name: case_referred, ConsentRecorded.name: consent_recorded,
            ConsentWithdrawn.name: consent_withdrawn, CaseClosed.name: case_closed}
