"""The gauges the alert rules need (deploy/prometheus/alerts.yml), read from /metrics as
Prometheus would: computed when scraped, from the service's own database."""

from __future__ import annotations

import pytest

from services.followup import app as followup_app
from services.metrics import app as metrics_app
from services.referral import app as referral_app
from tests.support.http import client_for

pytestmark = pytest.mark.infra


async def scrape(runtime) -> dict[str, float]:
    async with client_for(runtime) as api:
        text = (await api.get("/metrics")).text
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


async def test_readiness_and_the_oldest_event_waiting_in_the_outbox(settings, runtimes):
    referral = await runtimes(referral_app.spec(settings), settings)
    scraped = await scrape(referral)
    assert scraped['trisam_service_ready{service="referral"}'] == 1.0
    assert scraped['trisam_outbox_oldest_pending_seconds{service="referral"}'] == 0.0
    async with referral.pool.acquire() as conn:  # an event the relay will not try for an hour
        await conn.execute(
            """INSERT INTO outbox (event_id, event_type, exchange, routing_key, ordering_key, correlation_id,
                                   body, occurred_at, created_at, next_attempt_at)
               VALUES (gen_random_uuid(), 'CaseReferred', 'events', 'CaseReferred', 'TS-ALERT', 'c', '{}',
                       now(), now() - interval '90 seconds', now() + interval '1 hour')"""
        )
    scraped = await scrape(referral)
    assert scraped['trisam_outbox_backlog{service="referral"}'] == 1.0
    assert 90.0 <= scraped['trisam_outbox_oldest_pending_seconds{service="referral"}'] < 120.0
    await referral.stop()
    assert (await scrape(referral))['trisam_service_ready{service="referral"}'] == 0.0


async def test_follow_ups_unrecorded_long_after_their_escalation(settings, runtimes):
    followup = await runtimes(followup_app.spec(settings), settings)  # overdue after 14 days
    async with followup.pool.acquire() as conn:
        await conn.execute("INSERT INTO tracked_cases (case_ref, referring_party) VALUES ('TS-ESC', 'AF')")
        for kind, escalated_days_ago, status in (
            ("plan_check", 20, "due"),  # counted
            ("six_months", 3, "due"),  # escalated, but not long ago
            ("twelve_months", 40, "completed"),  # recorded since
        ):
            await conn.execute(
                """INSERT INTO followups (followup_id, case_ref, kind, team_id, municipality, referring_party,
                                          responsible_party, consultation_held_on, due_on, status, escalated_at)
                   VALUES ($1, 'TS-ESC', $2, 'GAVLE-BRYNAS', 'Gävle', 'AF', 'AF', '2026-01-01', '2026-03-01', $3,
                           now() - make_interval(days => $4))""",
                f"TS-ESC.{kind}",
                kind,
                status,
                escalated_days_ago,
            )
    scraped = await scrape(followup)
    assert scraped['trisam_followups_unrecorded_after_escalation{service="followup"}'] == 1.0


async def test_the_public_editions_lag_is_exported(settings, runtimes):
    metrics = await runtimes(metrics_app.spec(settings), settings)
    scraped = await scrape(metrics)  # nothing counted yet: nothing due (lag rules: unit tests)
    assert scraped['trisam_public_edition_lag_seconds{service="metrics"}'] == 0.0
