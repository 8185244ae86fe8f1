"""The meeting service: wiring of rules, handlers, routes, migrations and the scheduler."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import asyncpg
import structlog

from shared.contracts import (
    CaseNotConsulted,
    CasePostponed,
    CaseScheduled,
    ConsentReminder,
    ConsultationHeld,
    MeetingCancelled,
    MeetingScheduled,
    PreMeetingHeld,
    TeamUpdated,
)
from shared.platform import tls
from shared.platform.clock import Clock
from shared.platform.config import Settings
from shared.platform.consumer import OUTAGE_ERRORS
from shared.platform.logging import bind_contextvars, clear_contextvars
from shared.platform.retention import retention_task
from shared.platform.runtime import Runtime, ServiceSpec
from shared.platform.teams import DEFAULT_TEAMS_FILE
from shared.platform.uow import Message

from . import agenda, calendar
from .handlers import handlers, lock_batch
from .referral_api import ReferralApi
from .routes import routes_with
from .uow import Dependencies, MeetingUnitOfWork

log = structlog.get_logger("meeting")


def spec(settings: Settings, clock: Clock | None = None, referral_api: ReferralApi | None = None) -> ServiceSpec:
    deps = Dependencies(
        clock=clock or Clock.from_settings(settings),
        horizon_weeks=settings.meeting_horizon_weeks,
        postpone_on_withdrawal=settings.postpone_on_withdrawal,
    )
    referral = referral_api or ReferralApi.at(settings.referral_url, tls.client_verify(settings))
    registry = json.loads(Path(settings.teams_file or DEFAULT_TEAMS_FILE).read_text(encoding="utf-8"))

    def unit_of_work(conn: asyncpg.Connection, message: Message | None) -> MeetingUnitOfWork:
        return MeetingUnitOfWork(conn, deps, message=message)

    async def scheduler(runtime: Runtime) -> None:
        """Loads the registry file's new teams, then every round, team by team: generates the
        calendar ahead, passes due cut-offs and re-plans the agendas. Several instances share
        the work: a team being handled elsewhere is skipped this round."""
        async with runtime.unit_of_work() as uow:
            saved = await calendar.seed_teams(uow, registry["teams"], registry["version"])
        if saved:
            log.info("teams loaded from the registry file", teams=saved, version=registry["version"])
        while True:
            async with runtime.unit_of_work() as uow:
                team_ids = await uow.teams.ids()
            for team_id in team_ids:
                clear_contextvars()  # this round's log context: the team, then its cases
                bind_contextvars(team_id=team_id)
                try:
                    async with runtime.unit_of_work() as uow:
                        await calendar.maintain(uow, team_id)
                except OUTAGE_ERRORS:
                    raise  # the database is away: the whole loop backs off and retries
                except Exception as exc:  # one team's fault must not stop the others' cut-offs
                    log.error("scheduling a team failed; retried next round", error=type(exc).__name__, exc_info=exc)
            await asyncio.sleep(settings.meeting_check_seconds)

    return ServiceSpec(
        name="meeting",
        clock=deps.clock,
        description="Meeting scheduling: the team registry, calendars, agendas with capacity, "
        "cut-offs, postponements and cancellations, pre-meetings and the "
        "consultation record.",
        migrations=Path(__file__).parent / "migrations",
        handlers=handlers,
        unit_of_work=unit_of_work,
        lock_batch=lock_batch,
        routes=routes_with(referral),
        tasks=(
            scheduler,
            retention_task("case-level data deleted after retention", agenda.forget_closed_cases, settings),
        ),
        publishes=(
            (TeamUpdated, "A team's registry entry was created or changed."),
            (MeetingScheduled, "A meeting is on a team's calendar (again when it changes)."),
            (MeetingCancelled, "A meeting will not be held, with the reason."),
            (PreMeetingHeld, "A meeting's pre-meeting was held."),
            (CaseScheduled, "A case is on a meeting's agenda."),
            (CasePostponed, "A case moved to a later meeting, with the reason."),
            (ConsultationHeld, "A case was consulted and a plan proposed (no personal data)."),
            (CaseNotConsulted, "A case on the agenda was not consulted, with the reason."),
            (ConsentReminder, "To the referring agency alone: consent missing at the cut-off."),
        ),
    )
