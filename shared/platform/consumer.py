"""Idempotent, poison-safe consumption of one service's queue.

For every delivery:
1. decode and validate the envelope and payload; a poison message (bad JSON, schema violation,
   unknown type or version, too large) goes to the service's dead-letter queue at once, with
   the reason in its headers, and is acked so the next message is processed;
2. in ONE transaction: insert (consumer, event_id) into the inbox (a duplicate finds it there
   and has no second effect), run the handler, write any outgoing events to the outbox;
3. ack only after that transaction has committed.

Database outages are retried with backoff while the message stays unacknowledged (never
dead-lettered for an outage). An unexpected handler error is retried in place (never requeued
behind the case's next event); after ``max_handler_attempts`` it is dead-lettered with the
error as reason. The queue's
broker-side ``x-delivery-limit`` stays as the last safety net. Never ack on error.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog
from faststream.rabbit import RabbitBroker, RabbitMessage
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from shared.contracts import (
    Command,
    CommandDeadLettered,
    CommandRejected,
    Contract,
    Envelope,
    InvalidPayload,
    PoisonMessage,
    ReferralRejected,
    decode,
    owner_of,
)
from shared.contracts.vocabulary import Party
from shared.platform import outbox, sequences, tracing
from shared.platform.db import Conn
from shared.platform.handlers import Handler, HandlerTable, OneOfBatch, Received
from shared.platform.logging import bound_contextvars
from shared.platform.metrics import ServiceMetrics
from shared.platform.sequences import Place, Turn
from shared.platform.tasks import cancel_all
from shared.platform.topology import DEAD_LETTERS, INTAKE, Topology
from shared.platform.topology import ORDERING_HEADER as ORDERING_HEADER  # (set by the relay; importers take it here)
from shared.platform.uow import Message, PostgresUnitOfWork, claim_all, unclaim_all

log = structlog.get_logger("consumer")

# Failures of the database connection itself: retried with backoff while the message stays
# unacknowledged, never counted as a handler failure. Anything else is the handler's failure.
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,  # terminated backend
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.SerializationError,  # retry of a conflicting transaction
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.ReadOnlySQLTransactionError,  # a standby not yet promoted at failover
    ConnectionError,  # refused, reset, aborted
    asyncio.TimeoutError,  # acquiring a connection timed out
)


def is_outage(exc: BaseException) -> bool:
    if isinstance(exc, OUTAGE_ERRORS):
        return True
    return isinstance(exc, asyncpg.exceptions.InterfaceError) and "closed" in str(exc)


# The longest pause between two in-place attempts of a failing handler
RETRY_CAP_SECONDS = 2.0
# Headers we put on a dead-lettered message
REASON_HEADER = "x-trisam-dead-letter-reason"
DETAIL_HEADER = "x-trisam-dead-letter-detail"
ORIGINAL_EXCHANGE_HEADER = "x-trisam-original-exchange"
ORIGINAL_ROUTING_KEY_HEADER = "x-trisam-original-routing-key"
ORIGINAL_USER_HEADER = "x-trisam-original-user-id"
DEAD_LETTERED_AT_HEADER = "x-trisam-dead-lettered-at"
# ... and on its replay by an operator (shared/platform/dead_letters.py)
REPLAYED_BY_HEADER = "x-trisam-replayed-by"
# The inbox "consumer" under which a service records the agency notices it has written, so that
# a command dead-lettered again (redelivered before its ack) is announced to its agency once
NOTICES_CONSUMER_SUFFIX = ".dead-letter-notices"
_NOTICE_IDS = uuid.UUID("5d1c8a52-3f0e-4c57-9a51-7d0c2b1e9f60")


@dataclass(frozen=True)
class Origin:
    """Where a delivery was published: the exchange, routing key and (broker-checked) user."""

    exchange: str
    routing_key: str
    user_id: str | None


def origin_of(raw: Any) -> Origin:
    """As delivered; but an operator's replay of a dead letter comes straight to the service's
    queue through the default exchange (see ``dead_letters.replay``), and counts as published
    where the dead letter first was, as its headers say. Only a broker user with write
    permission on the default exchange (``amq.default``) can publish so: the operators', never an
    agency's or a service's (tools/broker_users.py gives them none)."""
    headers = raw.headers or {}
    if _replayed(raw):
        user = headers.get(ORIGINAL_USER_HEADER)
        return Origin(
            str(headers.get(ORIGINAL_EXCHANGE_HEADER) or ""),
            str(headers.get(ORIGINAL_ROUTING_KEY_HEADER) or ""),
            str(user) if user else None,
        )
    return Origin(raw.exchange or "", raw.routing_key or "", raw.user_id)


@dataclass
class Delivery:
    """One delivery on its way through the consumer: the decoded message and, once applied,
    what its handler emitted."""

    message: Message
    payload: Any
    handler: Handler
    message_id: str | None = None  # the broker message's id (for the log)
    place: Place | None = None  # its place in its case's line (sequences); None: not numbered
    emitted: list[Envelope] = field(default_factory=list)
    # the delivery's consume span (as a context): its handler's span is its child, also when
    # a batch worker applies it beside other deliveries of other traces
    trace_context: otel_context.Context | None = None


class OutOfTurn(Exception):
    """A delivery that is not the next of its case's line (``sequences``): EARLY, held back;
    LATE, dead-lettered as out of order."""

    def __init__(self, place: Place, turn: Turn) -> None:
        super().__init__(f"{turn.value}: number {place.number} of {place.producer}'s line")
        self.place = place
        self.turn = turn


@dataclass(frozen=True)
class Decoded:
    """A delivery's envelope, its payload (or why the payload is invalid) and its handler."""

    envelope: Envelope
    payload: Any
    handler: Handler


