"""The runtime's retry loop (``shared/platform/runtime.py``): background loops must not stop quietly."""

from __future__ import annotations

import asyncio
import time

import pytest

from shared.platform import runtime
from shared.platform.tasks import cancel_and_wait


async def test_a_cancellation_nobody_asked_for_is_retried_like_a_failure(monkeypatch):
    monkeypatch.setattr(runtime, "backoff_seconds", lambda *_: 0.0)
    attempts = []

    async def action():
        attempts.append(1)
        if len(attempts) == 1:
            raise asyncio.CancelledError()  # as a library may raise when a connection is lost under it
        if len(attempts) == 2:
            raise ConnectionError("lost")

    await asyncio.wait_for(runtime.retry_until_done("loop", action, max_delay=0.0), 5)
    assert len(attempts) == 3


async def test_cancelling_the_task_still_stops_it():
    started = asyncio.Event()

    async def action():
        started.set()
        await asyncio.sleep(60)

    task = asyncio.create_task(runtime.retry_until_done("loop", action, max_delay=0.0))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)


async def test_cancel_and_wait_stops_a_task_that_swallows_its_cancellation():
    async def swallows_once():
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            pass  # as 3.11's wait_for can, when what it waits for completes at that moment
        await asyncio.sleep(60)

    task = asyncio.create_task(swallows_once())
    await asyncio.sleep(0)
    assert await cancel_and_wait(task, timeout=2.0)
    assert task.cancelled()


async def test_cancel_and_wait_gives_up_on_a_task_that_never_ends_within_its_bound():
    release = asyncio.Event()

    async def refuses():
        while not release.is_set():
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(refuses())
    await asyncio.sleep(0)
    began = time.monotonic()
    assert not await cancel_and_wait(task, timeout=0.5)
    assert time.monotonic() - began < 1.0 and not task.done()
    release.set()
    task.cancel()
    await asyncio.wait({task}, timeout=1)
    assert task.done()
