"""Cut connections between the services and the broker: nothing lost, nothing applied twice."""

from __future__ import annotations

import asyncio
import random
from urllib.parse import urlparse

import pytest

from services.metrics import app as metrics_app
from services.referral import app as referral_app
from shared.contracts.vocabulary import Party
from tests.support import broker as amqp
from tests.support.proxy import CuttableProxy
from tests.support.referrals import send_referral, submit_referral

pytestmark = pytest.mark.infra


@pytest.mark.timeout(240)
async def test_cut_broker_connections_lose_nothing_and_duplicate_nothing(agencies, settings, runtimes):
    target = urlparse(settings.amqp_url)
    proxy = await CuttableProxy(target.hostname, target.port or 5672).start()
    through_proxy = settings.model_copy(update={"amqp_url": proxy.url_for(settings.amqp_url)})
    try:
        referral = await runtimes(referral_app.spec(through_proxy), through_proxy)
        metrics = await runtimes(metrics_app.spec(through_proxy), through_proxy)
        rng = random.Random(11)
        total, cuts = 300, 0
        for i in range(total):
            # the agency itself talks to the broker directly
            await send_referral(agencies[Party.FK], settings.namespace, submit_referral(rng))
            if i % 50 == 25:
                await amqp.eventually(
                    _both_connected(proxy), timeout=30, what="both services reconnected through the proxy"
                )
                cuts += 1
                proxy.cut()
        assert cuts >= 5
        await amqp.eventually(_both_connected(proxy), timeout=30, what="reconnected after the last cut")

        async def counted():  # CaseReferred applied by metrics (its event log: one row per event)
            async with metrics.pool.acquire() as conn:
                return await conn.fetchval("SELECT count(*) FROM event_log WHERE event_type = 'CaseReferred'")

        async def all_counted():
            return await counted() >= total

        try:
            await amqp.eventually(all_counted, timeout=120, what=f"all {total} referrals counted")
        except AssertionError as stuck:  # say where they are
            raise AssertionError(f"{stuck}; {await _where_they_are(settings, referral, metrics, proxy)}") from None
        await asyncio.sleep(1.0)
        assert await counted() == total, "each referral counted exactly once"
        async with referral.pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM referrals") == total
            assert await conn.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 0
        for queue in _queues(settings):
            assert await amqp.message_count(settings.amqp_url, queue) == 0
        assert await amqp.message_count(settings.amqp_url, f"{settings.namespace}.metrics.dead") == 0
    finally:
        await proxy.stop()


def _queues(settings) -> list[str]:
    """The queues the referrals pass through: the agencies' intake, referral's and metrics'."""
    intake = [f"{settings.namespace}.referral.intake.{party.value}" for party in Party]
    return [f"{settings.namespace}.referral", f"{settings.namespace}.metrics", *intake]


async def _where_they_are(settings, referral, metrics, proxy: CuttableProxy) -> dict:
    async with referral.pool.acquire() as conn:
        facts = {
            "referrals": await conn.fetchval("SELECT count(*) FROM referrals"),
            "unsent": await conn.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL"),
        }
    async with metrics.pool.acquire() as conn:
        facts["counted"] = await conn.fetchval("SELECT count(*) FROM event_log WHERE event_type = 'CaseReferred'")
    for queue in _queues(settings):
        facts[queue] = await amqp.queue_state(settings.amqp_url, queue)
    facts["connections through the proxy"] = proxy.open_connections
    return facts


def _both_connected(proxy: CuttableProxy):
    async def check() -> bool:
        return proxy.open_connections >= 2

    return check
