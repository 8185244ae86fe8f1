"""A service's message handlers, keyed by contract class: one table per service.

    handlers = HandlerTable("meeting")

    @handlers.on(CaseReferred)
    async def on_case_referred(event: CaseReferred, uow: MeetingUnitOfWork) -> None:
        ...

The consumer dispatches a decoded message by its contract class; the queue's bindings, the
AsyncAPI document and the list of events each service consumes (``subscriptions.json``,
written by ``make docs``) are derived from the table, so there is no second list to keep.
A command whose payload breaks its contract is dead-lettered, unless its handler is registered
with ``answers_invalid=True``: then it gets the ``InvalidPayload`` and answers the agency.

A handler may instead take many deliveries at once, set-based (``on_batch``): the consumer gives
it every new delivery of its contracts in a transaction (a group commit's batch; one when a
delivery is applied alone) with one unit of work, so that it can write a kind of row for all of
them in one statement::

    @handlers.on_batch(CaseReferred, MeetingScheduled)
    async def project(received: list[Received], uow: MetricsUnitOfWork) -> None:
        ...
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from shared.contracts import EVENTS, INTAKE, Command, Contract

Handler = Callable[[Any, Any], Awaitable[None]]


@dataclass(frozen=True)
class Received:
    """One delivery as a batch handler gets it: the decoded event and its message (envelope,
    inbox id; ``shared.platform.uow.Message``)."""

    event: Any
    message: Any


BatchHandler = Callable[[list[Received], Any], Awaitable[None]]


class OneOfBatch:
    """The handler of one delivery of a batch handler's contracts: the batch handler applied to
    that delivery alone (the consumer groups the deliveries of one ``batch`` instead)."""

    def __init__(self, batch: BatchHandler) -> None:
        self.batch = batch

    async def __call__(self, event: Any, uow: Any) -> None:
        await self.batch([Received(event, uow.message)], uow)


@dataclass(frozen=True)
class Binding:
    exchange: str  # EVENTS or INTAKE
    routing_key: str


def binding_of(contract_cls: type[Contract]) -> Binding:
    """Where a consumer of this contract binds its queue: an agency command under any party's
    prefix on the intake exchange, an event by its name on the events exchange."""
    if issubclass(contract_cls, Command):
        return Binding(INTAKE, f"*.{contract_cls.name}")
    if contract_cls.exchange != EVENTS:
        raise ValueError(f"{contract_cls.name} is not consumed by services (exchange {contract_cls.exchange})")
    return Binding(EVENTS, contract_cls.name)


class HandlerTable:
    def __init__(self, service: str) -> None:
        self.service = service
        self._handlers: dict[type[Contract], Handler] = {}
        self._answers_invalid: set[str] = set()

    def on(self, contract_cls: type[Contract], *, answers_invalid: bool = False) -> Callable[[Handler], Handler]:
        """Register the decorated function as the handler of ``contract_cls``."""

        def register(handler: Handler) -> Handler:
            if contract_cls in self._handlers:
                raise RuntimeError(f"{self.service}: {contract_cls.name} has two handlers")
            self._handlers[contract_cls] = handler
            if answers_invalid:
                self._answers_invalid.add(contract_cls.name)
            return handler

        return register

    def on_batch(self, *contract_classes: type[Contract]) -> Callable[[BatchHandler], BatchHandler]:
        """Register the decorated function as the set-based handler of ``contract_classes``:
        it gets every new delivery of them in a transaction at once, in delivery order."""

        def register(batch: BatchHandler) -> BatchHandler:
            one = OneOfBatch(batch)
            for contract_cls in contract_classes:
                self.on(contract_cls)(one)
            return batch

        return register

    def replaced(self, contract_cls: type[Contract], handler: Handler) -> HandlerTable:
        """A copy with another handler for one contract (for tests that inject a fault)."""
        copy = HandlerTable(self.service)
        copy._handlers = {**self._handlers, contract_cls: handler}
        copy._answers_invalid = set(self._answers_invalid)
        return copy

    def get(self, contract_cls: type[Contract]) -> Handler:
        return self._handlers[contract_cls]

    def handler_for(self, payload: Contract) -> Handler | None:
        return self._handlers.get(type(payload))

    def handler_for_invalid(self, event_type: str) -> Handler | None:
        """The handler that answers an invalid payload of this type itself, if any."""
        if event_type not in self._answers_invalid:
            return None
        return next(h for c, h in self._handlers.items() if c.name == event_type)

    @property
    def contracts(self) -> list[type[Contract]]:
        return sorted(self._handlers, key=lambda c: c.name)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.contracts]

    def bindings(self) -> tuple[Binding, ...]:
        return tuple(binding_of(c) for c in self.contracts)

    def __bool__(self) -> bool:
        return bool(self._handlers)

    def __len__(self) -> int:
        return len(self._handlers)
