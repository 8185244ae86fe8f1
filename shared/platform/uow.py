"""The unit of work: everything one transaction of a service changes, committed together.

A use case gets a unit of work, loads its facts through the service's repositories, asks a pure
rule in ``domain.py`` what to do, and applies the decision through the same repositories and
``emit``. The unit of work holds the transaction's connection, the inbox row of the message
being handled (``claim``) and the outbox (``emit``; with ``defer_outbox``, written in one statement
by ``flush`` just before the commit): the state change, the inbox row and the events to publish commit together,
or none of them does.

Each service subclasses ``UnitOfWork`` with its typed repositories (``services/<name>/uow.py``);
``FakeUnitOfWork`` is the in-memory stand-in for unit tests of the use cases (no PostgreSQL, no
RabbitMQ): it keeps the emitted events in ``events``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TypeVar

from shared.contracts import Contract, Envelope, envelope_for
from shared.platform import outbox, tracing
from shared.platform.db import Conn
from shared.platform.logging import bind_contextvars

C = TypeVar("C", bound=Contract)


@dataclass(frozen=True)
class Message:
    """What a handler may need of the message it handles, besides the decoded payload."""

    envelope: Envelope
    routing_key: str = ""
    user_id: str | None = None  # the broker user who published it (an agency's command)
    inbox_id: uuid.UUID | None = None  # the inbox key (see consumer._inbox_id)


class UnitOfWork:
    """The outbox side of a unit of work; subclasses add where the events go and repositories."""

    def __init__(self, producer: str, *, message: Message | None = None, correlation_id: str | None = None) -> None:
        self.producer = producer
        self.message = message
        self.correlation_id = correlation_id or (message.envelope.correlation_id if message else None)
        self.causation_id = str(message.envelope.event_id) if message else None
        self.emitted: list[Envelope] = []

    async def emit(self, event: Contract, *, ordering_key: str) -> Envelope:
        """Publish ``event`` when (and only if) this unit of work commits."""
        envelope = envelope_for(
            event, producer=self.producer, correlation_id=self.correlation_id, causation_id=self.causation_id
        )
        await self._to_outbox(envelope, event, ordering_key)
        self.emitted.append(envelope)
        if case_ref := getattr(event, "case_ref", None):
            bind_contextvars(case_ref=case_ref)
        return envelope

    async def claim(self, consumer: str) -> bool:
        """Record the message in the inbox; False if it was handled before (then do nothing)."""
        raise NotImplementedError

    async def _to_outbox(self, envelope: Envelope, event: Contract, ordering_key: str) -> None:
        raise NotImplementedError


class PostgresUnitOfWork(UnitOfWork):
    """A unit of work on one open transaction of the service's database."""

    def __init__(
        self, conn: Conn, producer: str, *, message: Message | None = None, correlation_id: str | None = None
    ) -> None:
        super().__init__(producer, message=message, correlation_id=correlation_id)
        self.conn = conn
        # None: each emitted event goes to the outbox at once; a list: they wait there for flush()
        self.pending: list[outbox.Outgoing] | None = None

    def defer_outbox(self) -> None:
        """Keep the emitted events until ``flush``, which writes them in one statement: for the
        owner of the transaction, which calls ``flush`` just before its commit (the consumer,
        ``Runtime.unit_of_work``)."""
        self.pending = []

    async def claim(self, consumer: str) -> bool:
        if self.message is None:
            raise RuntimeError("no message to claim in the inbox")
        return (await claim_all(self.conn, consumer, [self.message]))[0]

    async def _to_outbox(self, envelope: Envelope, event: Contract, ordering_key: str) -> None:
        if self.pending is None:
            await outbox.add_envelope(self.conn, envelope, event, ordering_key=ordering_key)
        else:  # the trace context of now (the handler's span, the HTTP request's), not of the flush
            self.pending.append(outbox.Outgoing(envelope, event, ordering_key, tracing.headers_of() or None))

    async def flush(self) -> None:
        """Write the events kept by ``defer_outbox`` to the outbox, in one statement."""
        if self.pending:
            pending, self.pending = self.pending, []
            await outbox.add_many(self.conn, pending)


async def claim_all(conn: Conn, consumer: str, messages: list[Message]) -> list[bool]:
    """Record the messages in the inbox, in one statement; for each, whether it is new (False:
    handled before, or an earlier message of this list with the same inbox key)."""
    if any(message.inbox_id is None for message in messages):
        raise RuntimeError("a message without an inbox key cannot be claimed")
    if not messages:
        return []
    rows = await conn.fetch(
        """INSERT INTO inbox (consumer, event_id, event_type)
           SELECT $1, e.event_id, e.event_type FROM unnest($2::uuid[], $3::text[]) AS e(event_id, event_type)
           ON CONFLICT DO NOTHING RETURNING event_id""",
        consumer,
        [message.inbox_id for message in messages],
        [message.envelope.event_type for message in messages],
    )
    new = {row["event_id"] for row in rows}
    fresh = []
    for message in messages:
        fresh.append(message.inbox_id in new)
        new.discard(message.inbox_id)  # the same message twice in one list: only the first is new
    return fresh


async def unclaim_all(conn: Conn, consumer: str, messages: list[Message]) -> None:
    """Give back inbox rows claimed in this transaction (messages left out of it after all)."""
    await conn.execute(
        "DELETE FROM inbox WHERE consumer = $1 AND event_id = ANY($2::uuid[])",
        consumer,
        [message.inbox_id for message in messages],
    )


class FakeUnitOfWork(UnitOfWork):
    """In memory: the events emitted (``events``, with their ordering keys), the inbox
    (``seen``), and whether it was committed. For unit tests of use cases."""

    def __init__(self, producer: str = "test", *, message: Message | None = None) -> None:
        super().__init__(producer, message=message)
        self.events: list[Contract] = []
        self.ordering_keys: list[str] = []
        self.seen: set[tuple[str, uuid.UUID]] = set()

    async def claim(self, consumer: str) -> bool:
        assert self.message is not None and self.message.inbox_id is not None
        key = (consumer, self.message.inbox_id)
        if key in self.seen:
            return False
        self.seen.add(key)
        return True

    async def _to_outbox(self, envelope: Envelope, event: Contract, ordering_key: str) -> None:
        self.events.append(event)
        self.ordering_keys.append(ordering_key)

    def of_type(self, contract_cls: type[C]) -> list[C]:
        """The emitted events of one contract class."""
        return [e for e in self.events if isinstance(e, contract_cls)]
