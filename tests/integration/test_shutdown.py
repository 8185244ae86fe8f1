"""A service stops within a few seconds whatever it is doing, a lost connection included.

Each case puts a real runtime (real RabbitMQ and PostgreSQL) in a state where a stop used to
hang, or could: its relay mid-publish with its database connections terminated, its relay
woken in the same moment as it is cancelled (Python 3.11's ``wait_for`` then lost the
cancellation), its claim blocked behind a lock, a consumer mid-handler through a database
outage, a scheduler in a query that does not return. Each asserts the stop took under
``STOP_BOUND`` seconds. ``TRISAM_SHUTDOWN_ROUNDS`` repeats each case (5 in ``make test``;
run it with 100 to look for a rare hang).
"""

from __future__ import annotations

import asyncio
import os
import time

import asyncpg
import pytest

from services.followup import app as followup_app
from services.referral import app as referral_app
from shared.contracts import CaseReferred
from shared.contracts.vocabulary import Party
from shared.platform.config import Settings
from shared.platform.runtime import Runtime
from shared.platform.topology import EVENTS
from tests.integration.test_messaging import case_referred_envelope
from tests.support import broker as amqp
from tests.support.referrals import send_referral, submit_referral

pytestmark = pytest.mark.infra

STOP_BOUND = 5.0
ROUNDS = int(os.environ.get("TRISAM_SHUTDOWN_ROUNDS", "5"))


async def timed_stop(runtime: Runtime) -> float:
    began = time.monotonic()
    await asyncio.wait_for(runtime.stop(), 60)  # a hang fails here at worst; the bound is below
    return time.monotonic() - began


async def terminate_backends(settings: Settings, service: str) -> int:
    admin = await asyncpg.connect(settings.database_url)
    try:
        return await admin.fetchval(
            """SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
               WHERE datname = $1 AND pid <> pg_backend_pid()""",
            settings.database_name(service),
        )
    finally:
        await admin.close()


async def started(spec, settings: Settings) -> Runtime:
    runtime = Runtime(spec, settings)
    await runtime.start()
    return runtime


async def test_a_relay_stuck_mid_publish_whose_connections_are_terminated_stops(agencies, settings):
    for round_ in range(ROUNDS):
        runtime = Runtime(referral_app.spec(settings), settings)
        mid_cycle = asyncio.Event()

        async def stubborn_publish(_event):
            mid_cycle.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:  # a clean-up that itself waits for something lost
                await asyncio.Event().wait()

        runtime._publish_pending = stubborn_publish
        await runtime.start()
        try:
            await send_referral(agencies[Party.AF], settings.namespace, submit_referral())
            await asyncio.wait_for(mid_cycle.wait(), 20)
            assert await terminate_backends(settings, "referral") >= 1
            seconds = await timed_stop(runtime)
        finally:
            await runtime.stop()
        assert seconds < STOP_BOUND, f"round {round_}: stop took {seconds:.1f}s"


async def test_a_relay_woken_as_it_is_cancelled_stops(settings):
    """The hang CI saw: the relay waits for a wake-up or its poll; the wake-up and the
    cancellation arrive in the same loop turn. With asyncio.wait_for (3.11) the cancellation
    was lost and the relay ran on for ever, its stop waiting for it."""
    runtime = await started(referral_app.spec(settings), settings)
    try:
        for round_ in range(ROUNDS * 4):
            relay = runtime.relay
            await asyncio.sleep(0.05)  # the relay is idle, waiting for a wake-up
            relay.wake()
            began = time.monotonic()
            await asyncio.wait_for(relay.stop(), 30)
            seconds = time.monotonic() - began
            assert not relay.running and seconds < STOP_BOUND, f"round {round_}: {seconds:.1f}s"
            relay.start()  # again, for the next round
    finally:
        seconds = await timed_stop(runtime)
    assert seconds < STOP_BOUND


