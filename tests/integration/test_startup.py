"""A service started while its servers are away waits, reports not-ready, and recovers."""

from __future__ import annotations

import asyncio
from urllib.parse import urlparse

import pytest

from services.metrics import app as metrics_app
from shared.platform.runtime import Runtime
from tests.support import broker as amqp
from tests.support.proxy import CuttableProxy

pytestmark = pytest.mark.infra


@pytest.mark.timeout(120)
async def test_a_service_started_before_the_broker_becomes_ready_by_itself(settings):
    target = urlparse(settings.amqp_url)
    proxy = CuttableProxy(target.hostname, target.port or 5672)
    await proxy.start()
    port = proxy.port
    await proxy.stop()  # nothing listens on the port: the "broker" is down
    late = settings.model_copy(update={"amqp_url": proxy.url_for(settings.amqp_url)})
    runtime = Runtime(metrics_app.spec(late), late)
    runtime.start_in_background()
    try:
        await asyncio.sleep(2.0)
        assert not any((await runtime.is_ready()).values())

        # the broker comes back on the same port
        proxy = await CuttableProxy(target.hostname, target.port or 5672).start(port)

        async def ready():
            return all((await runtime.is_ready()).values())

        await amqp.eventually(ready, timeout=60, what="ready after the broker returned")
    finally:
        await runtime.stop()
        await proxy.stop()


@pytest.mark.timeout(120)
async def test_a_service_started_before_the_database_becomes_ready_by_itself_and_loses_nothing(settings, agencies):
    from services.referral import app as referral_app
    from shared.contracts.vocabulary import Party
    from tests.support.referrals import send_referral, submit_referral

    target = urlparse(settings.database_url)
    proxy = await CuttableProxy(target.hostname, target.port or 5432).start()
    port = proxy.port
    await proxy.stop()  # the "database" is down
    late = settings.model_copy(update={"database_url": proxy.url_for(settings.database_url)})
    runtime = Runtime(referral_app.spec(late), late)
    runtime.start_in_background()
    try:
        await asyncio.sleep(2.0)
        assert not all((await runtime.is_ready()).values())
        # an agency refers someone meanwhile: the queue keeps it (declared by the test here)
        from shared.platform import topology as topo

        await topo.declare(settings.amqp_url, runtime.topology)
        await send_referral(agencies[Party.FK], settings.namespace, submit_referral())

        proxy = await CuttableProxy(target.hostname, target.port or 5432).start(port)

        async def ready():
            return all((await runtime.is_ready()).values())

        await amqp.eventually(ready, timeout=60, what="ready after the database returned")

        async def referred():
            async with runtime.pool.acquire() as conn:
                return await conn.fetchval("SELECT count(*) FROM referrals") == 1

        await amqp.eventually(referred, timeout=30, what="the referral sent during the outage")
    finally:
        await runtime.stop()
        await proxy.stop()
