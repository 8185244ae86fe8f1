"""The runtime every service process shares: broker, database, outbox relay, consumer, HTTP.

A service is described by a ``ServiceSpec`` (name, event handlers, migrations, HTTP routes).
``build_app`` turns it into an ASGI app (FastAPI) whose lifespan starts the runtime in the
background: the process answers liveness at once, reports not-ready while the database or
broker is unreachable, retries with backoff, and becomes ready by itself when they return.

HTTP routes every service has: ``/health/live``, ``/health/ready``, ``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import functools
import io
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Union
from urllib.parse import urlparse

import asyncpg
import structlog
import uvicorn
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from faststream import AckPolicy
from faststream.rabbit import Channel, RabbitBroker, RabbitMessage, RabbitQueue
from faststream.specification import AsyncAPI
from opentelemetry.trace import SpanKind

from shared.contracts import Contract, Envelope, wire_model
from shared.contracts.vocabulary import Party
from shared.platform import db, dead_letters, sequences, tls, tracing
from shared.platform import topology as topo
from shared.platform.clock import Clock, stockholm_date
from shared.platform.config import Settings, load_settings
from shared.platform.consumer import ORDERING_HEADER, Consumer
from shared.platform.db import Conn
from shared.platform.handlers import HandlerTable
from shared.platform.keys import KeySource
from shared.platform.limits import BoundedBody
from shared.platform.logging import configure as configure_logging
from shared.platform.logging import kept_contextvars
from shared.platform.metrics import ServiceMetrics
from shared.platform.outbox import OutboxRelay, PendingEvent, backoff_seconds
from shared.platform.tasks import cancel_all, cancel_and_wait
from shared.platform.uow import Message, PostgresUnitOfWork

log = structlog.get_logger("runtime")

# Shutdown is bounded: each step gets at most this long, whatever the relay, a consumer or a
# scheduler is doing (a lost connection included), and the steps that can overlap do; a
# runtime stops in about 4 s at worst. In-flight messages get GRACE_SECONDS to finish; those
# that don't are not acked and come back (the inbox makes them harmless).
GRACE_SECONDS = 1.5
STOP_TASKS_SECONDS = 2.0
CLOSE_POOL_SECONDS = 1.0
SCRAPE_SECONDS = 2.0  # the database's part of a /metrics read at most
CONNECT_SECONDS = 10.0  # one attempt to connect to the broker (TCP, TLS and AMQP handshake) at most


@dataclass
class ServiceSpec:
    name: str
    description: str
    migrations: Path
    # The service's handlers, keyed by contract class; its queue's bindings derive from it.
    handlers: HandlerTable | None = None
    # Makes the service's unit of work on an open transaction (and the message being handled,
    # if any): its repositories, inbox and outbox.
    unit_of_work: Callable[[Conn, Message | None], PostgresUnitOfWork] | None = None
    # Background loops (schedulers, retention), started when the service is ready.
    tasks: tuple[Callable[[Runtime], Awaitable[None]], ...] = ()
    # Builds the service's own HTTP routes; gets the running Runtime.
    routes: Callable[[Runtime], APIRouter] | None = None
    # Published event types, for the AsyncAPI document: (contract class, description).
    publishes: tuple[tuple[type[Contract], str], ...] = ()
    # The service's clock (a development clock may run ahead or fast); default: from settings.
    clock: Clock | None = None
    # Locks what the handlers of a transaction's deliveries will lock, in one fixed order,
    # before they run (group commit without deadlocks between concurrent transactions).
    lock_batch: Callable[[Conn, list[Any]], Awaitable[None]] | None = None
    # Sets the service's own gauges (shared/platform/metrics.py) when /metrics is read, on a
    # pooled connection (bounded in time, see Runtime.refresh_metrics).
    gauges: Callable[[Runtime, Conn], Awaitable[None]] | None = None


class Runtime:
    def __init__(self, spec: ServiceSpec, settings: Settings | None = None, tracer_provider: Any = None):
        """``tracer_provider``: an OpenTelemetry SDK provider to record spans with (a test's);
        by default one exporting to the configured OTLP endpoint, or none (tracing off)."""
        self.spec = spec
        self.settings = settings or Settings()
        self.tracing = tracing.tracing_for(spec.name, self.settings.otlp_endpoint, tracer_provider)
        self.clock = spec.clock or Clock.from_settings(self.settings)
        self.keys = KeySource.of(self.settings)  # the public keys that verify bearer tokens
        self._broker_user = urlparse(self.settings.amqp_url).username or "guest"
        self.topology = topo.Topology.of(self.settings)
        self.metrics = ServiceMetrics(spec.name)
        self.broker = RabbitBroker(
            self.settings.amqp_url,
            default_channel=Channel(prefetch_count=self.settings.prefetch, on_return_raises=True),
            reconnect_interval=2.0,
            timeout=CONNECT_SECONDS,  # each (re)connection attempt: unbounded, one could hang for good
            graceful_timeout=GRACE_SECONDS,  # FastStream's default, 15 s, would hold shutdown
            logger=None,  # FastStream's per-message access log costs throughput; we log ourselves
            app_id=f"trisam-{spec.name}",
            description=spec.description,
        )
        self._pool: asyncpg.Pool | None = None
        self.handlers = spec.handlers or HandlerTable(spec.name)
        if self.handlers and set(self.handlers.bindings()) != set(topo.SUBSCRIPTIONS.get(spec.name, ())):
            raise RuntimeError(
                f"{topo.SUBSCRIPTIONS_FILE} does not match the {spec.name} service's handlers: run `make docs`"
            )
        self.consumer = Consumer(
            service=spec.name,
            handlers=self.handlers,
            unit_of_work=self._unit_of_work,
            broker=self.broker,
            topology=self.topology,
            pool=lambda: self.pool,
            metrics=self.metrics,
            max_attempts=self.settings.max_handler_attempts,
            sequence_hold_seconds=self.settings.sequence_hold_seconds,
            max_backoff_seconds=self.settings.outbox_max_backoff_seconds,
            batch_size=self.settings.consume_batch_size,
            service_users=self.settings.service_users,
            agency_users=self.settings.agency_users,
            lock_batch=spec.lock_batch,
            tracer=self.tracing.tracer,
        )
        if self.handlers:
            for queue in self.topology.event_queues(spec.name):  # (one, or the partitions too)
                self._subscribe(queue, self.consumer.on_message)
        if topo.consumes_intake(spec.name):  # each agency's commands, from its own queue
            for party in Party:
                self._subscribe(self.topology.intake_queue(spec.name, party), self.consumer.on_message)
            self._subscribe(self.topology.unredacted_queue(spec.name), self.consumer.on_unredacted)
        self.relay: OutboxRelay | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.ready = asyncio.Event()
        self._starter: asyncio.Task[None] | None = None

    def _subscribe(self, queue: RabbitQueue, on_message: Callable[[RabbitMessage], Awaitable[None]]) -> None:
        self.broker.subscriber(
            queue,
            ack_policy=AckPolicy.MANUAL,
            decoder=_raw_body,  # we decode and validate ourselves: bad JSON is poison
            include_in_schema=False,  # documented from the contracts, see asyncapi()
        )(on_message)

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("database pool not open yet")
        return self._pool

    def _unit_of_work(self, conn: Conn, message: Message | None = None) -> PostgresUnitOfWork:
        if self.spec.unit_of_work is None:
            return PostgresUnitOfWork(conn, self.spec.name, message=message)
        return self.spec.unit_of_work(conn, message)

    @contextlib.asynccontextmanager
    async def unit_of_work(self, correlation_id: str | None = None) -> AsyncIterator[PostgresUnitOfWork]:
        """A unit of work outside a message (an HTTP request, a scheduler round): one
        transaction on a pooled connection, committed when the block ends without an error."""
        with kept_contextvars():
            async with self.pool.acquire() as conn, conn.transaction():
                uow = self._unit_of_work(conn, None)
                uow.correlation_id = correlation_id or uow.correlation_id
                uow.defer_outbox()
                yield uow
                await uow.flush()

    # ------------------------------------------------------------------ lifecycle

    def start_in_background(self) -> None:
        self._starter = asyncio.create_task(self._start_with_retry(), name="runtime-start")

    async def _start_with_retry(self) -> None:
        await retry_until_done("start-up", self.start, max_delay=10.0, after_failure=self._close_quietly)

    async def start(self) -> None:
        s, name = self.settings, self.spec.name
        self.consumer.open()
        role_password = s.database_role_password.get_secret_value() if s.database_role_password else None
        applied = await db.prepare_database(s.database_url, s.database_name(name), self.spec.migrations, role_password)
        if applied:
            log.info("migrations applied", migrations=applied)
        self._pool = await asyncpg.create_pool(
            s.service_role_url(name),  # its own role, which owns nothing (db.grant_service_role)
            min_size=1,
            max_size=s.db_pool_max,
            command_timeout=30,
            server_settings={"application_name": application_name(name)},
            connection_class=db.PooledConnection,  # no reset round trip on every release
        )
        await topo.declare(s.amqp_url, self.topology)
        await self.broker.connect()
        await self.broker.start()
        self.relay = OutboxRelay(
            self._pool,
            self._publish_pending,
            batch_size=s.outbox_batch_size,
            poll_seconds=s.outbox_poll_seconds,
            max_backoff_seconds=s.outbox_max_backoff_seconds,
            on_published=lambda e: self.metrics.published.labels(name, e.event_type).inc(),
            on_failed=lambda e, x: self.metrics.publish_failed.labels(name, e.event_type).inc(),
        )
        self.relay.start()
        self._tasks = [
            asyncio.create_task(
                retry_until_done(task.__name__, functools.partial(task, self), max_delay=30.0), name=task.__name__
            )
            for task in self.spec.tasks
        ]
        self.ready.set()
        log.info("service ready", namespace=s.namespace)

    async def stop(self) -> None:
        """Stop within a few seconds, whatever is going on (see GRACE_SECONDS)."""
        starter, self._starter = self._starter, None
        await cancel_and_wait(starter, timeout=STOP_TASKS_SECONDS)
        await self._close_quietly()
        if self.tracing.enabled:  # the spans still waiting in the exporter's batch
            await asyncio.to_thread(self.tracing.flush, 1000)

    async def _close_quietly(self) -> None:
        self.ready.clear()
        tasks, self._tasks = self._tasks, []
        relay, self.relay = self.relay, None
        self.consumer.stopping()  # in-flight deliveries stop retrying; unacked, they come back
        await asyncio.gather(
            cancel_all(tasks, timeout=STOP_TASKS_SECONDS),
            relay.stop(timeout=STOP_TASKS_SECONDS) if relay else asyncio.sleep(0),
            self._stop_broker(),
        )
        await self.consumer.close()
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                async with asyncio.timeout(CLOSE_POOL_SECONDS):
                    await pool.close()  # waits for connections still in use: bounded
            except Exception:
                pool.terminate()

    async def _stop_broker(self) -> None:
        try:
            async with asyncio.timeout(GRACE_SECONDS + 1.0):
                await self.broker.stop()
        except Exception as exc:
            log.warning("broker connection not closed cleanly", error=type(exc).__name__)

    async def _publish_pending(self, event: PendingEvent) -> None:
        """Publish one outbox row: persistent, mandatory, confirmed (returns raise). In a publish
        span, the child of the span that wrote the row, whose context the message carries."""
        exchange = self.topology.exchange(event.exchange)
        with self.tracing.tracer.start_as_current_span(
            f"publish {event.event_type}",
            context=tracing.context_from(event.trace_context),
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "rabbitmq",
                "messaging.operation.type": "send",
                "messaging.destination.name": exchange.name,
                "messaging.rabbitmq.destination.routing_key": event.routing_key,
                "messaging.message.id": str(event.event_id),
            },
        ):
            await self.broker.publish(
                event.body,
                exchange=exchange,
                routing_key=event.routing_key,
                persist=True,
                mandatory=True,
                message_id=str(event.event_id),
                message_type=event.event_type,
                correlation_id=event.correlation_id,
                content_type="application/json",
                headers={
                    ORDERING_HEADER: event.ordering_key,
                    **sequences.headers_for(self.spec.name, event.sequence),
                    **tracing.headers_of(),
                },
                user_id=self._broker_user,  # RabbitMQ checks it: consumers can tell who published
                timestamp=event.occurred_at if isinstance(event.occurred_at, datetime) else None,
                timeout=10,
            )

    async def is_ready(self) -> dict[str, bool]:
        database = broker = False
        if self.ready.is_set() and self._pool is not None:
            with contextlib.suppress(Exception):
                async with self._pool.acquire(timeout=2) as conn:
                    database = await conn.fetchval("SELECT true", timeout=2)
            with contextlib.suppress(Exception):
                broker = await self.broker.ping(timeout=1)
        relay = self.relay is not None and self.relay.running
        return {"database": bool(database), "broker": bool(broker), "outbox_relay": relay}

    async def count_dead_letter_actions(self) -> None:
        """The operators' replays and discards, from the table they are recorded in (the tool that
        does them runs only for a moment, so the table is the count), into the metrics gauge. Not
        ready or the database away: the gauge keeps what it had."""
        if self._pool is None:
            return
        try:
            async with self._pool.acquire(timeout=2) as conn:
                counts = await dead_letters.action_counts(conn)
        except Exception as exc:
            log.info("dead-letter actions not counted", error=type(exc).__name__)
            return
        for (action, reason), count in counts.items():
            self.metrics.dead_letter_actions.labels(self.spec.name, action, reason).set(count)

    async def refresh_metrics(self) -> None:
        """The gauges computed when /metrics is read, so they are right even when a loop that
        would set them is stuck: the operators' dead-letter actions, readiness, the outbox's
        pending rows and the age of the oldest, and the service's own (``ServiceSpec.gauges``).
        The database's part is bounded by SCRAPE_SECONDS; what it cannot read keeps its last
        value (the service is then not ready, which has its own alert)."""
        await self.count_dead_letter_actions()
        name, m = self.spec.name, self.metrics
        checks = await self.is_ready()
        m.ready.labels(name).set(1 if all(checks.values()) else 0)
        if not checks["database"]:
            return
        try:
            async with asyncio.timeout(SCRAPE_SECONDS), self.pool.acquire() as conn:
                pending, oldest = await conn.fetchrow(
                    """SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8
                       FROM outbox WHERE sent_at IS NULL"""
                ) or (0, 0.0)
                m.outbox_backlog.labels(name).set(pending)
                m.outbox_oldest_pending_seconds.labels(name).set(oldest)
                if self.spec.gauges is not None:
                    await self.spec.gauges(self, conn)
        except Exception as exc:
            log.warning("gauges not refreshed", error=type(exc).__name__)

    def asyncapi(self) -> AsyncAPI:
        """The service's AsyncAPI document: what it consumes and publishes, as on the wire.

        Built on a documentation-only broker from the same topology and contracts, because the
        real consumer takes raw bytes (it must see bad JSON to dead-letter it).
        """
        doc = RabbitBroker(self.settings.amqp_url, description=self.spec.description)
        consumed = [wire_model(contract_cls) for contract_cls in self.handlers.contracts]
        if consumed:

            async def consume(body: Envelope) -> None:
                """Documentation stand-in for the service's consumer."""

            # the union of the consumed wire models, made at run time
            consume.__annotations__ = {"body": Union[tuple(consumed)], "return": None}  # noqa: UP007
            bindings = ", ".join(f"{b.exchange}:{b.routing_key}" for b in self.handlers.bindings())
            if topo.consumes_intake(self.spec.name):
                first = self.topology.intake_queue_name(self.spec.name, "AF")
                bindings += f" (agency commands from each agency's own queue, {first} etc.)"
            doc.subscriber(
                self.topology.queue(self.spec.name),
                title=f"{self.spec.name}:inbox",
                description=f"Bound to {bindings}. Consumes: {', '.join(self.handlers.names)}.",
            )(consume)
        for contract_cls, description in self.spec.publishes:
            routing_key = {
                topo.AGENCY: f"<PARTY>.{contract_cls.name}",
                topo.AGGREGATES: f"{contract_cls.name}.<TEAM|ALL>",
            }.get(contract_cls.exchange, contract_cls.name)
            doc.publisher(
                exchange=self.topology.exchange(contract_cls.exchange),
                routing_key=routing_key,
                title=f"{self.spec.name}:{contract_cls.name}",
                description=description,
                schema=wire_model(contract_cls),
            )
        return AsyncAPI(
            doc, title=f"Trisam {self.spec.name} service", version="1.0.0", description=self.spec.description
        )


