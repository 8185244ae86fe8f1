"""Metrics handlers (thin): update projections."""

from shared import consent
from shared.consumer import HandlerContext
from shared.events import CaseReferred

from . import store


async def case_referred(ctx: HandlerContext) -> None:
    event: CaseReferred = ctx.payload
    await consent.record_initial(ctx.conn, event)
    await store.count_referral(ctx.conn, event.referring_party.value)


HANDLERS = {CaseReferred.name: case_referred, **consent.HANDLERS}