async def test_a_relay_whose_claim_waits_behind_a_lock_stops(settings):
    runtime = await started(referral_app.spec(settings), settings)
    locker = await asyncpg.connect(settings.service_database_url("referral"))
    try:
        for round_ in range(ROUNDS):
            async with locker.transaction():
                await locker.execute("LOCK TABLE outbox IN ACCESS EXCLUSIVE MODE")
                runtime.relay.wake()
                await amqp.eventually(lambda: _waiting_on_lock(locker), what=f"the relay blocked in round {round_}")
                if round_ % 2:  # and its connection lost while it waits
                    assert await terminate_others(locker) >= 1
                seconds = await timed_stop(runtime)
            assert seconds < STOP_BOUND, f"round {round_}: stop took {seconds:.1f}s"
            await runtime.start()
    finally:
        await locker.close()
        await runtime.stop()


async def _waiting_on_lock(conn: asyncpg.Connection) -> bool:
    await conn.execute("SELECT pg_stat_clear_snapshot()")  # (taken once per transaction)
    return bool(
        await conn.fetchval(
            """SELECT count(*) FROM pg_stat_activity
           WHERE datname = current_database() AND wait_event_type = 'Lock'
             AND pid <> pg_backend_pid()"""
        )
    )


async def terminate_others(conn: asyncpg.Connection) -> int:
    return await conn.fetchval(
        """SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
           WHERE datname = current_database() AND pid <> pg_backend_pid()"""
    )


async def test_a_consumer_mid_handler_through_a_database_outage_stops(settings):
    """Each round, one delivery (the round's new case) hangs in its handler with its
    transaction open. Earlier rounds' cases come back at each start (left unacked by the stop)
    and are applied for real: were they to hang too, they would hold the group-commit worker
    and the pool, and the round's case could not even begin. The stopped runtime's backends
    (still in ``pg_sleep``, holding the inbox rows of their cases) are ended before the next
    start, as a real database ends them when their query returns."""
    spec = followup_app.spec(settings)
    entered = asyncio.Event()
    real = spec.handlers.get(CaseReferred)
    hanging_case = ""

    async def hanging_handler(event, uow):
        if event.case_ref == hanging_case:
            entered.set()
            await uow.conn.execute("SELECT pg_sleep(60)")  # the transaction open, the query running
        await real(event, uow)

    spec.handlers = spec.handlers.replaced(CaseReferred, hanging_handler)
    runtime = await started(spec, settings)
    try:
        for round_ in range(ROUNDS):
            entered.clear()
            hanging_case = f"TS-STOP{round_:010d}"
            await amqp.publish(
                settings.amqp_url,
                f"{settings.namespace}.{EVENTS}",
                "CaseReferred",
                case_referred_envelope(hanging_case),
            )
            await asyncio.wait_for(entered.wait(), 20)
            if round_ % 2:
                assert await terminate_backends(settings, "followup") >= 1
            seconds = await timed_stop(runtime)
            assert seconds < STOP_BOUND, f"round {round_}: stop took {seconds:.1f}s"
            hanging_case = ""  # (before the start: the case comes back at once)
            await terminate_backends(settings, "followup")
            await runtime.start()
    finally:
        await runtime.stop()


async def test_a_scheduler_in_a_query_that_does_not_return_stops(settings):
    in_query = asyncio.Event()

    async def scheduler(runtime) -> None:
        async with runtime.pool.acquire() as conn:
            in_query.set()
            await conn.execute("SELECT pg_sleep(60)")

    spec = followup_app.spec(settings)
    spec.tasks = spec.tasks + (scheduler,)
    for round_ in range(ROUNDS):
        in_query.clear()
        runtime = await started(spec, settings)
        try:
            await asyncio.wait_for(in_query.wait(), 20)
            if round_ % 2:
                assert await terminate_backends(settings, "followup") >= 1
            seconds = await timed_stop(runtime)
        finally:
            await runtime.stop()
        assert seconds < STOP_BOUND, f"round {round_}: stop took {seconds:.1f}s"
