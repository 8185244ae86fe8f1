"""Follow-up handlers (thin)."""

from shared import consent
from shared.consumer import HandlerContext
from shared.events import CaseReferred

from . import store
from .domain import TrackedCase


async def case_referred(ctx: HandlerContext) -> None:
    event: CaseReferred = ctx.payload
    await consent.record_initial(ctx.conn, event)
    await store.track(ctx.conn, TrackedCase(
        case_ref=event.case_ref, referring_party=event.referring_party.value,
        income_source_at_referral=event.income_source.value, referred_at=event.referred_at))


HANDLERS = {CaseReferred.name: case_referred, **consent.HANDLERS}
