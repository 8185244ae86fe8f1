"""The followup service's unit of work: one transaction of its database, with the inbox and
outbox (``shared.platform.uow``), the follow-up rules its use cases run, and which broker
users are agencies."""

from __future__ import annotations

import asyncpg

from shared.platform.uow import Message, PostgresUnitOfWork

from .followups import FollowUps


class FollowUpUnitOfWork(PostgresUnitOfWork):
    def __init__(self, conn: asyncpg.Connection, followups: FollowUps, agency_users: dict[str, str], *,
                 message: Message | None = None) -> None:
        super().__init__(conn, "followup", message=message)
        self.followups, self.agency_users = followups, agency_users
