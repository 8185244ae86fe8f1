"""The referral service's unit of work: one transaction of its database, with the inbox and
outbox (``shared.platform.uow``), and what its use cases need besides (the intake rules with
the team registry and the vault's keys, the clock, which broker users are agencies)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from shared.platform.clock import Clock
from shared.platform.uow import Message, PostgresUnitOfWork

from .intake import Intake


@dataclass(frozen=True)
class Dependencies:
    intake: Intake
    clock: Clock
    agency_users: dict[str, str]


class ReferralUnitOfWork(PostgresUnitOfWork):
    def __init__(self, conn: asyncpg.Connection, deps: Dependencies, *, message: Message | None = None) -> None:
        super().__init__(conn, "referral", message=message)
        self.intake, self.clock, self.agency_users = deps.intake, deps.clock, deps.agency_users