def _ordering_key_of(message: RabbitMessage, decoded: Decoded | PoisonMessage) -> str | None:
    """The line a delivery waits in: an event's case (set by the relay), or for an agency's
    command the case it names (two commands on one case, e.g. RecordConsent then
    WithdrawConsent, are applied in the order the agency sent them)."""
    key = (message.raw_message.headers or {}).get(ORDERING_HEADER)
    if key:
        return str(key)
    if isinstance(decoded, Decoded) and isinstance(decoded.payload, Command):
        case_ref = getattr(decoded.payload, "case_ref", None)
        return str(case_ref) if case_ref else None
    return None


UnitOfWorkFactory = Callable[[Conn, Message], PostgresUnitOfWork]


class Consumer:
    def __init__(
        self,
        *,
        service: str,
        handlers: HandlerTable,
        unit_of_work: UnitOfWorkFactory,
        broker: RabbitBroker,
        topology: Topology,
        pool: Callable[[], asyncpg.Pool],
        metrics: ServiceMetrics,
        max_attempts: int = 5,
        sequence_hold_seconds: float = 120.0,
        max_backoff_seconds: float = 30.0,
        batch_size: int = 1,
        service_users: dict[str, str] | None = None,
        agency_users: dict[str, str] | None = None,
        lock_batch: Callable[[Conn, list[Any]], Awaitable[None]] | None = None,
        tracer: trace.Tracer | None = None,
    ) -> None:
        self.service = service
        self.lock_batch = lock_batch
        self.tracer = tracer or tracing.OFF.tracer
        # Up to this many deliveries waiting at once are applied in ONE transaction (group
        # commit); 1: one transaction per message.
        self.batches = Batches(self._apply_many, batch_size) if batch_size > 1 else None
        self.handlers = handlers
        self.unit_of_work = unit_of_work
        self.service_users = service_users or {}
        self.agency_users = agency_users or {}
        self._locks = KeyedLocks()
        self._arrivals = Arrivals()
        self.broker = broker
        self.topology = topology
        self.pool = pool
        self.metrics = metrics
        self.max_attempts = max_attempts
        self.sequence_hold = sequence_hold_seconds
        self.max_backoff = max_backoff_seconds
        self._stopping = asyncio.Event()

    def open(self) -> None:
        self._stopping.clear()

    def stopping(self) -> None:
        """The service is stopping: deliveries in flight stop retrying and are left unacked,
        so the broker delivers them again (to another instance, or after the restart)."""
        self._stopping.set()

    async def on_message(self, message: RabbitMessage) -> None:
        """Never lets an exception escape: FastStream would swallow it with the message unacked
        (AckPolicy.MANUAL), holding a prefetch slot until the channel closes."""
        with self._consume_span(message):
            try:
                decoded = self._decode(message)
                async with self._in_order(message, _ordering_key_of(message, decoded)) as turn:
                    await self._handle(message, decoded, turn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("message could not be settled; requeueing", error=type(exc).__name__)
                self.metrics.failed.labels(self.service, "unknown").inc()
                with contextlib.suppress(Exception):
                    await message.nack(requeue=True)

    def _consume_span(self, message: RabbitMessage) -> Any:
        """The delivery's consume span, a child of the publisher's span whose context the
        message's headers carry (a new trace when they carry none: an agency's command)."""
        raw = message.raw_message
        return self.tracer.start_as_current_span(
            f"process {raw.type or raw.routing_key}",
            context=tracing.context_from(raw.headers),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "rabbitmq",
                "messaging.operation.type": "process",
                "messaging.destination.name": raw.exchange or "",
                "messaging.rabbitmq.destination.routing_key": raw.routing_key or "",
                "messaging.message.id": raw.message_id or "",
                "messaging.consumer.group.name": self.service,
            },
        )

    @contextlib.asynccontextmanager
    async def _in_order(self, message: RabbitMessage, key: str | None) -> AsyncIterator[Ticket | None]:
        """Messages with the same ordering key (one case) are handled one after another in this
        process, in the order the broker delivered them; different cases run concurrently up to
        the prefetch. Each delivery's task may start later than the next one's (seen under load:
        a case's CaseReferred started after its ConsentWithdrawn), so a delivery takes its place
        in its case's line only in delivery order (``Arrivals``)."""
        raw = message.raw_message
        async with self._arrivals.turn(_channel_of(raw), raw.delivery_tag or 0):
            ticket = self._locks.enqueue(key) if key else None
        if ticket is None:
            yield None
            return
        try:
            await ticket.wait()
            yield ticket
        finally:
            ticket.release()

    def _decode(self, message: RabbitMessage) -> Decoded | PoisonMessage:
        """The message's envelope, payload and handler, or why it is poison (no I/O)."""
        raw = message.raw_message
        origin = origin_of(raw)
        payload: Contract | InvalidPayload
        try:
            try:
                envelope, payload = decode(raw.body)
                handler = self.handlers.handler_for(payload)
            except InvalidPayload as invalid:
                # a command whose handler answers the agency itself gets the InvalidPayload
                handler = self.handlers.handler_for_invalid(invalid.envelope.event_type)
                if handler is None:
                    raise
                envelope, payload = invalid.envelope, invalid
            if handler is None:
                raise PoisonMessage("unexpected_type", f"{envelope.event_type} is not handled by {self.service}")
            self._check_publisher(payload, origin.user_id)
            if not _routed_as(envelope.event_type, origin.routing_key):
                raise PoisonMessage(
                    "routing_key_mismatch", f"{envelope.event_type} sent with another type's routing key"
                )
        except PoisonMessage as poison:
            return poison
        return Decoded(envelope, payload, handler)

    async def _handle(self, message: RabbitMessage, decoded: Decoded | PoisonMessage, turn: Ticket | None) -> None:
        raw = message.raw_message
        with bound_contextvars(correlation_id=raw.correlation_id, message_id=raw.message_id):
            if isinstance(decoded, PoisonMessage):
                await self.dead_letter(message, decoded.reason, decoded.detail)
                await message.ack()
                return
            envelope, payload = decoded.envelope, decoded.payload
            with bound_contextvars(
                correlation_id=envelope.correlation_id,
                event_type=envelope.event_type,
                case_ref=getattr(payload, "case_ref", None),
                event_id=str(envelope.event_id),
            ):
                await self._process(message, envelope, payload, decoded.handler, turn)

    async def _process(
        self,
        message: RabbitMessage,
        envelope: Envelope,
        payload: Any,
        handler: Handler,
        turn: Ticket | None = None,
    ) -> None:
        raw = message.raw_message
        event_type = envelope.event_type
        started = time.perf_counter()
        outage = failures = held = 0
        held_since: float | None = None
        forced = False  # held past the hold: applied without its predecessor
        fresh = None
        if self._stopping.is_set():
            # Left unacked, it comes back. Never applied after an earlier delivery of its case
            # was left so: it would overtake that one when both come back.
            return
        if self.batches is not None:  # with others in one transaction; None: do it alone
            delivery = self._delivery(message, envelope, payload, handler)
            fresh = await self.batches.apply(delivery)
        while fresh is None:
            if self._stopping.is_set():
                return  # (as above)
            try:
                delivery = self._delivery(message, envelope, payload, handler, forced=forced)
                fresh = await self._apply(delivery)
                break
            except OutOfTurn as out:
                if out.turn is Turn.LATE:
                    detail = f"number {out.place.number} of {out.place.producer}'s line for its case was passed already"
                    await self.dead_letter(message, "out_of_order", detail)
                    await message.ack()
                    return
                now = time.monotonic()
                if held_since is None:
                    held_since = now
                    self.metrics.held_back.labels(self.service, event_type).inc()
                    log.info("held back: an earlier event of its case is not applied yet", number=out.place.number)
                if now - held_since >= self.sequence_hold:
                    forced = True
                    self.metrics.sequence_gaps.labels(self.service).inc()
                    log.error(
                        "applied without its predecessor after the hold",
                        number=out.place.number,
                        producer=out.place.producer,
                        held_s=round(now - held_since, 1),
                    )
                    continue
                held += 1
                await self._step_aside(turn, min(1.0, 0.02 * 2**held))
                continue
            except PoisonMessage as poison:  # the handler found the message unacceptable
                await self.dead_letter(message, poison.reason, poison.detail)
                await message.ack()
                return
            except Exception as exc:
                if self._stopping.is_set():
                    return  # not a failure of the message: left unacked, it comes back
                if is_outage(exc):
                    outage += 1
                    delay = min(self.max_backoff, 0.2 * 2 ** min(outage, 10))
                    log.warning(
                        "database unavailable, will retry",
                        error=type(exc).__name__,
                        detail=str(exc)[:200],
                        retry_in_s=round(delay, 2),
                    )
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(delay):
                            await self._stopping.wait()
                    continue
                self.metrics.failed.labels(self.service, event_type).inc()
                failures += 1
                attempt = _delivery_count(raw.headers) + failures
                if attempt >= self.max_attempts:
                    log.error("handler failed, dead-lettering", attempt=attempt, error=type(exc).__name__, exc_info=exc)
                    await self.dead_letter(message, "handler_error", f"{type(exc).__name__} after {attempt} attempts")
                    await message.ack()
                    return
                # Retried here, in place, holding the case's turn: a requeued message would come
                # back behind the case's next event (quorum queues redeliver returned messages
                # apart from the others), which would then be applied first.
                delay = min(RETRY_CAP_SECONDS, 0.1 * 2**failures)
                log.warning(
                    "handler failed, retrying in place",
                    attempt=attempt,
                    error=type(exc).__name__,
                    retry_in_s=delay,
                    exc_info=exc,
                )
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._stopping.wait()
        await message.ack()  # only now: the transaction has committed
        if fresh:
            self.metrics.consumed.labels(self.service, event_type).inc()
            self.metrics.handler_seconds.labels(self.service, event_type).observe(time.perf_counter() - started)
            self._count_rejections(event_type, delivery.emitted)
            log.info("event handled", emitted=[e.event_type for e in delivery.emitted])
        else:
            self.metrics.duplicates.labels(self.service, event_type).inc()
            trace.get_current_span().set_attribute("trisam.duplicate", True)
            log.info("duplicate event skipped")

    def _check_publisher(self, payload: Contract | InvalidPayload, user_id: str | None) -> None:
        """An event must come from the service that owns its type (when the services' broker
        users are known): anyone else publishing it, an agency or another service, is refused."""
        if not self.service_users or isinstance(payload, Command | InvalidPayload):
            return  # (an agency's command: its sender is checked by the handler)
        owner = owner_of(type(payload))
        if owner is not None and user_id != self.service_users.get(owner):
            raise PoisonMessage("sender_not_owner", f"{payload.name} is published by the {owner} service only")

    async def _step_aside(self, turn: Ticket | None, delay: float) -> None:
        """Held back: give the case's turn to whatever waits behind (its predecessor, when this
        process has it), pause, and take a place in the line again."""
        if turn is not None:
            turn.release()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._stopping.wait()
        if turn is not None:
            turn.rejoin()
            await turn.wait()

    def _delivery(
        self, message: RabbitMessage, envelope: Envelope, payload: Any, handler: Handler, *, forced: bool = False
    ) -> Delivery:
        raw = message.raw_message
        origin = origin_of(raw)
        place = self._place_of(raw)
        if place is not None and (forced or _replayed(raw)):  # (an operator's replay is applied as asked)
            place = place.forcing()
        return Delivery(
            Message(
                envelope=envelope,
                routing_key=origin.routing_key,
                user_id=origin.user_id,
                inbox_id=_inbox_id(envelope, raw.body, origin.exchange),
            ),
            payload,
            handler,
            raw.message_id,
            place=place,
            trace_context=otel_context.get_current(),  # (in the delivery's consume span)
        )

    async def _apply(self, delivery: Delivery) -> bool:
        """Inbox + handler + outbox in one transaction. False if the event was seen before;
        OutOfTurn (rolled back) if it is not the next of its case's line."""
        async with self.pool().acquire() as conn, conn.transaction():
            [fresh] = await self._apply_in(conn, [delivery])
            assert fresh is not None  # (alone, out of turn raises)
            return fresh

    async def _apply_many(self, deliveries: list[Delivery]) -> list[bool | None]:
        """Several deliveries (of different cases) in ONE transaction: all or nothing. Any
        error rolls all back, and each is then applied alone (see Batches); so is each that
        is out of its turn (None)."""
        async with self.pool().acquire() as conn, conn.transaction():
            return await self._apply_in(conn, deliveries)

    async def _apply_in(self, conn: Conn, deliveries: list[Delivery]) -> list[bool | None]:
        """The deliveries' inbox rows and their turns in their cases' lines in one statement,
        the handler of each that is new and next, then all the events they emitted into the
        outbox in one statement. For each delivery, whether it was new; None: out of
        its turn, left out (a delivery alone raises OutOfTurn instead)."""
        claimed, turns = await sequences.claim_in_turn(
            conn, self.service, [d.message for d in deliveries], [d.place for d in deliveries]
        )
        fresh: list[bool | None] = list(claimed)
        out = [i for i, turn in enumerate(turns) if turn is not None and turn is not Turn.NEXT]
        if out:  # left out of this transaction: its inbox row given back (alone: OutOfTurn)
            if len(deliveries) == 1:
                place, turn = deliveries[0].place, turns[0]
                assert place is not None and turn is not None
                raise OutOfTurn(place, turn)
            await unclaim_all(conn, self.service, [deliveries[i].message for i in out])
            for i in out:
                fresh[i] = None
        applied = [d for d, new in zip(deliveries, fresh, strict=True) if new]
        if self.lock_batch is not None and applied:
            await self.lock_batch(conn, [d.payload for d in applied])
        emitted: list[outbox.Outgoing] = []
        for run in _runs(applied):
            emitted.extend(await self._handle_run(conn, run, len(deliveries)))
        await outbox.add_many(conn, emitted)
        return fresh

    async def _handle_run(self, conn: Conn, run: list[Delivery], batch_size: int) -> list[outbox.Outgoing]:
        """Apply a run of deliveries (one delivery, or consecutive deliveries of one batch
        handler, ``handlers.on_batch``) with one unit of work; the events it emitted, for the
        outbox. Each delivery keeps its own handler span, a child of its own consume span,
        whichever task runs the batch."""
        first = run[0]
        envelope = first.message.envelope
        span_name = f"handle {envelope.event_type}"
        attributes: dict[str, str | int] = {"trisam.service": self.service, "trisam.batch_size": batch_size}
        with (
            bound_contextvars(  # (a batch runs in the worker's task: its own log context)
                correlation_id=envelope.correlation_id,
                event_type=envelope.event_type,
                case_ref=getattr(first.payload, "case_ref", None),
                event_id=str(envelope.event_id),
                message_id=first.message_id,
            ),
            # the first under its delivery's span as the current one: the events it emits keep
            # this span's context
            self.tracer.start_as_current_span(span_name, context=first.trace_context, attributes=attributes),
            contextlib.ExitStack() as others,
        ):
            for delivery in run[1:]:
                span = self.tracer.start_span(
                    f"handle {delivery.message.envelope.event_type}",
                    context=delivery.trace_context,
                    attributes=attributes,
                )
                others.callback(span.end)
            uow = self.unit_of_work(conn, first.message)
            uow.defer_outbox()
            if len(run) == 1:
                await first.handler(first.payload, uow)
            else:
                handler = first.handler
                assert isinstance(handler, OneOfBatch)  # (see _runs)
                await handler.batch([Received(d.payload, d.message) for d in run], uow)
        first.emitted = uow.emitted  # (a batch's events are told with its first delivery)
        for delivery in run[1:]:
            delivery.emitted = []
        return list(uow.pending or [])

    def _count_rejections(self, command: str, emitted: list[Envelope]) -> None:
        """An agency's command answered with a rejection: counted by party and reason."""
        for envelope in emitted:
            if envelope.event_type in (CommandRejected.name, ReferralRejected.name):
                self.metrics.count_rejection(
                    command, envelope.payload["recipient"], [r["code"] for r in envelope.payload["reasons"]]
                )

    async def close(self) -> None:
        self.stopping()
        if self.batches is not None:
            await self.batches.close()

    async def on_unredacted(self, message: RabbitMessage) -> None:
        """An agency's command that the broker itself dead-lettered (delivered more often than
        the queue's delivery limit: say it crashed the service each time) goes on at once,
        redacted, to this service's dead-letter queue, with the reason in its headers."""
        raw = message.raw_message
        try:
            death = _first_death(raw.headers or {})
            detail = f"dead-lettered by the broker from {death.get('queue', '?')}: {death.get('reason', '?')}"
            await self.dead_letter(message, "delivery_limit", detail, redact=True)
            await message.ack()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("unredacted dead letter not moved; requeueing", error=type(exc).__name__)
            with contextlib.suppress(Exception):
                await message.nack(requeue=True)

    async def dead_letter(self, message: RabbitMessage, reason: str, detail: str, *, redact: bool = False) -> None:
        """Publish the message to this service's dead-letter queue, reason in headers: unchanged,
        but an agency's command, which may hold identity, keeps only its frame (``redacted``),
        and its agency is told on its own queue (``CommandDeadLettered``), so that it can send
        it again."""
        raw = message.raw_message
        origin = origin_of(raw)
        headers = dict(raw.headers or {})
        death = _first_death(headers)
        exchange = str(death.get("exchange", origin.exchange))
        routing_key = str((death.get("routing-keys") or [origin.routing_key])[0])
        detail = detail[:500]
        body = raw.body
        if redact or exchange.endswith(f".{INTAKE}"):
            body = redacted(body)
            await self._tell_agency(raw, origin.user_id, reason, detail)
        # keep the broker's count for the record, but not as a live count: a replay from the
        # dead-letter queue starts afresh
        if "x-delivery-count" in headers:
            headers["x-trisam-original-delivery-count"] = headers.pop("x-delivery-count")
        headers.pop(REPLAYED_BY_HEADER, None)  # (dead-lettered again after a replay)
        headers.update(
            {
                REASON_HEADER: reason,
                DETAIL_HEADER: detail,
                ORIGINAL_EXCHANGE_HEADER: exchange,
                ORIGINAL_ROUTING_KEY_HEADER: routing_key,
                "x-trisam-dead-lettered-by": self.service,
                DEAD_LETTERED_AT_HEADER: datetime.now(UTC).isoformat(),
            }
        )
        if origin.user_id:
            headers[ORIGINAL_USER_HEADER] = origin.user_id
        await self.broker.publish(
            body,
            exchange=self.topology.exchange(DEAD_LETTERS),
            routing_key=self.service,
            headers=headers,
            persist=True,
            mandatory=True,
            message_id=raw.message_id,
            correlation_id=raw.correlation_id,
            message_type=raw.type,
            content_type=raw.content_type,
            timestamp=raw.timestamp,
            timeout=10,
        )
        self.metrics.dead_lettered.labels(self.service, reason).inc()
        trace.get_current_span().set_attribute("trisam.dead_letter_reason", reason)
        log.warning("message dead-lettered", reason=reason, detail=detail)
        await self._pass_number(raw)

    def _place_of(self, raw: Any) -> Place | None:
        """The delivery's place in its case's line for this service (None: not numbered)."""
        return sequences.place_of(raw.headers, self.service, (raw.headers or {}).get(ORDERING_HEADER))

    async def _pass_number(self, raw: Any) -> None:
        """A dead-lettered event gives up its number in its case's line, so that the case's
        next event is not held back for it. The database away: the next one waits out the hold
        (and the gap is counted)."""
        place = self._place_of(raw)
        if place is None or _replayed(raw):
            return
        try:
            async with self.pool().acquire() as conn, conn.transaction():
                await sequences.pass_number(conn, self.service, place)
        except Exception as exc:
            log.warning("dead letter's number not passed", error=type(exc).__name__, number=place.number)

    async def _tell_agency(self, raw: Any, user_id: str | None, reason: str, detail: str) -> None:
        """``CommandDeadLettered`` to the sending agency's own queue, through the outbox, once per
        dead-lettered message (the inbox keeps a redelivery from telling it twice). The agency
        is the broker user's (``user_id``), never the payload's; without one there is nobody
        to tell. Written before the dead letter is published: a crash between the two
        redelivers the command, which is dead-lettered again and finds the notice written."""
        party = self.agency_users.get(user_id or "")
        if party is None:
            log.warning("dead-lettered command of no known agency: no one to tell", reason=reason)
            return
        notice_id = uuid.uuid5(_NOTICE_IDS, f"{raw.message_id}:{hashlib.sha256(raw.body).hexdigest()}")
        command = _envelope_fields(raw.body)
        now = datetime.now(UTC)
        notice = CommandDeadLettered(
            recipient=Party(party),
            command=command.get("event_type"),
            command_id=command.get("event_id"),
            message_id=raw.message_id,
            service=self.service,
            reason=reason,
            detail=detail,
            dead_lettered_at=now,
        )
        envelope = Envelope(
            event_id=notice_id,
            event_type=notice.name,
            version=notice.version,
            occurred_at=now,
            producer=self.service,
            correlation_id=command.get("correlation_id") or str(notice_id),
            causation_id=command.get("event_id"),
            payload=notice.model_dump(mode="json"),
        )
        outage = 0
        while True:
            try:
                async with self.pool().acquire() as conn, conn.transaction():
                    [new] = await claim_all(
                        conn, self.service + NOTICES_CONSUMER_SUFFIX, [Message(envelope, inbox_id=notice_id)]
                    )
                    if new:
                        ordering_key = f"command:{command.get('event_id') or notice_id}"
                        await outbox.add_many(
                            conn, [outbox.Outgoing(envelope, notice, ordering_key, tracing.headers_of() or None)]
                        )
                return
            except Exception as exc:
                if not is_outage(exc) or self._stopping.is_set():
                    raise  # the message is left unsettled, and comes back
                outage += 1
                delay = min(self.max_backoff, 0.2 * 2 ** min(outage, 10))
                log.warning("database unavailable, will retry", error=type(exc).__name__, retry_in_s=round(delay, 2))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._stopping.wait()


