"""The metrics service: wiring, and the publisher of the figures and their snapshots."""

import asyncio
import time
from pathlib import Path

import asyncpg
import structlog

from shared.clock import Clock, stockholm_date
from shared.config import Settings
from shared.events import FiguresPublished
from shared.outbox import Emitter
from shared.runtime import ServiceSpec, application_name

from . import domain, figures, projections, publication, store
from .handlers import HANDLERS
from .routes import make_routes

log = structlog.get_logger("metrics")
SLOW_PUBLICATION_SECONDS = 60.0  # a publication slower than this is logged as a warning


def spec(settings: Settings, clock: Clock | None = None) -> ServiceSpec:
    clock = clock or Clock.from_settings(settings)
    threshold = settings.suppression_threshold

    async def catch_up(runtime) -> None:
        """Projections introduced after events were logged are built from the log once."""
        replayed = await projections.catch_up(runtime.pool)
        if replayed:
            log.info("projections built from the event log", events=replayed)

    async def publish_figures(runtime) -> None:
        """The publication (every figure of every period and scope, protected together) and the
        FiguresPublished snapshots of the current and the previous quarter, for every team and
        for all: at start, then when events have arrived since the last publication (checked
        every ``metrics_snapshot_seconds``, so a burst gives one) and at least every
        ``metrics_snapshot_schedule_seconds``."""
        while True:
            await publish_once(runtime)
            await asyncio.sleep(settings.metrics_snapshot_seconds)

    async def publish_once(runtime) -> None:
        began = time.monotonic()
        # a connection of its own, closed after each round whatever happens: the round holds a
        # lock for as long as it works, and a connection given back to the pool after a failure
        # mid-transaction could keep holding it (both instances then skip every round)
        conn = await asyncpg.connect(settings.service_database_url("metrics"), timeout=30, command_timeout=60,
                                     server_settings={"application_name": application_name("metrics-publisher")})
        try:
            # bounded: a round that hangs (whatever the cause) must not keep the lock for ever,
            # or every instance would skip every round from then on
            async with asyncio.timeout(settings.metrics_publication_timeout_seconds):
                await _publish_on(conn, began)
        except BaseException as exc:
            conn.terminate()
            if isinstance(exc, TimeoutError):
                log.error("figures publication given up: it took too long; starting again",
                          timeout_s=settings.metrics_publication_timeout_seconds)
            raise
        await conn.close(timeout=10)

    async def _publish_on(conn, began: float) -> None:
        async with conn.transaction():
            state = await store.lock_snapshot_state(conn)
            if state is None:
                return  # another instance is publishing
            seq, now = await store.last_seq(conn), clock.now()
            scheduled = (state["published_at"] is None or (now - state["published_at"]).total_seconds()
                         >= settings.metrics_snapshot_schedule_seconds)
            if not (seq > state["seq"] or scheduled):
                return
            today = stockholm_date(now)
            current = domain.parse_period(f"{today.year}Q{(today.month - 1) // 3 + 1}")
            # the quarter before too: late events and corrections still change it
            quarters = domain.quarters_back(current, 2)
            teams = await figures.teams(conn)
            republished = [year for year in sorted(set(await figures.years(conn)) | {q.start.year for q in quarters})
                           if await figures.publish_if_changed(conn, year, teams, threshold, now)]
            # snapshots: of the quarters whose figures were published again, or all on the schedule
            changed = [q for q in quarters if q.start.year in republished]
            emitted = quarters if scheduled else changed
            emit = Emitter(conn, "metrics").emit
            scopes = [(None, None)] + sorted(teams.items())
            for period in emitted:
                for team_id, municipality in scopes:
                    await emit(FiguresPublished(
                        period=period.label, period_start=period.start, period_end=period.end,
                        team_id=team_id or "ALL", municipality=municipality,
                        suppression_threshold=threshold,
                        figures=await store.published_figures(conn, period.label,
                                                              publication.scope_key(team_id)),
                        trigger="change" if period in changed else "schedule", published_at=now),
                        ordering_key=f"figures:{team_id or 'ALL'}")
            # the schedule counts from the last time every snapshot went out
            await store.snapshot_published(conn, seq, now if emitted == quarters else state["published_at"])
        seconds = round(time.monotonic() - began, 2)
        (log.warning if seconds > SLOW_PUBLICATION_SECONDS else log.info)(
            "figures published", period=current.label, years=republished, snapshots=len(scopes) * len(emitted),
            trigger="change" if changed else "schedule", seconds=seconds)

    return ServiceSpec(
        name="metrics",
        description="Metrics: the board's figures from the event stream, small counts suppressed; "
                    "the dashboard, the quarterly report, CSV export and aggregate snapshots.",
        migrations=Path(__file__).parent / "migrations",
        handlers=HANDLERS,
        routes=make_routes,
        tasks=(catch_up, publish_figures),
        publishes=((FiguresPublished, "Suppressed figures of the current and the previous quarter per team and for "
                                      "all, when they change (debounced) and on a schedule "
                                      "(aggregates exchange, routing key FiguresPublished.<team|ALL>)."),),
    )
