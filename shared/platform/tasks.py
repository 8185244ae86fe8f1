"""Stopping background tasks for sure, and within a bound.

A task that is cancelled does not always end: Python 3.11's ``asyncio.wait_for`` returns the
result instead of raising when what it waited for completes in the same loop turn as the
cancellation (the cancellation is lost, gh-86296), a library may catch ``CancelledError`` in a
clean-up, and a ``finally`` may wait on a connection that is gone. A service that waits for
such a task to end waits for ever. ``cancel_and_wait`` cancels again until the task has ended,
and gives up (saying where the task is stuck) after a bound, so that shutdown always ends.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterable
from typing import Any

import structlog

log = structlog.get_logger("tasks")

# How long a cancelled task gets to clean up before it is cancelled again.
RECANCEL_SECONDS = 0.25


# ``timeout`` here and in ``cancel_all`` (ASYNC109): a bound on how long a cancelled task gets,
# after which it is reported where it is stuck, which a caller's ``asyncio.timeout`` could not do
async def cancel_and_wait(task: asyncio.Task[Any] | None, *, timeout: float) -> bool:  # noqa: ASYNC109
    """Cancel ``task`` and wait until it has ended, cancelling it again while it goes on,
    for at most ``timeout`` seconds. True if it ended; False (and an error logged with its
    stack) if it did not."""
    if task is None:
        return True
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not task.done():
        remaining = deadline - loop.time()
        if remaining <= 0:
            stack = io.StringIO()
            task.print_stack(limit=12, file=stack)
            log.error("task did not stop when cancelled", task=task.get_name(), stack=stack.getvalue()[-2000:])
            return False
        task.cancel()
        await asyncio.wait({task}, timeout=min(RECANCEL_SECONDS, remaining))
    if not task.cancelled() and task.exception() is not None:
        log.debug(
            "task ended with an error while stopping", task=task.get_name(), error=type(task.exception()).__name__
        )
    return True


async def cancel_all(tasks: Iterable[asyncio.Task[Any]], *, timeout: float) -> bool:  # noqa: ASYNC109
    """``cancel_and_wait`` for several tasks at once; True if all ended."""
    results = await asyncio.gather(*(cancel_and_wait(t, timeout=timeout) for t in tasks))
    return all(results)
