"""Metrics handlers (thin): keep every event in the event log and apply it, as the consumer
decoded it, to the projections (the same ``projections.apply`` that ``rebuild`` replays)."""

from __future__ import annotations

from typing import Any

from shared.contracts import (
    CaseClosed,
    CaseNotConsulted,
    CasePostponed,
    CaseReferred,
    CaseScheduled,
    ConsentRecorded,
    ConsentWithdrawn,
    ConsultationHeld,
    Contract,
    FollowUpCancelled,
    FollowUpCompleted,
    FollowUpScheduled,
    MeetingCancelled,
    MeetingScheduled,
    PreMeetingHeld,
    TeamUpdated,
)
from shared.platform import consent
from shared.platform.db import Conn
from shared.platform.handlers import HandlerTable

from . import projections
from .uow import MetricsUnitOfWork

handlers = HandlerTable("metrics")


async def _project(event: Contract, uow: MetricsUnitOfWork) -> None:
    assert uow.message is not None
    envelope = uow.message.envelope
    if await uow.event_log.add(envelope):
        await projections.apply(uow, event, envelope.event_id)


@handlers.on(CaseReferred)
async def on_case_referred(event: CaseReferred, uow: MetricsUnitOfWork) -> None:
    await _project(event, uow)
    await consent.record_initial(uow.conn, event)


@handlers.on(ConsentRecorded)
async def on_consent_recorded(event: ConsentRecorded, uow: MetricsUnitOfWork) -> None:
    await _project(event, uow)
    await consent.consent_recorded(uow.conn, event)


@handlers.on(ConsentWithdrawn)
async def on_consent_withdrawn(event: ConsentWithdrawn, uow: MetricsUnitOfWork) -> None:
    await _project(event, uow)
    await consent.consent_withdrawn(uow.conn, event)


for _contract in (
    CaseClosed,
    TeamUpdated,
    MeetingScheduled,
    MeetingCancelled,
    PreMeetingHeld,
    CaseScheduled,
    CasePostponed,
    ConsultationHeld,
    CaseNotConsulted,
    FollowUpScheduled,
    FollowUpCompleted,
    FollowUpCancelled,
):
    handlers.on(_contract)(_project)  # logged; projected if it has a projection


async def lock_batch(conn: Conn, events: list[Any]) -> None:
    """Every transaction of deliveries takes the projections' lock first (see
    ``projections.lock_projections``), alone or in a batch."""
    await projections.lock_projections(conn)
