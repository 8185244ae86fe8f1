"""The walking skeleton end to end: four service processes, an agency on plain aio-pika; the same
walk once more on servers that take TLS only (RabbitMQ on AMQPS, PostgreSQL with
sslmode=verify-full, the services on HTTPS)."""

from __future__ import annotations

import asyncio
import random
import ssl
from datetime import datetime
from urllib.parse import urlencode

import aio_pika
import asyncpg
import httpx
import pytest

from services.meeting.referral_api import ReferralApi
from shared.contracts.vocabulary import Party
from shared.platform.clock import STOCKHOLM
from shared.platform.config import with_database
from shared.platform.tls import client_verify as tls_client_verify
from tests.support import broker as amqp
from tests.support import tls
from tests.support.http import token
from tests.support.privacy import personnummer_in
from tests.support.referrals import send_referral, submit_referral
from tests.support.system import running_system
from tools.certs import Authority

pytestmark = pytest.mark.infra


@pytest.fixture
async def system(settings):
    async with running_system(settings) as processes:
        yield processes


@pytest.fixture
async def tls_system(tls_settings):
    async with running_system(tls_settings) as processes:
        yield processes


async def test_a_referral_command_becomes_a_case_counted_by_metrics(agencies, settings, system):
    await walk(agencies, settings, system)


async def test_the_walking_skeleton_over_tls(tls_servers, tls_agencies, tls_settings, tls_system, tmp_path):
    """Every connection is TLS with the other side's certificate verified: the services' and
    the agencies' to RabbitMQ (AMQPS, a client certificate each; the agencies log in by theirs
    alone), the services' to PostgreSQL (verify-full, client certificate), HTTPS between the
    services (the meeting service's calls to referral) and to them."""
    assert tls_settings.amqp_url.startswith("amqps://") and "sslmode=verify-full" in tls_settings.database_url
    assert tls_system.url("referral").startswith("https://")
    await walk(tls_agencies, tls_settings, tls_system)

    # the meeting service's client of the referral service, over HTTPS: an answer (consent
    # decides what), where a client that cannot verify the certificate gets none
    conn = await asyncpg.connect(tls_settings.service_database_url("referral"))
    try:
        case_ref = await conn.fetchval("SELECT case_ref FROM referrals LIMIT 1")
    finally:
        await conn.close()
    officer = token(tls_settings, party="AF", role="officer")["Authorization"]
    for verify, answered in ((tls_client_verify(tls_settings), True), (True, False)):
        referral = ReferralApi.at(tls_system.url("referral"), verify)
        try:
            answer = await referral.case_details(case_ref, authorization=officer, purpose="pre-meeting tls")
        finally:
            await referral.close()
        assert (answer.get("withheld") != "details_unavailable") is answered, answer

    # and nothing else gets in: no plain connection, no server unverified, no client without a certificate
    other_ca = Authority(tmp_path / "other-ca").ca_file
    plain = f"postgresql://postgres@127.0.0.1:{tls.PG_PORT}/postgres?sslmode=disable"
    for url in (plain, tls_servers.database_url(ca_file=other_ca)):
        with pytest.raises((OSError, asyncpg.PostgresError, ssl.SSLError)):
            await asyncpg.connect(url, timeout=10)
    without_certificate = (
        f"amqps://guest:guest@127.0.0.1:{tls.AMQPS_PORT}/?{urlencode({'cafile': tls_servers.ca_file})}"
    )
    for url in (
        f"amqp://guest:guest@127.0.0.1:{tls.AMQP_PLAIN_PORT}/",  # no plain listener
        without_certificate,
        tls_servers.amqp_url("guest", "guest", ca_file=other_ca),  # a broker not verified
    ):
        with pytest.raises((OSError, aio_pika.exceptions.AMQPError, ssl.SSLError)):
            await asyncio.wait_for(aio_pika.connect(url, timeout=10), 15)
    async with httpx.AsyncClient() as unverified:  # the system's CAs do not know the run's CA
        with pytest.raises(httpx.ConnectError):
            await unverified.get(tls_system.url("referral") + "/health/live")
        with pytest.raises(httpx.HTTPError):
            await unverified.get(tls_system.url("referral").replace("https:", "http:") + "/health/live")


async def walk(agencies, settings, system):
    """Fourteen referrals from three agencies become cases in every service and are counted by
    metrics; nothing personal reaches a log."""
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
    async with system.client("metrics") as client:

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

    async with system.client() as client:
        scraped = (await client.get(system.url("metrics") + "/metrics")).text
    assert 'trisam_messages_consumed_total{event_type="CaseReferred",service="metrics"} 14.0' in scraped

    logs = system.logs()
    assert '"case_ref": "TS-' in logs and '"correlation_id"' in logs
    assert personnummer_in(logs) == [], "a personnummer reached a log"
    assert not any(n.replace("-", "") in logs or n in logs for n in numbers)
