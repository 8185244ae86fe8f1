"""The meeting service's unit of work: one transaction of its database, with the inbox and
outbox (``shared.platform.uow``), the repositories its use cases load and save through
(``store.py``), and what they depend on: the clock, how far ahead the calendar reaches, and
whose withdrawn consent postpones a case. Its in-memory stand-in for unit tests:
``tests/fakes/meeting.py``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from shared.contracts import Contract
from shared.platform.clock import Clock
from shared.platform.consent import Consents
from shared.platform.db import Conn
from shared.platform.uow import Message, PostgresUnitOfWork, UnitOfWork

from . import store
from .domain import ordering_key


@dataclass(frozen=True)
class Dependencies:
    clock: Clock
    horizon_weeks: int  # how far ahead the calendar is generated
    postpone_on_withdrawal: frozenset[str]  # parties whose withdrawn consent takes a case off


class MeetingUnitOfWork(PostgresUnitOfWork):
    def __init__(
        self, conn: Conn, deps: Dependencies, *, message: Message | None = None, correlation_id: str | None = None
    ) -> None:
        super().__init__(conn, "meeting", message=message, correlation_id=correlation_id)
        self.teams = store.Teams(conn)
        self.skip_dates = store.SkipDates(conn)
        self.meetings = store.Meetings(conn)
        self.cases = store.Cases(conn)
        self.agendas = store.Agendas(conn)
        self.consents = Consents(conn)
        self.consultations = store.Consultations(conn)
        self.clock, self.horizon_weeks = deps.clock, deps.horizon_weeks
        self.postpone_on_withdrawal = deps.postpone_on_withdrawal


async def announce(uow: UnitOfWork, events: Iterable[Contract]) -> None:
    """Emit a decision's events, each keyed by its case, meeting or team (``ordering_key``)."""
    for event in events:
        await uow.emit(event, ordering_key=ordering_key(event))
