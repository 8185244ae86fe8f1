"""Retention, one mechanism for every service: a background task that, every
``retention_check_seconds``, applies the service's own rule to the cases closed longer ago than
the retention period (``TRISAM_RETENTION_DAYS``), in small units of work.

What each service does with such a case is its own (its ``domain.py`` says why, its store how):
the referral service destroys the personal data, the meeting and follow-up services delete their
case-level rows, the metrics service folds the case into anonymous counts and deletes its facts
and logged events. The rule takes the unit of work and the cut-off moment (cases closed before
it are due) and returns the cases it acted on, at most ``RETENTION_BATCH`` of them: a full
batch means more may be due at once, anything less that the service is through until the next
check.

    tasks=(retention_task("case-level data deleted after retention", followups.apply_retention, settings),)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    from shared.platform.config import Settings
    from shared.platform.runtime import Runtime

log = structlog.get_logger("retention")

# Cases one unit of work acts on at most (a short transaction: locks held briefly).
RETENTION_BATCH = 200

Rule = Callable[[Any, datetime], Awaitable[Sequence[str]]]


def retention_cutoff(now: datetime, retention: timedelta) -> datetime:
    """Cases closed before this moment have had their retention period."""
    return now - retention


def retention_task(what: str, rule: Rule, settings: Settings) -> Callable[[Runtime], Awaitable[None]]:
    """The background task (for ``ServiceSpec.tasks``) that applies ``rule`` to the cases due,
    batch after batch, then rests until the next check; ``what`` is logged with the count of
    cases (never their references) after each batch."""
    retention = timedelta(days=settings.retention_days)

    async def apply_retention(runtime: Runtime) -> None:
        while True:
            async with runtime.unit_of_work() as uow:
                done = await rule(uow, retention_cutoff(runtime.clock.now(), retention))
            if done:
                log.info(what, cases=len(done))
            if len(done) < RETENTION_BATCH:
                await asyncio.sleep(settings.retention_check_seconds)

    return apply_retention
