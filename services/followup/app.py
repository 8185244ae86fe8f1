"""The follow-up service: wiring of rules, handlers, routes, migrations and the scheduler."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import asyncpg

from shared.contracts import (
    CaseClosed,
    CommandAccepted,
    CommandDeadLettered,
    CommandRejected,
    FollowUpCancelled,
    FollowUpCompleted,
    FollowUpDue,
    FollowUpEscalated,
    FollowUpOverdue,
    FollowUpScheduled,
)
from shared.platform.clock import Clock
from shared.platform.config import Settings
from shared.platform.retention import retention_task
from shared.platform.runtime import Runtime, ServiceSpec
from shared.platform.uow import Message

from . import followups
from .domain import Rules
from .handlers import handlers
from .routes import router
from .store import FollowUps
from .uow import FollowUpUnitOfWork


def spec(settings: Settings, clock: Clock | None = None) -> ServiceSpec:
    rules, clock = Rules.from_settings(settings), clock or Clock.from_settings(settings)

    def unit_of_work(conn: asyncpg.Connection, message: Message | None) -> FollowUpUnitOfWork:
        return FollowUpUnitOfWork(conn, rules=rules, clock=clock, agency_users=settings.agency_users, message=message)

    async def scheduler(runtime: Runtime) -> None:
        """Durable reminders: due times live in the database; each round claims what is due
        (SKIP LOCKED: instances share the work, none fires a follow-up twice) in batches, and
        sleeps when nothing more is due. A due time passed during downtime fires at start."""
        while True:
            async with runtime.unit_of_work() as uow:
                acted = await followups.tick(uow, settings.followup_batch_size)
            if acted < settings.followup_batch_size:
                await asyncio.sleep(settings.followup_check_seconds)

    async def gauges(runtime: Runtime, conn: asyncpg.Connection) -> None:
        """For the alert on follow-ups left unrecorded after the escalation (read at scrape)."""
        overdue = clock.now() - timedelta(days=settings.followup_overdue_days)
        n = await FollowUps(conn).unrecorded_escalated_before(overdue)
        runtime.metrics.followups_unrecorded_after_escalation.labels("followup").set(n)

    return ServiceSpec(
        name="followup",
        clock=clock,
        description="Follow-up: plan checks and six-month (optionally twelve-month) outcome "
        "follow-ups with durable reminders, overdue escalation, recording and "
        "closure of cases.",
        migrations=Path(__file__).parent / "migrations",
        handlers=handlers,
        unit_of_work=unit_of_work,
        routes=lambda runtime: router,
        tasks=(
            scheduler,
            retention_task("case-level data deleted after retention", followups.forget_closed_cases, settings),
        ),
        gauges=gauges,
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
            (CommandDeadLettered, "To the sending agency alone: its command was dead-lettered (not replayable)."),
        ),
    )
