"""The broker topology, declared by code at start-up from these constants, idempotently.

Names are prefixed with the namespace (``TRISAM_NAMESPACE``) so that test runs and a running
system never share a queue. Per namespace:

- ``<ns>.events``  topic exchange for domain events; routing key = event type (``CaseReferred``),
  or type.qualifier where consumers select by it (``FollowUpDue.AF``).
- ``<ns>.intake``  topic exchange for agency commands; routing key ``<PARTY>.<Command>``.
- ``<ns>.dlx``     direct exchange for dead letters; routing key = consuming service.
- ``<ns>.<service>``       one durable quorum queue per consuming service, with a delivery limit
  and dead-lettering (at-least-once) to
- ``<ns>.<service>.dead``  its dead-letter queue.
"""

from __future__ import annotations

from dataclasses import dataclass

from faststream.rabbit import ExchangeType, QueueType, RabbitExchange, RabbitQueue

EVENTS = "events"
INTAKE = "intake"
DEAD_LETTERS = "dlx"


@dataclass(frozen=True)
class Binding:
    exchange: str  # EVENTS or INTAKE
    routing_key: str


# What each consuming service receives. The walking skeleton; the service issues extend it.
SUBSCRIPTIONS: dict[str, tuple[Binding, ...]] = {
    "referral": (Binding(INTAKE, "*.SubmitReferral"),),
    "meeting": (Binding(EVENTS, "CaseReferred"),),
    "followup": (Binding(EVENTS, "CaseReferred"),),
    "metrics": (Binding(EVENTS, "CaseReferred"),),
}


@dataclass(frozen=True)
class Topology:
    namespace: str
    delivery_limit: int = 10

    def exchange_name(self, kind: str) -> str:
        return f"{self.namespace}.{kind}"

    def exchange(self, kind: str) -> RabbitExchange:
        kind_type = ExchangeType.DIRECT if kind == DEAD_LETTERS else ExchangeType.TOPIC
        return RabbitExchange(self.exchange_name(kind), type=kind_type, durable=True)

    def queue_name(self, service: str) -> str:
        return f"{self.namespace}.{service}"

    def dead_letter_queue_name(self, service: str) -> str:
        return f"{self.namespace}.{service}.dead"

    def queue(self, service: str) -> RabbitQueue:
        return RabbitQueue(
            self.queue_name(service),
            queue_type=QueueType.QUORUM,
            durable=True,
            arguments={
                "x-delivery-limit": self.delivery_limit,
                "x-dead-letter-exchange": self.exchange_name(DEAD_LETTERS),
                "x-dead-letter-routing-key": service,
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            },
        )

    def dead_letter_queue(self, service: str) -> RabbitQueue:
        return RabbitQueue(
            self.dead_letter_queue_name(service), queue_type=QueueType.QUORUM, durable=True
        )

    def all_queue_names(self) -> list[str]:
        names = []
        for service in SUBSCRIPTIONS:
            names += [self.queue_name(service), self.dead_letter_queue_name(service)]
        return names

    def all_exchange_names(self) -> list[str]:
        return [self.exchange_name(kind) for kind in (EVENTS, INTAKE, DEAD_LETTERS)]


async def declare(broker, topology: Topology, service: str) -> None:
    """Declare exchanges, the service's queue, its dead-letter queue and its bindings."""
    exchanges = {kind: await broker.declare_exchange(topology.exchange(kind))
                 for kind in (EVENTS, INTAKE, DEAD_LETTERS)}
    bindings = SUBSCRIPTIONS.get(service, ())
    if not bindings:
        return
    dead = await broker.declare_queue(topology.dead_letter_queue(service))
    await dead.bind(exchanges[DEAD_LETTERS], routing_key=service)
    queue = await broker.declare_queue(topology.queue(service))
    for binding in bindings:
        await queue.bind(exchanges[binding.exchange], routing_key=binding.routing_key)
