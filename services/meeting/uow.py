"""The meeting service's unit of work: one transaction of its database, with the inbox and
outbox (``shared.platform.uow``), and the scheduling rules its use cases run."""

from __future__ import annotations

import asyncpg

from shared.platform.uow import Message, PostgresUnitOfWork

from .scheduling import Scheduling


class MeetingUnitOfWork(PostgresUnitOfWork):
    def __init__(self, conn: asyncpg.Connection, scheduling: Scheduling, *, message: Message | None = None) -> None:
        super().__init__(conn, "meeting", message=message)
        self.scheduling = scheduling
