"""The follow-up service: wiring of rules, handlers, routes, migrations and the scheduler."""

from __future__ import annotations

import asyncio
from pathlib import Path

from shared.platform.clock import Clock
from shared.platform.config import Settings
from shared.contracts import (CaseClosed, CommandAccepted, CommandRejected, FollowUpCancelled,
                           FollowUpCompleted, FollowUpDue, FollowUpEscalated, FollowUpOverdue,
                           FollowUpScheduled)
from shared.platform.outbox import Emitter
from shared.platform.runtime import ServiceSpec

from .domain import Rules
from .followups import FollowUps
from .handlers import handlers
from .routes import make_routes
from .uow import FollowUpUnitOfWork


def spec(settings: Settings, clock: Clock | None = None) -> ServiceSpec:
    followups = FollowUps(rules=Rules.from_settings(settings),
                          clock=clock or Clock.from_settings(settings))

    async def scheduler(runtime) -> None:
        """Durable reminders: due times live in the database; each round claims what is due
        (SKIP LOCKED: instances share the work, none fires a follow-up twice) in batches, and
        sleeps when nothing more is due. A due time passed during downtime fires at start."""
        while True:
            async with runtime.pool.acquire() as conn, conn.transaction():
                acted = await followups.tick(conn, Emitter(conn, "followup").emit,
                                             settings.followup_batch_size)
            if acted < settings.followup_batch_size:
                await asyncio.sleep(settings.followup_check_seconds)

    return ServiceSpec(
        name="followup",
        description="Follow-up: plan checks and six-month (optionally twelve-month) outcome "
                    "follow-ups with durable reminders, overdue escalation, recording and "
                    "closure of cases.",
        migrations=Path(__file__).parent / "migrations",
        handlers=handlers,
        unit_of_work=lambda conn, message: FollowUpUnitOfWork(conn, followups, settings.agency_users, message=message),
        routes=lambda runtime: make_routes(runtime, followups),
        tasks=(scheduler,),
        publishes=(
            (FollowUpScheduled, "A follow-up of a consulted case is scheduled."),
            (FollowUpDue, "To the responsible agency alone: the follow-up is due."),
            (FollowUpOverdue, "To the responsible agency alone: reminder n of m."),
            (FollowUpEscalated, "To the team's coordinator (REGION): no record after every reminder."),
            (FollowUpCompleted, "A follow-up was recorded (a correction: a higher revision)."),
            (FollowUpCancelled, "A pending follow-up is cancelled: the case was closed."),
            (CaseClosed, "The case is closed, with its exit reason."),
            (CommandAccepted, "Reply to RecordFollowUp (agency exchange)."),
            (CommandRejected, "Reply to a refused RecordFollowUp, with every reason."),
        ),
    )
