"""Plain aio-pika helpers for tests: the agency side and a peek into queues.

Written against aio-pika directly, not the project's own publisher, so that the tests check
what is really on the broker.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime

import aio_pika


def envelope(
    event_type: str, payload: dict, *, version: int = 1, producer: str = "test", event_id: str | None = None
) -> dict:
    return {
        "event_id": event_id or str(uuid.uuid4()),
        "event_type": event_type,
        "version": version,
        "occurred_at": datetime.now(UTC).isoformat(),
        "producer": producer,
        "correlation_id": str(uuid.uuid4()),
        "payload": payload,
    }


async def publish(
    amqp_url: str, exchange: str, routing_key: str, body: bytes | dict, *, message_id: str | None = None, **props
) -> None:
    if isinstance(body, dict):
        message_id = message_id or body.get("event_id")
        props.setdefault("type", body.get("event_type"))
        body = json.dumps(body).encode()
    conn = await aio_pika.connect(amqp_url)
    try:
        channel = await conn.channel(publisher_confirms=True, on_return_raises=True)
        target = await channel.get_exchange(exchange, ensure=True)
        await target.publish(
            aio_pika.Message(
                body,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                content_type="application/json",
                message_id=message_id,
                **props,
            ),
            routing_key=routing_key,
            mandatory=True,
        )
    finally:
        await conn.close()


async def publish_many(amqp_url: str, exchange: str, messages: list[tuple[str, dict]]) -> None:
    """Publish (routing key, envelope) pairs in order on one confirmed channel."""
    conn = await aio_pika.connect(amqp_url)
    try:
        channel = await conn.channel(publisher_confirms=True, on_return_raises=True)
        target = await channel.get_exchange(exchange, ensure=True)
        for start in range(0, len(messages), 100):
            await asyncio.gather(
                *(
                    target.publish(
                        aio_pika.Message(
                            json.dumps(body).encode(),
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                            content_type="application/json",
                            message_id=body["event_id"],
                            type=body["event_type"],
                        ),
                        routing_key=key,
                        mandatory=True,
                    )
                    for key, body in messages[start : start + 100]
                )
            )
    finally:
        await conn.close()


async def drain(amqp_url: str, queue_name: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Take (and ack) every message now in the queue."""
    conn = await aio_pika.connect(amqp_url)
    taken = []
    try:
        channel = await conn.channel()
        queue = await channel.get_queue(queue_name, ensure=True)
        while (message := await queue.get(no_ack=False, fail=False)) is not None:
            await message.ack()
            taken.append(message)
    finally:
        await conn.close()
    return taken


async def message_count(amqp_url: str, queue_name: str) -> int:
    return (await queue_state(amqp_url, queue_name))["messages"]


async def queue_state(amqp_url: str, queue_name: str) -> dict[str, int]:
    """A queue's ready messages and consumers, as the broker counts them."""
    conn = await aio_pika.connect(amqp_url)
    try:
        channel = await conn.channel()
        declared = (await channel.declare_queue(queue_name, passive=True)).declaration_result
        return {"messages": declared.message_count, "consumers": declared.consumer_count}
    finally:
        await conn.close()


async def eventually(check, *, timeout: float = 20.0, interval: float = 0.1, what: str = ""):
    """Poll an async check until it returns a truthy value; fail with `what` on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or check}: last={last!r}")


async def delete_topology(amqp_url: str, queues: list[str], exchanges: list[str]) -> None:
    from shared.platform.topology import delete

    await delete(amqp_url, queues, exchanges)


class EventTap:
    """Everything published on a namespace's events exchange (and, optionally, its agency
    exchange), as the broker routed it: an exclusive, auto-deleted classic queue bound to '#'."""

    def __init__(self, amqp_url: str, namespace: str, *, agency: bool = False, aggregates: bool = False):
        self.amqp_url, self.namespace = amqp_url, namespace
        self.kinds = ("events",) + (("agency",) if agency else ()) + (("aggregates",) if aggregates else ())
        self.events: list[dict] = []

    async def __aenter__(self) -> EventTap:
        self._conn = await aio_pika.connect(self.amqp_url)
        channel = await self._conn.channel()
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        for kind in self.kinds:
            exchange = await channel.declare_exchange(f"{self.namespace}.{kind}", "topic", durable=True)
            await queue.bind(exchange, "#")

        async def take(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            async with message.process():
                self.events.append(json.loads(message.body))

        await queue.consume(take)
        return self

    async def __aexit__(self, *exc) -> None:
        await self._conn.close()

    def of(self, event_type: str, **where) -> list[dict]:
        """Payloads of the events of a type whose payload fields equal ``where``."""
        return [
            e["payload"]
            for e in self.events
            if e["event_type"] == event_type and all(e["payload"].get(k) == v for k, v in where.items())
        ]

    async def wait_for(self, event_type: str, count: int = 1, *, timeout: float = 20.0, **where) -> list[dict]:
        async def enough():
            found = self.of(event_type, **where)
            return found if len(found) >= count else None

        return await eventually(enough, timeout=timeout, what=f"{count} x {event_type} {where or ''}")
