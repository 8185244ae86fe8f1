"""The agencies' broker users for a test run: real RabbitMQ users, created per run.

Each has the production permissions (tools/broker_users.py), for every namespace of this
run: publish only to ``<ns>.intake``, read only ``<ns>.agency.<PARTY>``. Created with rabbitmqctl
(local broker) or inside the test container; removed at the end of the run.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import dataclass
from urllib.parse import urlparse, urlunparse

import aio_pika

from shared.contracts.vocabulary import Party
from tools import broker_users


@dataclass(frozen=True)
class Agency:
    party: Party
    user: str
    password: str
    amqp_url: str  # logs in as this agency

    async def publish(
        self, exchange: str, routing_key: str, body: bytes, *, user_id: str | None = "self", **props
    ) -> None:
        """Publish as the agency's system would: persistent, confirmed, with its user_id."""
        await self.publish_many(exchange, [(routing_key, body)], user_id=user_id, **props)

    async def publish_many(
        self, exchange: str, messages: list[tuple[str, bytes]], *, user_id: str | None = "self", **props
    ) -> None:
        """(routing key, body) pairs, one after another on one channel, without waiting for the
        broker between them (confirms are awaited together): as fast as an agency can send."""
        conn = await _connect(self.amqp_url)
        try:
            channel = await conn.channel(publisher_confirms=True, on_return_raises=True)
            target = await channel.get_exchange(exchange, ensure=False)
            confirms = [
                target.publish(
                    aio_pika.Message(
                        body,
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        content_type="application/json",
                        user_id=self.user if user_id == "self" else user_id,
                        **props,
                    ),
                    routing_key=routing_key,
                    mandatory=True,
                )
                for routing_key, body in messages
            ]
            await asyncio.gather(*confirms)
        finally:
            await conn.close()


def _with_credentials(url: str, user: str, password: str) -> str:
    parsed = urlparse(url)
    host = parsed.netloc.rsplit("@", 1)[-1]
    return urlunparse(parsed._replace(netloc=f"{user}:{password}@{host}"))


def rabbitmqctl_runner(infra):
    """Run rabbitmqctl where the broker is: in its container, or on this machine."""
    if infra.containers:
        rabbit = infra.containers[0]

        def run(args):
            code, output = rabbit.exec(["rabbitmqctl", "-q", *args])
            if code != 0:
                raise RuntimeError(f"rabbitmqctl {args[0]} failed: {output!r}")
            return output.decode()

        return run
    if infra.broker_is_local() and broker_users.rabbitmqctl_available():
        return broker_users._local_rabbitmqctl
    return None


async def create_agencies(infra, run_prefix: str, *, run=None, url_for=None) -> dict[Party, Agency]:
    """``run``: how to run rabbitmqctl on the broker (default: ``rabbitmqctl_runner``; users are
    cluster-wide, so on a cluster any node's rabbitmqctl does); ``url_for(user, password)``: how
    an agency logs in (default: the infra's URL with the agency's user and password)."""
    run = run or rabbitmqctl_runner(infra)
    if run is None:
        raise RuntimeError(
            "the tests create one RabbitMQ user per agency and need rabbitmqctl for that: run "
            "them on the broker's machine, or let them start their own broker (Docker)"
        )
    namespaces = f"{run_prefix}_[0-9]+"
    agencies, users = {}, []
    for party in Party:
        name, password = f"{run_prefix}-{party.value.lower()}", secrets.token_hex(12)
        users.append(broker_users.agency_user(name, password, party, namespaces))
        url = url_for(name, password) if url_for else _with_credentials(infra.amqp_url, name, password)
        agencies[party] = Agency(party, name, password, url)
    vhost = (urlparse(infra.amqp_url).path.lstrip("/") if infra else "") or "/"
    await asyncio.to_thread(broker_users.apply_with_rabbitmqctl, users, vhost, run)
    return agencies


async def allow_only_own_routing_keys(infra, agencies: dict[Party, Agency], intake_exchange: str) -> None:
    """Topic permissions on one namespace's intake exchange (as in production)."""
    run = rabbitmqctl_runner(infra)
    vhost = urlparse(infra.amqp_url).path.lstrip("/") or "/"
    for party, agency in agencies.items():
        await asyncio.to_thread(
            run, ["set_topic_permissions", "-p", vhost, agency.user, intake_exchange, rf"^{party.value}\.", "^$"]
        )


async def delete_agencies(infra, agencies: dict[Party, Agency], run=None) -> None:
    run = run or rabbitmqctl_runner(infra)
    await asyncio.to_thread(broker_users.delete_with_rabbitmqctl, [a.user for a in agencies.values()], run)


async def delete_run_users(infra, prefix: str) -> None:
    run = rabbitmqctl_runner(infra)
    if run is not None:
        await asyncio.to_thread(
            broker_users.delete_with_rabbitmqctl, [f"{prefix}-{p.value.lower()}" for p in Party], run
        )


def envelope_bytes(envelope: dict) -> bytes:
    return json.dumps(envelope).encode()


async def take_replies(agency: Agency, namespace: str, count: int, timeout: float = 20.0) -> list[dict]:
    """Read (and ack) `count` messages from the agency's own queue, as the agency."""
    conn = await aio_pika.connect(agency.amqp_url)
    replies: list[dict] = []
    try:
        channel = await conn.channel()
        queue = await channel.get_queue(f"{namespace}.agency.{agency.party.value}", ensure=False)
        deadline = asyncio.get_running_loop().time() + timeout
        while len(replies) < count:
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                if asyncio.get_running_loop().time() > deadline:
                    raise AssertionError(f"{agency.party.value} got {len(replies)} of {count} replies")
                await asyncio.sleep(0.1)
                continue
            await message.ack()
            replies.append(json.loads(message.body))
    finally:
        await conn.close()
    return replies


async def _connect(amqp_url: str) -> aio_pika.abc.AbstractConnection:
    """A connection of its own, within 10 s, tried again once: a handshake that never finishes
    (seen once in CI, the test then hung until its timeout) fails fast and is retried."""
    try:
        return await aio_pika.connect(amqp_url, timeout=10)
    except (TimeoutError, ConnectionError, aio_pika.exceptions.AMQPConnectionError):
        await asyncio.sleep(1)
        return await aio_pika.connect(amqp_url, timeout=10)
