"""The broker topology, declared by code at start-up from these constants, idempotently.

Names are prefixed with the namespace (``TRISAM_NAMESPACE``) so that test runs and a running
system never share a queue. Per namespace:

- ``<ns>.events``  topic exchange for domain events; routing key = event type (``CaseReferred``),
  or type.qualifier where consumers select by it.
- ``<ns>.intake``  topic exchange for agency commands; routing key ``<PARTY>.<Command>``.
  Each agency's broker user may publish here only with its own ``<PARTY>.`` prefix.
- ``<ns>.agency``  topic exchange for what goes back to one agency (replies, reminders);
  routing key ``<PARTY>.<Event>``, bound to that agency's own queue ``<ns>.agency.<PARTY>``,
  which only that agency's broker user may read.
- ``<ns>.dlx``     direct exchange for dead letters; routing key = consuming service.
- ``<ns>.aggregates`` topic exchange for the public editions of the figures (``FiguresPublished``),
  routing key ``FiguresPublished.<municipality or COUNTY>``; queue ``<ns>.aggregates.dashboard``
  keeps the latest 10,000 for external dashboards.
- ``<ns>.<service>``       one durable quorum queue per consuming service, with a delivery limit
  and dead-lettering (at-least-once) to
- ``<ns>.<service>.dead``  its dead-letter queue.
- With ``TRISAM_PARTITIONS`` P > 1 (for several instances of a service): the service's events
  go instead through ``<ns>.<service>.partitions``, a consistent-hash exchange (RabbitMQ's
  ``rabbitmq_consistent_hash_exchange`` plugin) hashing the case (the header
  ``x-trisam-ordering-key``), to P queues ``<ns>.<service>.p<i>``, each with a single active
  consumer: all of a case's events go to one queue and are taken by one instance at a time;
  another instance takes over a queue when its consumer goes. ``<ns>.<service>`` then receives
  only operators' replays of dead letters. The number of partitions of a namespace is not
  changed in place: drain the queues first.
- ``<ns>.<service>.intake.<PARTY>``  for a service that takes agency commands (referral,
  followup): one queue per agency (bound ``<PARTY>.<Command>``). Its length is capped
  (``x-max-length``, ``x-max-length-bytes``) with ``reject-publish``: an agency that floods the
  platform has its own publishes refused (a negative publisher confirm) while the other
  agencies go on.
- ``<ns>.<service>.unredacted``  where the broker itself dead-letters an agency command (over
  its delivery limit); it may hold identity, so the service moves each message at once,
  redacted, to its dead-letter queue, and a TTL bounds how long one can stay here.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue
from faststream.rabbit import ExchangeType, QueueType, RabbitExchange, RabbitQueue
from faststream.rabbit.schemas.queue import QuorumQueueArgs

# the exchange kinds, re-exported: importers of the topology take them from here
from shared.contracts.envelope import AGENCY as AGENCY
from shared.contracts.envelope import AGGREGATES as AGGREGATES
from shared.contracts.envelope import DEAD_LETTERS as DEAD_LETTERS
from shared.contracts.envelope import EVENTS as EVENTS
from shared.contracts.envelope import INTAKE as INTAKE
from shared.contracts.vocabulary import Party
from shared.platform.handlers import Binding

EXCHANGES = (EVENTS, INTAKE, AGENCY, DEAD_LETTERS, AGGREGATES)
# Set by the outbox relay: the ordering key (the case) of an event; partitions hash it.
ORDERING_HEADER = "x-trisam-ordering-key"
CONSISTENT_HASH = "x-consistent-hash"
# Public editions wait here for external dashboards (or bind your own queue to the aggregates
# exchange). At most this many are kept.
AGGREGATES_KEPT = 10_000


# What each consuming service receives: derived from each service's handler table by
# ``make docs`` (tools/catalogue.py), checked by a test and by each service at start. Every
# service declares every service's queue (see _declare), so it needs them all.
SUBSCRIPTIONS_FILE = Path(__file__).with_name("subscriptions.json")


def _subscriptions() -> dict[str, tuple[Binding, ...]]:
    data = json.loads(SUBSCRIPTIONS_FILE.read_text(encoding="utf-8"))
    return {service: tuple(Binding(exchange, key) for exchange, key in bindings) for service, bindings in data.items()}


SUBSCRIPTIONS: dict[str, tuple[Binding, ...]] = _subscriptions()


def topic_matches(pattern: str, routing_key: str) -> bool:
    """Whether a topic binding (``*`` one word, ``#`` zero or more) takes this routing key, as
    RabbitMQ's topic exchange decides."""

    def match(p: list[str], k: list[str]) -> bool:
        if not p:
            return not k
        if p[0] == "#":
            return any(match(p[1:], k[i:]) for i in range(len(k) + 1))
        return bool(k) and (p[0] == "*" or p[0] == k[0]) and match(p[1:], k[1:])

    return match(pattern.split("."), routing_key.split("."))


@functools.cache
def receivers(exchange_kind: str, routing_key: str) -> tuple[str, ...]:
    """The services whose queue receives a message published with this routing key (from the
    subscriptions every service binds at start): the lines a producer numbers it in. Worked out
    once per routing key (the subscriptions do not change while a process runs)."""
    return tuple(
        service
        for service, bindings in SUBSCRIPTIONS.items()
        if any(b.exchange == exchange_kind and topic_matches(b.routing_key, routing_key) for b in bindings)
    )


@dataclass(frozen=True)
class Topology:
    namespace: str
    delivery_limit: int = 10
    # Per agency: at most this many commands (and bytes) wait; more are refused at publish.
    # Changing them for an existing namespace: use a RabbitMQ policy (the smaller value wins),
    # or drain and delete the queues (declaring other arguments is refused).
    intake_max_messages: int = 10_000
    intake_max_bytes: int = 256 * 1024 * 1024
    # How long an agency command dead-lettered by the broker may wait to be redacted
    unredacted_ttl_ms: int = 24 * 3600 * 1000
    # Partition queues per consuming service (1: the one queue ``<ns>.<service>``)
    partitions: int = 1

    @classmethod
    def of(cls, settings: Any) -> Topology:
        """The topology a service's settings declare."""
        return cls(
            settings.namespace,
            settings.delivery_limit,
            settings.intake_max_messages,
            settings.intake_max_bytes,
            settings.unredacted_ttl_hours * 3600 * 1000,
            settings.partitions,
        )

    def exchange_name(self, kind: str) -> str:
        return f"{self.namespace}.{kind}"

    def exchange(self, kind: str) -> RabbitExchange:
        kind_type = ExchangeType.DIRECT if kind == DEAD_LETTERS else ExchangeType.TOPIC
        return RabbitExchange(self.exchange_name(kind), type=kind_type, durable=True)

    def queue_name(self, service: str) -> str:
        return f"{self.namespace}.{service}"

    def partition_exchange_name(self, service: str) -> str:
        return f"{self.namespace}.{service}.partitions"

    def partition_queue_name(self, service: str, partition: int) -> str:
        return f"{self.namespace}.{service}.p{partition}"

    def partition_queue(self, service: str, partition: int) -> RabbitQueue:
        """One partition of a service's events: one instance consumes it at a time."""
        return RabbitQueue(
            self.partition_queue_name(service, partition),
            queue_type=QueueType.QUORUM,
            durable=True,
            arguments=self._dead_lettered_to(service) | {"x-single-active-consumer": True},
        )

    def partitioned(self, service: str) -> bool:
        return self.partitions > 1 and any(b.exchange == EVENTS for b in SUBSCRIPTIONS.get(service, ()))

    def event_queues(self, service: str) -> list[RabbitQueue]:
        """The queues a service takes its events from (and operators' replays)."""
        partitions = range(self.partitions) if self.partitioned(service) else range(0)
        return [self.queue(service)] + [self.partition_queue(service, i) for i in partitions]

    def dead_letter_queue_name(self, service: str) -> str:
        return f"{self.namespace}.{service}.dead"

    def agency_queue_name(self, party: Party | str) -> str:
        return f"{self.namespace}.agency.{Party(party).value}"

    def queue(self, service: str) -> RabbitQueue:
        return RabbitQueue(
            self.queue_name(service),
            queue_type=QueueType.QUORUM,
            durable=True,
            arguments=self._dead_lettered_to(service),
        )

    def _dead_lettered_to(self, routing_key: str) -> QuorumQueueArgs:
        return {
            "x-delivery-limit": self.delivery_limit,
            "x-dead-letter-exchange": self.exchange_name(DEAD_LETTERS),
            "x-dead-letter-routing-key": routing_key,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }

    def intake_queue_name(self, service: str, party: Party | str) -> str:
        return f"{self.namespace}.{service}.{INTAKE}.{Party(party).value}"

    def intake_queue(self, service: str, party: Party | str) -> RabbitQueue:
        """An agency's commands to a service: capped, and dead-lettered by the broker to be
        redacted."""
        return RabbitQueue(
            self.intake_queue_name(service, party),
            queue_type=QueueType.QUORUM,
            durable=True,
            arguments=self._dead_lettered_to(unredacted_key(service))
            | {"x-max-length": self.intake_max_messages, "x-max-length-bytes": self.intake_max_bytes},
        )

    def unredacted_queue_name(self, service: str) -> str:
        return f"{self.namespace}.{unredacted_key(service)}"

    def unredacted_queue(self, service: str) -> RabbitQueue:
        return RabbitQueue(
            self.unredacted_queue_name(service),
            queue_type=QueueType.QUORUM,
            durable=True,
            arguments={"x-message-ttl": self.unredacted_ttl_ms},
        )

    def dead_letter_queue(self, service: str) -> RabbitQueue:
        return RabbitQueue(self.dead_letter_queue_name(service), queue_type=QueueType.QUORUM, durable=True)

    def aggregates_queue_name(self) -> str:
        return f"{self.namespace}.aggregates.dashboard"

    def aggregates_queue(self) -> RabbitQueue:
        return RabbitQueue(
            self.aggregates_queue_name(),
            queue_type=QueueType.QUORUM,
            durable=True,
            arguments={"x-max-length": AGGREGATES_KEPT},
        )  # the oldest dropped

    def agency_queue(self, party: Party | str) -> RabbitQueue:
        return RabbitQueue(self.agency_queue_name(party), queue_type=QueueType.QUORUM, durable=True)

    def all_queue_names(self) -> list[str]:
        names = []
        for service in SUBSCRIPTIONS:
            names += [q.name for q in self.event_queues(service)] + [self.dead_letter_queue_name(service)]
            if consumes_intake(service):
                names += [self.intake_queue_name(service, p) for p in Party] + [self.unredacted_queue_name(service)]
        return names + [self.agency_queue_name(p) for p in Party] + [self.aggregates_queue_name()]

    def all_exchange_names(self) -> list[str]:
        partitions = [self.partition_exchange_name(s) for s in SUBSCRIPTIONS if self.partitioned(s)]
        return [self.exchange_name(kind) for kind in EXCHANGES] + partitions


class TopologyConflict(RuntimeError):
    """A queue or exchange exists with other settings than the code declares."""


async def declare(amqp_url: str, topology: Topology) -> None:
    """Declare the whole topology on a connection of its own, closed afterwards: the broker's
    long-lived connection then restores only its own subscriber after a reconnect (restoring
    dozens of quorum queues there made a cut during the restore leave the channel unusable)."""
    connection = await aio_pika.connect(amqp_url, timeout=10)
    try:
        await _declare(await connection.channel(), topology)
    except Exception as exc:
        if "PRECONDITION_FAILED" in str(exc):
            raise TopologyConflict(
                f"the broker has a queue or exchange of namespace {topology.namespace!r} with "
                f"other arguments than this version declares ({str(exc)[:300]}). Drain and "
                f"delete it (rabbitmqctl delete_queue NAME) or use another TRISAM_NAMESPACE"
            ) from None
        if CONSISTENT_HASH in str(exc):
            raise TopologyConflict(
                f"TRISAM_PARTITIONS={topology.partitions} needs RabbitMQ's consistent-hash exchange "
                f"({str(exc)[:200]}): rabbitmq-plugins enable rabbitmq_consistent_hash_exchange"
            ) from None
        raise
    finally:
        await connection.close()


async def _declare(channel: AbstractChannel, topology: Topology) -> None:
    """Declare the whole topology: every exchange, every service's queue, dead-letter queue and
    bindings, every agency's queue, the aggregates queue. Every service does this at start-up,
    so that no event is published before the queue of a consumer that has not started yet
    exists (it would be confirmed as routed to the others, and never reach that consumer)."""
    exchanges: dict[str, AbstractExchange] = {}
    for kind in EXCHANGES:
        spec = topology.exchange(kind)
        exchanges[kind] = await channel.declare_exchange(spec.name, type=spec.type.value, durable=True)

    async def queue(spec: RabbitQueue) -> AbstractQueue:
        return await channel.declare_queue(spec.name, durable=True, arguments=dict(spec.arguments))

    for party in Party:
        agency_queue = await queue(topology.agency_queue(party))
        await agency_queue.bind(exchanges[AGENCY], routing_key=f"{party.value}.#")
    for service, bindings in SUBSCRIPTIONS.items():
        dead = await queue(topology.dead_letter_queue(service))
        await dead.bind(exchanges[DEAD_LETTERS], routing_key=service)
        consuming = await queue(topology.queue(service))
        events_to: AbstractQueue | AbstractExchange = consuming
        if topology.partitioned(service):
            events_to = await channel.declare_exchange(
                topology.partition_exchange_name(service),
                type=CONSISTENT_HASH,
                durable=True,
                arguments={"hash-header": ORDERING_HEADER},
            )
            for i in range(topology.partitions):
                await (await queue(topology.partition_queue(service, i))).bind(events_to, routing_key="1")  # weight
        if consumes_intake(service):
            intake_queues = {party: await queue(topology.intake_queue(service, party)) for party in Party}
            unredacted = await queue(topology.unredacted_queue(service))
            await unredacted.bind(exchanges[DEAD_LETTERS], routing_key=unredacted_key(service))
        for binding in bindings:
            if binding.exchange == INTAKE:
                # an agency's commands wait in its own queue (an older version bound them here)
                await consuming.unbind(exchanges[INTAKE], routing_key=binding.routing_key)
                for party, intake in intake_queues.items():
                    await intake.bind(exchanges[INTAKE], routing_key=for_party(binding.routing_key, party))
            else:
                if events_to is not consuming:  # (partitioned: the service's queue only for replays)
                    await consuming.unbind(exchanges[binding.exchange], routing_key=binding.routing_key)
                await events_to.bind(exchanges[binding.exchange], routing_key=binding.routing_key)
    aggregates = await queue(topology.aggregates_queue())
    await aggregates.bind(exchanges[AGGREGATES], routing_key="#")


def for_party(routing_key: str, party: Party) -> str:
    """An intake binding (``*.SubmitReferral``) for one agency's queue (``AF.SubmitReferral``)."""
    return f"{party.value}.{routing_key.split('.', 1)[1]}"


def unredacted_key(service: str) -> str:
    """The dead-letter exchange's routing key for a service's agency commands that the broker
    dead-lettered itself (the service's own dead letters have the key ``<service>``)."""
    return f"{service}.unredacted"


def consumes_intake(service: str) -> bool:
    return any(binding.exchange == INTAKE for binding in SUBSCRIPTIONS.get(service, ()))


async def delete(amqp_url: str, queues: list[str], exchanges: list[str]) -> None:
    """Delete what exists of these queues and exchanges, messages and all (a fresh channel for
    each: a missing one closes the channel). For a namespace being thrown away."""
    connection = await aio_pika.connect(amqp_url, timeout=10)
    try:
        for action, names in (("queue_delete", queues), ("exchange_delete", exchanges)):
            for name in names:
                channel = await connection.channel()
                try:
                    await getattr(channel, action)(name)
                except Exception:
                    pass
    finally:
        await connection.close()


async def messages_waiting(amqp_url: str, queue_name: str) -> int:
    """How many messages wait in a queue (ready, not yet delivered), on a connection of its own."""
    connection = await aio_pika.connect(amqp_url, timeout=10)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue_name, passive=True)
        return declared.declaration_result.message_count or 0
    finally:
        await connection.close()
