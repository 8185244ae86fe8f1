"""The metrics service's unit of work: one transaction of its database, with the inbox and
outbox (``shared.platform.uow``) and the repositories its use cases read and write through
(``store``): the event log, the cells, the teams, the access log and the public editions.

Tests use ``tests/fakes/metrics.py``, the same repositories in memory."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

import asyncpg

from shared.platform.uow import Message, PostgresUnitOfWork

from . import store

PRODUCER = "metrics"


class MetricsUnitOfWork(PostgresUnitOfWork):
    def __init__(
        self,
        conn: asyncpg.Connection,
        producer: str = PRODUCER,
        *,
        message: Message | None = None,
        correlation_id: str | None = None,
    ) -> None:
        super().__init__(conn, producer, message=message, correlation_id=correlation_id)
        self.event_log = store.EventLog(conn)
        self.cells = store.Cells(conn)
        self.teams = store.Teams(conn)
        self.access_log = store.AccessLog(conn)
        self.editions = store.Editions(conn)

    def savepoint(self) -> AbstractAsyncContextManager[Any]:
        """A part of the unit of work that fails alone: what it changed is undone, the rest stays
        (an edition that cannot be made safe is not made; the others are)."""
        return self.conn.transaction()
