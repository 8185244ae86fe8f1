"""The followup service's unit of work: one transaction of its database, with the inbox and
outbox (``shared.platform.uow``), the repositories its use cases load and store through
(``store.py``), and what they depend on: the clock, the follow-up rules, and which broker users
are agencies. Its in-memory stand-in for unit tests: ``tests/fakes/followup.py``."""

from __future__ import annotations

from collections.abc import Mapping

import asyncpg

from shared.platform.clock import Clock
from shared.platform.consent import Consents
from shared.platform.uow import Message, PostgresUnitOfWork

from . import store
from .domain import Rules


class FollowUpUnitOfWork(PostgresUnitOfWork):
    def __init__(
        self,
        conn: asyncpg.Connection,
        *,
        rules: Rules,
        clock: Clock,
        agency_users: Mapping[str, str],
        message: Message | None = None,
        correlation_id: str | None = None,
    ) -> None:
        super().__init__(conn, "followup", message=message, correlation_id=correlation_id)
        self.cases = store.Cases(conn)
        self.followups = store.FollowUps(conn)
        self.records = store.Records(conn)
        self.consents = Consents(conn)
        self.rules, self.clock, self.agency_users = rules, clock, dict(agency_users)