async def retry_until_done(
    what: str,
    action: Callable[[], Awaitable[None]],
    *,
    max_delay: float,
    after_failure: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Run ``action`` until it returns; after a failure log it, back off, and run it again.

    Only a cancellation of this task ends it. A ``CancelledError`` that nobody asked for (a
    library can raise one when a connection is lost under it) is a failure like any other:
    were it to end the task, a background loop would stop for good without a word."""
    failures = 0
    while True:
        try:
            await action()
            return
        except asyncio.CancelledError as cancelled:
            task = asyncio.current_task()
            assert task is not None  # this runs in a task
            if task.cancelling():
                raise
            exc: BaseException = cancelled
        except Exception as error:
            exc = error
        failures += 1
        delay = backoff_seconds(failures, max_delay)
        # connection errors say where; others may carry data, so only their type
        detail = str(exc)[:500] if isinstance(exc, (OSError, topo.TopologyConflict)) else None
        log.warning(f"{what} failed; retrying", error=type(exc).__name__, detail=detail, retry_in_s=delay, exc_info=exc)
        if after_failure:
            await after_failure()
        await asyncio.sleep(delay)


def application_name(what: str) -> str:
    """What a database connection says it is (pg_stat_activity), so a lock holder can be found."""
    return f"trisam-{what}-{os.getpid()}"


def dump_tasks() -> None:
    """On SIGUSR1: every asyncio task's stack to stderr, for a process that seems stuck
    (``kill -USR1 <pid>``; SIGUSR2 dumps every thread's stack, even with the loop blocked)."""
    out = io.StringIO()
    for task in asyncio.all_tasks():
        print(f"--- task {task.get_name()}: {task!r}"[:400], file=out)
        task.print_stack(limit=30, file=out)
    sys.stderr.write(out.getvalue())
    sys.stderr.flush()


async def _raw_body(message: RabbitMessage) -> bytes:
    return message.body


def build_app(runtime: Runtime) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump_tasks)
        runtime.start_in_background()
        try:
            yield
        finally:
            await runtime.stop()

    # The interactive API pages load Swagger UI and ReDoc from a CDN: development only. The
    # OpenAPI document itself (/openapi.json) is served everywhere.
    pages = runtime.settings.env == "dev"
    app = FastAPI(
        title=f"Trisam {runtime.spec.name} service",
        version="1.0.0",
        description=runtime.spec.description,
        lifespan=lifespan,
        docs_url="/docs" if pages else None,
        redoc_url="/redoc" if pages else None,
    )
    app.state.runtime = runtime
    app.add_middleware(BoundedBody, max_bytes=runtime.settings.http_max_body_bytes)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        """FastAPI's default echoes the input (it may be personal data): where and what only."""
        reasons = [
            {"field": ".".join(str(p) for p in err.get("loc", ())), "code": err.get("type")} for err in exc.errors()
        ]
        return JSONResponse({"status": "rejected", "reasons": reasons}, status_code=422)

    @app.get("/health/live", tags=["health"])
    async def live() -> dict[str, Any]:
        return {"status": "alive", "service": runtime.spec.name}

    @app.get("/health/ready", tags=["health"])
    async def ready() -> JSONResponse:
        checks = await runtime.is_ready()
        ok = all(checks.values())
        return JSONResponse({"status": "ready" if ok else "not_ready", **checks}, status_code=200 if ok else 503)

    @app.get("/health/clock", tags=["health"])
    async def clock() -> dict[str, Any]:
        """The platform's time as this service sees it: under a development clock (ahead, or
        running fast) it differs from the wall clock, and every date the platform judges
        (ages, meeting days, "not in the future", due follow-ups) is judged on it."""
        c, now = runtime.clock, runtime.clock.now()
        return {
            "now": now.isoformat(),
            "date_in_sweden": stockholm_date(now).isoformat(),
            "wall_clock": datetime.now(UTC).isoformat(),
            "simulated": c.offset.total_seconds() != 0 or c.speed != 1.0 or c.stops_at is not None,
            "offset_days": c.offset.total_seconds() / 86400,
            "speed": c.speed,
            "stops_at": c.stops_at.isoformat() if c.stops_at else None,
        }

    @app.get("/metrics", tags=["health"], response_class=Response)
    async def metrics() -> Response:
        await runtime.refresh_metrics()
        return Response(runtime.metrics.render(), media_type="text/plain; version=0.0.4")

    if runtime.spec.routes:
        app.include_router(runtime.spec.routes(runtime))
    if runtime.tracing.enabled:  # a span per request (not for probes and scrapes), the W3C context read
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=runtime.tracing.provider,
            excluded_urls="/health/,/metrics$",
            exclude_spans=["receive", "send"],
        )
    return app


def serve(make_spec: Callable[[Settings], ServiceSpec]) -> None:
    """Entry point of ``python -m services.<name>``."""
    settings = load_settings()
    spec = make_spec(settings)
    configure_logging(spec.name, settings.log_level)
    faulthandler.register(signal.SIGUSR2, all_threads=True)
    runtime = Runtime(spec, settings)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    try:
        uvicorn.run(
            build_app(runtime),
            host=settings.http_host,
            port=settings.port_for(spec.name),
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=10,
            **tls.server_options(settings),
        )
    finally:
        runtime.tracing.shutdown()
