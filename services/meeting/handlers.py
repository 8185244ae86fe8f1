"""Meeting handlers (thin): events in, use cases of ``agenda`` out."""

from __future__ import annotations

from typing import Any

from shared.contracts import CaseClosed, CaseReferred, ConsentRecorded, ConsentWithdrawn
from shared.platform.db import Conn
from shared.platform.handlers import HandlerTable, Received

from . import agenda, store
from .uow import MeetingUnitOfWork

handlers = HandlerTable("meeting")


@handlers.on_batch(CaseReferred)
async def on_cases_referred(received: list[Received], uow: MeetingUnitOfWork) -> None:
    await agenda.cases_referred(uow, [r.event for r in received])


@handlers.on(ConsentRecorded)
async def on_consent_recorded(event: ConsentRecorded, uow: MeetingUnitOfWork) -> None:
    await agenda.consent_given(uow, event)


@handlers.on(ConsentWithdrawn)
async def on_consent_withdrawn(event: ConsentWithdrawn, uow: MeetingUnitOfWork) -> None:
    await agenda.consent_withdrawn(uow, event)


@handlers.on(CaseClosed)
async def on_case_closed(event: CaseClosed, uow: MeetingUnitOfWork) -> None:
    await agenda.case_closed(uow, event.case_ref, event.closed_at)


async def lock_batch(conn: Conn, events: list[Any]) -> None:
    """Every handler above locks its case's team first: a transaction of several deliveries
    (group commit) locks all their teams at once, in team order, before they run."""
    if len(events) < 2:
        return  # one team: nothing to order
    await store.Teams(conn).lock_in_order(
        [e.team_id for e in events if isinstance(e, CaseReferred)],
        [e.case_ref for e in events if not isinstance(e, CaseReferred)],
    )