class Batches:
    """Group commit: deliveries that wait at the same moment are applied together in one
    transaction by a worker, which saves a transaction (and a WAL flush) per message.

    Safe because: every delivery of a batch is acked only after that transaction committed;
    the inbox rows are in it; deliveries of one case never meet in a batch (the consumer holds
    the case's lock while its delivery waits here, so the next one of that case waits for it).
    When the batch fails for any reason (a handler error, poison found by a handler, a
    deadlock, the database away) it is rolled back entirely and each delivery is applied alone,
    on the ordinary path with its retries and dead-lettering; a batch of one goes that way too.
    """

    def __init__(
        self, apply_many: Callable[[list[Delivery]], Awaitable[list[bool | None]]], size: int, workers: int = 1
    ) -> None:
        self._apply_many = apply_many
        self._size = size
        self._workers = workers
        self._queue: asyncio.Queue[tuple[Delivery, asyncio.Future[bool | None]]] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.applied = self.rolled_back = 0  # deliveries applied in batches; batches rolled back

    async def apply(self, delivery: Delivery) -> bool | None:
        """True/False (fresh, or seen before) when applied in a batch; None: apply it alone."""
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._tasks = [asyncio.create_task(self._work(), name="consumer-batches") for _ in range(self._workers)]
        done: asyncio.Future[bool | None] = asyncio.get_running_loop().create_future()
        await self._queue.put((delivery, done))
        return await done

    async def _work(self) -> None:
        while True:
            assert self._queue is not None  # set before the workers start
            batch = [await self._queue.get()]
            while len(batch) < self._size and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            live = [item for item in batch if not item[1].done()]
            if len(live) < 2:
                for _, done in live:
                    done.set_result(None)
                continue
            fresh: Sequence[bool | None]
            try:
                fresh = await self._apply_many([delivery for delivery, _ in live])
            except asyncio.CancelledError:
                for _, done in live:  # each goes alone (and finds the consumer stopping)
                    if not done.done():
                        done.set_result(None)
                raise
            except Exception as exc:
                log.info("batch rolled back; each applied alone", size=len(live), error=type(exc).__name__)
                self.rolled_back += 1
                fresh = [None] * len(live)
            else:
                self.applied += len(live)
            for (_, done), one in zip(live, fresh, strict=False):
                if not done.done():
                    done.set_result(one)

    async def close(self) -> None:
        """Stop the workers; a delivery still waiting is told to go alone (it then finds the
        consumer stopping and is left unacked)."""
        await cancel_all(self._tasks, timeout=1.0)
        queue, self._tasks, self._queue = self._queue, [], None
        while queue is not None and not queue.empty():
            _, done = queue.get_nowait()
            if not done.done():
                done.set_result(None)


