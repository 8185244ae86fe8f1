"""The walking skeleton end to end: four service processes, an agency on plain aio-pika."""

from __future__ import annotations

import asyncio
import random
from datetime import datetime

import asyncpg
import httpx
import pytest

from shared.contracts.vocabulary import Party
from shared.platform.clock import STOCKHOLM
from shared.platform.config import with_database
from tests.support import broker as amqp
from tests.support.http import token
from tests.support.privacy import personnummer_in
from tests.support.referrals import send_referral, submit_referral
from tests.support.system import running_system

pytestmark = pytest.mark.infra


@pytest.fixture
async def system(settings):
    async with running_system(settings) as processes:
        yield processes


async def test_a_referral_command_becomes_a_case_counted_by_metrics(agencies, settings, system):
    rng = random.Random(2026)
    sent = {"AF": 7, "FK": 2, "KOMMUN": 5}
    numbers = []
    first_af = None
    for party, n in sent.items():
        for _ in range(n):
            command = submit_referral(rng)
            numbers.append(command["payload"]["personnummer"])
            first_af = first_af or command
            await send_referral(agencies[Party(party)], settings.namespace, command)
    # the agency resubmits one referral (same agency reference, new message): no new case
    again = submit_referral(rng, agency_ref=first_af["payload"]["agency_ref"])
    await send_referral(agencies[Party.AF], settings.namespace, again)

    total = sum(sent.values())
    for service, table in (
        ("meeting", "cases"),
        ("followup", "tracked_cases"),
        ("referral", "referrals"),
        ("metrics", "case_facts"),
    ):
        conn = await asyncpg.connect(with_database(settings.database_url, settings.database_name(service)))
        try:

            async def all_there():
                return await conn.fetchval(f"SELECT count(*) FROM {table}") >= total

            await amqp.eventually(all_there, timeout=20, what=f"{total} cases in {service}")
            await asyncio.sleep(0.3)
            assert await conn.fetchval(f"SELECT count(*) FROM {table}") == total, service

            async def outbox_sent():
                return await conn.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 0

            await amqp.eventually(outbox_sent, timeout=20, what=f"the {service} outbox to drain")
        finally:
            await conn.close()

    # the board reads the quarter exactly, as soon as every case is counted
    today = datetime.now(STOCKHOLM).date()
    board = token(settings, party=None, role="board", user="board-chair")
    async with httpx.AsyncClient(base_url=system.url("metrics")) as client:

        async def figures():
            answer = await client.get(
                "/api/v1/figures", headers=board, params={"period": f"{today.year}Q{(today.month - 1) // 3 + 1}"}
            )
            body = answer.json() if answer.status_code == 200 else None
            return body if body and body["figures"]["cases_referred"]["value"] == 14 else None

        body = await amqp.eventually(figures, timeout=60, what="metrics to count every referral")
        assert body["figures"]["cases_referred"]["by"]["referring_party"] == {
            "AF": 7,
            "FK": 2,
            "KOMMUN": 5,
            "REGION": 0,
        }

    async with httpx.AsyncClient() as client:
        scraped = (await client.get(system.url("metrics") + "/metrics")).text
    assert 'trisam_messages_consumed_total{event_type="CaseReferred",service="metrics"} 14.0' in scraped

    logs = system.logs()
    assert '"case_ref": "TS-' in logs and '"correlation_id"' in logs
    assert personnummer_in(logs) == [], "a personnummer reached a log"
    assert not any(n.replace("-", "") in logs or n in logs for n in numbers)
