"""A service started while its servers are away waits, reports not-ready, and recovers."""

from __future__ import annotations

import asyncio
from urllib.parse import urlparse

import pytest

from services.metrics import app as metrics_app
from shared.runtime import Runtime
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