def _runs(deliveries: list[Delivery]) -> list[list[Delivery]]:
    """The deliveries in order, consecutive ones of the same batch handler together, every
    other one alone."""
    runs: list[list[Delivery]] = []
    for delivery in deliveries:
        previous = runs[-1][0].handler if runs else None
        if isinstance(delivery.handler, OneOfBatch) and delivery.handler is previous:
            runs[-1].append(delivery)
        else:
            runs.append([delivery])
    return runs


def _channel_of(raw: Any) -> int:
    """The identity of the channel a message came on (aio-pika raises for a closed one: the
    message then cannot be acked either, and any number does)."""
    try:
        return id(raw.channel)
    except Exception:
        return 0


def _replayed(raw: Any) -> bool:
    """An operator's replay of a dead letter (see ``origin_of``)."""
    return not raw.exchange and REPLAYED_BY_HEADER in (raw.headers or {})


def _first_death(headers: dict[str, Any]) -> dict[str, Any]:
    """Where the broker dead-lettered a message from (its ``x-death`` header), if it did."""
    deaths = headers.get("x-death")
    return deaths[0] if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict) else {}


def _delivery_count(headers: dict[str, Any] | None) -> int:
    try:
        return int((headers or {}).get("x-delivery-count", 0))
    except (TypeError, ValueError):
        return 0


