"""The metrics service: wiring, and the publisher of aggregate snapshots."""

import asyncio
from pathlib import Path

import structlog

from shared.clock import Clock, stockholm_date
from shared.config import Settings
from shared.events import FiguresPublished
from shared.outbox import Emitter
from shared.runtime import ServiceSpec

from . import domain, figures, projections, store
from .handlers import HANDLERS
from .routes import make_routes

log = structlog.get_logger("metrics")


def spec(settings: Settings, clock: Clock | None = None) -> ServiceSpec:
    clock = clock or Clock.from_settings(settings)
    threshold = settings.suppression_threshold

    async def catch_up(runtime) -> None:
        """Projections introduced after events were logged are built from the log once."""
        replayed = await projections.catch_up(runtime.pool)
        if replayed:
            log.info("projections built from the event log", events=replayed)

    async def publish_snapshots(runtime) -> None:
        """FiguresPublished for the current quarter, for every team and for all: when events
        have arrived since the last snapshot (checked every ``metrics_snapshot_seconds``, so a
        burst gives one snapshot) and at least every ``metrics_snapshot_schedule_seconds``."""
        while True:
            await asyncio.sleep(settings.metrics_snapshot_seconds)
            async with runtime.pool.acquire() as conn, conn.transaction():
                state = await store.lock_snapshot_state(conn)
                if state is None:
                    continue  # another instance is publishing
                seq, now = await store.last_seq(conn), clock.now()
                changed = seq > state["seq"]
                scheduled = (state["published_at"] is None or (now - state["published_at"]).total_seconds()
                             >= settings.metrics_snapshot_schedule_seconds)
                if not (changed or scheduled):
                    continue
                today = stockholm_date(now)
                current = domain.parse_period(f"{today.year}Q{(today.month - 1) // 3 + 1}")
                # the quarter before too: late events and corrections still change it
                periods = domain.quarters_back(current, 2)
                emit = Emitter(conn, "metrics").emit
                teams = [(None, None)] + [(t["team_id"], t["municipality"]) for t in await store.teams(conn)]
                for period in periods:
                    for team_id, municipality in teams:
                        raw = await figures.raw_figures(conn, figures.Filter(period, team_id=team_id))
                        await emit(FiguresPublished(
                            period=period.label, period_start=period.start, period_end=period.end,
                            team_id=team_id or "ALL", municipality=municipality,
                            suppression_threshold=threshold, figures=figures.publish(raw, threshold),
                            trigger="change" if changed else "schedule", published_at=now),
                            ordering_key=f"figures:{team_id or 'ALL'}")
                await store.snapshot_published(conn, seq, now)
            log.info("aggregate snapshots published", period=current.label,
                     snapshots=len(teams) * len(periods),
                     trigger="change" if changed else "schedule")

    return ServiceSpec(
        name="metrics",
        description="Metrics: the board's figures from the event stream, small counts suppressed; "
                    "the dashboard, the quarterly report, CSV export and aggregate snapshots.",
        migrations=Path(__file__).parent / "migrations",
        handlers=HANDLERS,
        routes=make_routes,
        tasks=(catch_up, publish_snapshots),
        publishes=((FiguresPublished, "Suppressed figures of the current and the previous quarter per team and for "
                                      "all, when they change (debounced) and on a schedule "
                                      "(aggregates exchange, routing key FiguresPublished.<team|ALL>)."),),
    )
