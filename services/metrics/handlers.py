"""Metrics handler (thin, set-based): keep every event in the event log and apply it, as the
consumer decoded it, to the projections (the same ``projections`` that ``rebuild`` replays),
a whole batch of deliveries at once."""

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
from shared.platform.handlers import HandlerTable, Received

from . import projections
from .uow import MetricsUnitOfWork

handlers = HandlerTable("metrics")


@handlers.on_batch(
    CaseReferred,
    ConsentRecorded,
    ConsentWithdrawn,
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
)
async def log_and_project(received: list[Received], uow: MetricsUnitOfWork) -> None:
    """Every event into the event log; the new ones (in order) onto the projections, if their
    contract has one (``CaseScheduled`` is logged only); the consent changes onto the consent
    replica. Set-based: a statement per kind of row for the whole batch."""
    new = await uow.event_log.add_many([r.message.envelope for r in received])
    await projections.apply_all(
        uow.conn, [(r.event, r.message.envelope.event_id) for r in received if r.message.envelope.event_id in new]
    )
    await consent.apply_all(uow.conn, [r.event for r in received])


async def lock_batch(conn: Conn, events: list[Any]) -> None:
    """Every transaction of deliveries takes the projections' lock first (see
    ``projections.lock_projections``), alone or in a batch."""
    await projections.lock_projections(conn)