class KeyedLocks:
    """A first-come, first-served line per key: ``enqueue`` takes a place at once (no await, so
    the caller decides the order), ``Ticket.wait`` waits for the turn, ``Ticket.release`` gives
    it to the next. A key's line is forgotten when empty."""

    def __init__(self) -> None:
        self._lines: dict[str, collections.deque[Ticket]] = {}

    def enqueue(self, key: str) -> Ticket:
        line = self._lines.setdefault(key, collections.deque())
        ticket = Ticket(self, key)
        line.append(ticket)
        if len(line) == 1:
            ticket.turn.set()
        return ticket

    def _release(self, ticket: Ticket) -> None:
        line = self._lines.get(ticket.key)
        if line is None or ticket not in line:
            return
        first = line[0] is ticket
        line.remove(ticket)
        if not line:
            del self._lines[ticket.key]
        elif first:
            line[0].turn.set()

    def _rejoin(self, ticket: Ticket) -> None:
        line = self._lines.setdefault(ticket.key, collections.deque())
        if ticket not in line:
            line.append(ticket)
        if line[0] is ticket:
            ticket.turn.set()

    @contextlib.asynccontextmanager
    async def lock(self, key: str) -> AsyncIterator[None]:
        ticket = self.enqueue(key)
        try:
            await ticket.wait()
            yield
        finally:
            ticket.release()


