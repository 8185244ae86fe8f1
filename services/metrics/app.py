"""The metrics service: wiring, and the background work (catching up the projections, making
the public editions when periods close)."""

import asyncio
from pathlib import Path

import structlog

from shared.contracts import FiguresPublished
from shared.platform import topology
from shared.platform.clock import Clock, stockholm_date
from shared.platform.config import Settings
from shared.platform.retention import retention_task
from shared.platform.runtime import ServiceSpec

from . import editions, projections, rebuild
from .handlers import handlers, lock_batch
from .routes import router
from .uow import MetricsUnitOfWork

log = structlog.get_logger("metrics")


def spec(settings: Settings, clock: Clock | None = None) -> ServiceSpec:
    clock = clock or Clock.from_settings(settings)

    async def make_public_editions(runtime) -> None:
        """First, projections introduced after events were logged are built from the log.
        Then the public edition of each quarter and year once it has closed (plus the grace
        days), checked at start and every ``metrics_edition_check_seconds``; at start also
        again where the threshold or a definition changed."""
        replayed = await rebuild.catch_up(runtime.pool, settings.service_database_url("metrics"))
        if replayed:
            log.info("projections built from the event log", events=replayed)
        queue = runtime.topology.queue("metrics").name
        at_start = True
        while True:
            # an edition is frozen: not while events are still waiting (after an outage, say)
            if await topology.messages_waiting(settings.amqp_url, queue):
                await asyncio.sleep(min(settings.metrics_edition_check_seconds, 5.0))
                continue
            now = clock.now()
            # every figure of an edition from one snapshot
            async with runtime.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
                await editions.make_due(
                    MetricsUnitOfWork(conn),
                    today=stockholm_date(now),
                    grace_days=settings.metrics_edition_grace_days,
                    threshold=settings.suppression_threshold,
                    made_at=now,
                    at_start=at_start,
                )
            at_start = False
            await asyncio.sleep(settings.metrics_edition_check_seconds)

    async def gauges(runtime, conn) -> None:
        """The public editions' lag, for the alert on a publisher behind (read at scrape)."""
        lag = await editions.lag_seconds(
            MetricsUnitOfWork(conn), now=clock.now(), grace_days=settings.metrics_edition_grace_days
        )
        runtime.metrics.public_edition_lag_seconds.labels("metrics").set(lag)

    return ServiceSpec(
        name="metrics",
        description="Metrics: the board's figures from the event stream; exact figures for signed-in "
        "readers within their scope (every read logged), and frozen public editions of "
        "quarters and years with small counts protected; the dashboard, the report, CSV.",
        migrations=Path(__file__).parent / "migrations",
        handlers=handlers,
        unit_of_work=lambda conn, message: MetricsUnitOfWork(conn, message=message),
        lock_batch=lock_batch,
        clock=clock,
        routes=lambda runtime: router,
        tasks=(
            make_public_editions,
            retention_task("case-level data deleted after retention", projections.forget_closed_cases, settings),
        ),
        gauges=gauges,
        publishes=(
            (
                FiguresPublished,
                "The public edition of a quarter or a year, for the county and each "
                "municipality, once the period has closed (aggregates exchange, "
                "routing key FiguresPublished.<municipality|COUNTY>).",
            ),
        ),
    )
