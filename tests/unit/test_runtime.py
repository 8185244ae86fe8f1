"""The runtime's retry loop (``shared/runtime.py``): background loops must not stop quietly."""

from __future__ import annotations

import asyncio

import pytest

from shared import runtime


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