class Ticket:
    """A place in a ``KeyedLocks`` line."""

    def __init__(self, locks: KeyedLocks, key: str) -> None:
        self._locks = locks
        self.key = key
        self.turn = asyncio.Event()

    async def wait(self) -> None:
        await self.turn.wait()

    def release(self) -> None:
        """Leave the line (after the turn, or while still waiting: cancelled)."""
        self._locks._release(self)

    def rejoin(self) -> None:
        """Take a place at the end of the line again (after ``release``)."""
        self.turn.clear()
        self._locks._rejoin(self)


# How long a delivery waits for an earlier one (by delivery tag) that has not reached the consumer
GAP_SECONDS = 0.5


class Arrivals:
    """Admits the deliveries of a channel in delivery-tag order (the broker numbers a channel's
    deliveries 1, 2, 3, ...), whatever order their tasks start in. A delivery waits for the ones
    before it at most GAP_SECONDS (one that never reaches the consumer must not stop the rest).
    Tags start again at 1 on a new channel, which is tracked apart (by its identity)."""

    def __init__(self, gap_seconds: float = GAP_SECONDS) -> None:
        self._gap = gap_seconds
        self._next: dict[int, int] = {}  # channel -> the next tag to admit
        self._waiting: dict[tuple[int, int], asyncio.Event] = {}

    @contextlib.asynccontextmanager
    async def turn(self, channel: int, tag: int) -> AsyncIterator[None]:
        expected = self._next.get(channel)
        if expected is None or tag < expected:  # the first seen of this channel, or a late one
            self._next[channel] = tag
        while tag > self._next[channel]:
            ready = self._waiting.setdefault((channel, tag), asyncio.Event())
            try:
                async with asyncio.timeout(self._gap):
                    await ready.wait()
            except TimeoutError:
                # the first of those waiting skips the gap before it; the others wait their turn
                if tag == min(t for c, t in self._waiting if c == channel):
                    self._next[channel] = tag
            finally:
                self._waiting.pop((channel, tag), None)
        try:
            yield
        finally:
            following = max(self._next.get(channel, 0), tag + 1)
            self._next[channel] = following
            if (event := self._waiting.get((channel, following))) is not None:
                event.set()


