"""The referral service: wiring of rules, handlers, routes, migrations and background work."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import structlog

from shared.platform.clock import Clock
from shared.platform.config import Settings
from shared.contracts import (CaseReferred, CommandAccepted, CommandRejected, ConsentRecorded,
                           ConsentWithdrawn, ReferralAccepted, ReferralRejected)
from shared.platform.runtime import ServiceSpec
from shared.platform.teams import load_teams

from . import store
from .handlers import handlers
from .intake import Intake
from .routes import make_routes
from .uow import Dependencies, ReferralUnitOfWork
from .vault import Keyring

log = structlog.get_logger("referral")


def spec(settings: Settings, clock: Clock | None = None) -> ServiceSpec:
    clock = clock or Clock.from_settings(settings)
    referral_intake = Intake(
        teams=load_teams(settings.teams_file),
        keyring=Keyring.from_config(settings.encryption_keys.get_secret_value()),
        pseudonym_key=settings.pseudonym_key.get_secret_value().encode())
    deps = Dependencies(intake=referral_intake, clock=clock, agency_users=settings.agency_users)

    async def erase_expired_personal_data(runtime) -> None:
        """Retention: destroy the personal data of cases closed longer ago than the period."""
        while True:
            async with runtime.pool.acquire() as conn, conn.transaction():
                erased = await store.erase_expired(
                    conn, clock.now() - timedelta(days=settings.retention_days))
            if erased:
                log.info("personal data erased after retention", cases=len(erased))
            await asyncio.sleep(settings.retention_check_seconds)

    return ServiceSpec(
        name="referral",
        description="Referral intake: agencies submit referrals over AMQP or HTTP; accepted "
                    "ones become cases. Holds the privacy vault, consent and the access log.",
        migrations=Path(__file__).parent / "migrations",
        handlers=handlers,
        unit_of_work=lambda conn, message: ReferralUnitOfWork(conn, deps, message=message),
        routes=lambda runtime: make_routes(runtime, referral_intake, clock),
        tasks=(erase_expired_personal_data,),
        publishes=(
            (CaseReferred, "A referral was accepted; a case exists (no personal data)."),
            (ConsentRecorded, "Consent for a party is in force."),
            (ConsentWithdrawn, "Consent for a party is withdrawn; every service applies it."),
            (ReferralAccepted, "Reply to the submitting agency alone (agency exchange)."),
            (ReferralRejected, "Reply to the submitting agency alone, with every reason."),
            (CommandAccepted, "Reply to a consent command (agency exchange)."),
            (CommandRejected, "Reply to a refused consent command (agency exchange)."),
        ),
    )
