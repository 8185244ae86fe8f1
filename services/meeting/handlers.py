"""Meeting handlers (thin)."""

from shared import consent
from shared.consumer import HandlerContext
from shared.events import CaseReferred

from . import store
from .domain import QueuedCase


async def case_referred(ctx: HandlerContext) -> None:
    event: CaseReferred = ctx.payload
    await consent.record_initial(ctx.conn, event)
    await store.enqueue(ctx.conn, QueuedCase(
        case_ref=event.case_ref, team_id=event.team_id,
        referring_party=event.referring_party.value,
        consented_parties=tuple(p.value for p in event.consented_parties),
        queued_since=event.referred_at))


HANDLERS = {CaseReferred.name: case_referred, **consent.HANDLERS}