def _routed_as(event_type: str, routing_key: str) -> bool:
    """The routing key names the message's type: 'CaseReferred', 'FollowUpDue.AF' (events) or
    'AF.SubmitReferral' (intake). Bindings select by routing key, so a message whose envelope
    claims another type (an agency dressing a command up as an event) is refused."""
    parts = routing_key.split(".")
    return event_type in parts[:2]


def _inbox_id(envelope: Envelope, body: bytes, exchange: str) -> uuid.UUID:
    if exchange.endswith(f".{INTAKE}"):
        return uuid.uuid5(envelope.event_id, hashlib.sha256(body).hexdigest())
    return envelope.event_id


def _envelope_fields(body: bytes) -> dict[str, str]:
    """The frame of a message as far as it is readable: ``event_type``, ``event_id`` and
    ``correlation_id`` where they are short strings (never anything of the payload)."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return {}
    if not isinstance(document, dict):
        return {}
    return {
        key: value
        for key in ("event_type", "event_id", "correlation_id")
        if isinstance(value := document.get(key), str) and 0 < len(value) <= 128
    }


def redacted(body: bytes) -> bytes:
    """The envelope of a command without its payload's values (field names kept), or nothing
    but the size when it is not even JSON."""
    try:
        document = json.loads(body)
        if not isinstance(document, dict):
            raise ValueError
    except (ValueError, RecursionError):  # (nested past Python's parser: only its size is kept)
        return json.dumps({"redacted": True, "bytes": len(body)}).encode()
    payload = document.get("payload")
    document["payload"] = {key: "<redacted>" for key in payload} if isinstance(payload, dict) else "<redacted>"
    document["redacted"] = True
    return json.dumps(document).encode()
