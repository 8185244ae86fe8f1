"""The referral service: wiring of rules, handlers, routes, migrations and background work."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import structlog

from shared.contracts import (
    CaseReferred,
    CommandAccepted,
    CommandDeadLettered,
    CommandRejected,
    ConsentRecorded,
    ConsentWithdrawn,
    ReferralAccepted,
    ReferralRejected,
)
from shared.platform.clock import Clock
from shared.platform.config import Settings
from shared.platform.retention import retention_task
from shared.platform.runtime import Runtime, ServiceSpec
from shared.platform.teams import load_teams

from . import use_cases
from .handlers import handlers
from .routes import router
from .uow import Dependencies, ReferralUnitOfWork
from .vault import Keyring

log = structlog.get_logger("referral")


def spec(settings: Settings, clock: Clock | None = None) -> ServiceSpec:
    deps = Dependencies(
        teams=load_teams(settings.teams_file),
        keyring=Keyring.from_config(settings.real_secret("encryption_keys")),
        pseudonym_key=settings.real_secret("pseudonym_key").encode(),
        clock=clock or Clock.from_settings(settings),
        agency_users=settings.agency_users,
        retention=timedelta(days=settings.retention_days),
    )

    async def rewrap_vault(runtime: Runtime) -> None:
        """Key rotation: every live case's data key under the current master key, in small
        units of work; then rests until the next check."""
        while True:
            async with runtime.unit_of_work() as uow:
                assert isinstance(uow, ReferralUnitOfWork)
                moved = await use_cases.rewrap_vault(uow)
            if moved:
                log.info("case keys wrapped by the current master key", cases=moved)
                continue
            await asyncio.sleep(settings.retention_check_seconds)

    return ServiceSpec(
        name="referral",
        description="Referral intake: agencies submit referrals over AMQP or HTTP; accepted "
        "ones become cases. Holds the privacy vault, consent and the access log.",
        migrations=Path(__file__).parent / "migrations",
        handlers=handlers,
        unit_of_work=lambda conn, message: ReferralUnitOfWork(conn, deps, message=message),
        routes=lambda runtime: router,
        tasks=(
            retention_task("personal data erased after retention", use_cases.erase_expired_personal_data, settings),
            rewrap_vault,
        ),
        clock=deps.clock,
        publishes=(
            (CaseReferred, "A referral was accepted; a case exists (no personal data)."),
            (ConsentRecorded, "Consent for a party is in force."),
            (ConsentWithdrawn, "Consent for a party is withdrawn; every service applies it."),
            (ReferralAccepted, "Reply to the submitting agency alone (agency exchange)."),
            (ReferralRejected, "Reply to the submitting agency alone, with every reason."),
            (CommandAccepted, "Reply to a consent command (agency exchange)."),
            (CommandRejected, "Reply to a refused consent command (agency exchange)."),
            (CommandDeadLettered, "To the sending agency alone: its command was dead-lettered (not replayable)."),
        ),
    )
