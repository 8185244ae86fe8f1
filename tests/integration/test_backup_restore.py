"""Backup and restore (tools/backup.py): the four databases restored into a fresh namespace, the
services started on it, are consistent with the broker they find there. Real RabbitMQ and
PostgreSQL."""

from __future__ import annotations

import asyncio
import random

import asyncpg
import pytest

from services.followup import app as followup_app
from services.meeting import app as meeting_app
from services.metrics import app as metrics_app
from services.referral import app as referral_app
from shared.contracts.vocabulary import Party
from shared.platform.runtime import Runtime
from tests.conftest import _remove_namespace, new_namespace
from tests.support import broker as amqp
from tests.support.agencies import take_replies
from tests.support.referrals import send_referral, submit_referral
from tools import backup

pytestmark = pytest.mark.infra

SPECS = {"referral": referral_app.spec, "meeting": meeting_app.spec, "followup": followup_app.spec}
# What must be the same in the restored system as in the original once both have caught up
STATE = {
    "referral": "SELECT count(*) FROM referrals",
    "meeting": "SELECT count(*) FROM inbox",
    "followup": "SELECT count(*) FROM inbox",
    "metrics": "SELECT count(*) FROM event_log",
    "metrics by type": "SELECT string_agg(t || ' ' || n, ', ' ORDER BY t) FROM"
    " (SELECT event_type AS t, count(*) AS n FROM event_log GROUP BY 1) c",
}

FIGURES = (
    "SELECT * FROM figure_cells"
    " ORDER BY day, measure, detail, team_id, municipality, referring_party, gender, age_band, income"
)


async def _count(settings, service: str, sql: str):
    conn = await asyncpg.connect(settings.service_database_url(service.split()[0]))
    try:
        value = await conn.fetchval(sql)
        return int(value) if isinstance(value, int) else value
    finally:
        await conn.close()


async def _state(settings) -> dict[str, int]:
    return {service: await _count(settings, service, sql) for service, sql in STATE.items()}


async def _referred(settings) -> int:
    return await _count(settings, "metrics", "SELECT count(*) FROM event_log WHERE event_type = 'CaseReferred'")


async def test_a_restored_backup_resumes_its_outboxes_applies_nothing_twice_and_keeps_the_figures(
    agencies, settings, runtimes, infra, tmp_path
):
    rng = random.Random(5)
    for make in SPECS.values():
        await runtimes(make(settings), settings)
    metrics = await runtimes(metrics_app.spec(settings), settings)
    for _ in range(4):
        await send_referral(agencies[Party.AF], settings.namespace, submit_referral(rng))
    await take_replies(agencies[Party.AF], settings.namespace, 4)
    await amqp.eventually(lambda: _at_least(settings, 4), what="4 referrals counted")

    # the metrics service stops; two more referrals: their events wait in its queue, on the
    # broker only, when the backup is taken
    await metrics.stop()
    for _ in range(2):
        await send_referral(agencies[Party.AF], settings.namespace, submit_referral(rng))
    await take_replies(agencies[Party.AF], settings.namespace, 2)
    await amqp.eventually(
        lambda: _waiting(settings, f"{settings.namespace}.metrics"), what="the metrics queue holding events"
    )
    manifest = await backup.backup(settings, tmp_path / "backup")
    assert set(manifest["databases"]) == {service.split()[0] for service in STATE} and await _referred(settings) == 4

    # restored into a fresh namespace (a fresh broker topology: the waiting events are not there)
    restored = settings.model_copy(update={"namespace": new_namespace()})
    started: list[Runtime] = []
    try:
        await _restored_and_compared(agencies, settings, restored, runtimes, started, tmp_path)
    finally:
        for runtime in started:
            await runtime.stop()
        await _remove_namespace(infra, restored.namespace)


async def _restored_and_compared(agencies, settings, restored, runtimes, started, tmp_path) -> None:
    resent = await backup.restore(restored, tmp_path / "backup")
    assert resent["referral"] >= 6  # every CaseReferred (and the agency's answers) sent again
    for make in (*SPECS.values(), metrics_app.spec):
        started.append(await runtimes(make(restored), restored))
    await amqp.eventually(lambda: _at_least(restored, 6), what="the resent events counted", timeout=60)

    # the original catches up too; then both hold the same, nothing applied twice
    await runtimes(metrics_app.spec(settings), settings)
    await amqp.eventually(lambda: _at_least(settings, 6), what="the original's metrics caught up")
    await amqp.eventually(lambda: _settled(restored), what="the restored outboxes sent")
    # both come to hold the same (what was applied twice would stay one ahead for ever)
    await amqp.eventually(lambda: _same(restored, settings), what="the same state in both", timeout=60)
    await asyncio.sleep(1.0)
    assert await _referred(restored) == 6
    assert await _state(restored) == await _state(settings)
    async with asyncpg.create_pool(restored.service_database_url("metrics"), min_size=1, max_size=1) as pool:
        figures = await pool.fetch(FIGURES)
    async with asyncpg.create_pool(settings.service_database_url("metrics"), min_size=1, max_size=1) as pool:
        assert figures == await pool.fetch(FIGURES)
    # the restored agencies' answers came again, each with the event_id the agency already has
    await take_replies(agencies[Party.AF], restored.namespace, 6)


async def _same(one, other) -> bool:
    return await _state(one) == await _state(other)


async def _at_least(settings, n: int) -> bool:
    return await _referred(settings) >= n


async def _waiting(settings, queue: str) -> bool:
    return await amqp.message_count(settings.amqp_url, queue) > 0


async def _settled(settings) -> bool:
    pending = [
        await _count(settings, service, "SELECT count(*) FROM outbox WHERE sent_at IS NULL")
        for service in backup.SERVICES
    ]
    return not any(pending)
