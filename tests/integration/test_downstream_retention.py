"""Retention downstream, on the real database: the meeting, follow-up and metrics services
delete their case-level rows of a case closed longer ago than the retention period (a
development clock moved on), and the metrics service's figures stay exact, also after a
rebuild."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.followup import app as followup_app
from services.meeting import app as meeting_app
from services.metrics import app as metrics_app
from shared.platform.clock import SettableClock
from tests.support import broker as amqp
from tests.support.metrics_history import rebuilt_as_owner
from tests.support.referrals import TEAM

pytestmark = pytest.mark.infra

START = datetime.now(UTC).replace(microsecond=0)
MEETING = f"{TEAM}-RETENTION"


def referred(case_ref: str) -> dict:
    return amqp.envelope(
        "CaseReferred",
        {
            "case_ref": case_ref,
            "team_id": TEAM,
            "municipality": "Gävle",
            "referring_party": "AF",
            "gender": "WOMAN",
            "age_band": "25-34",
            "income_source": "SJUKPENNING",
            "consented_parties": ["AF", "FK"],
            "wishes_to_attend": True,
            "violence_question_asked": True,
            "reason_codes": [],
            "referred_at": (START - timedelta(days=60)).isoformat(),
        },
    )


def not_consulted(case_ref: str) -> dict:
    """The meeting did not consult the case: the follow-up service closes it (at its clock)."""
    return amqp.envelope(
        "CaseNotConsulted",
        {
            "case_ref": case_ref,
            "team_id": TEAM,
            "municipality": "Gävle",
            "meeting_id": MEETING,
            "meeting_date": str((START - timedelta(days=40)).date()),
            "referring_party": "AF",
            "reason": "handled_elsewhere",
            "recorded_at": START.isoformat(),
        },
    )


async def rows(runtime, query: str, *args) -> list:
    async with runtime.pool.acquire() as conn:
        return [tuple(r.values()) for r in await conn.fetch(query, *args)]


async def test_downstream_services_delete_case_level_rows_after_retention_and_the_figures_stay(settings, runtimes):
    settings = settings.model_copy(update={"retention_days": 30, "retention_check_seconds": 0.2})
    clock = SettableClock(START)
    meeting, followup, metrics = [
        await runtimes(app.spec(settings, clock=clock), settings) for app in (meeting_app, followup_app, metrics_app)
    ]
    events = settings.namespace + ".events"
    scheduled = amqp.envelope(
        "MeetingScheduled",
        {
            "meeting_id": MEETING,
            "team_id": TEAM,
            "municipality": "Gävle",
            "meeting_date": str((START - timedelta(days=40)).date()),
            "starts_at": (START - timedelta(days=40)).isoformat(),
            "cutoff_at": (START - timedelta(days=47)).isoformat(),
            "capacity": 6,
        },
    )
    await amqp.publish(settings.amqp_url, events, "MeetingScheduled", scheduled)
    for case_ref in ("TS-RETENTIONOLD", "TS-RETENTIONNEW"):
        await amqp.publish(settings.amqp_url, events, "CaseReferred", referred(case_ref))

    async def known(case_ref):
        async def everywhere():
            return (
                await rows(meeting, "SELECT 1 FROM cases WHERE case_ref = $1", case_ref)
                and await rows(followup, "SELECT 1 FROM tracked_cases WHERE case_ref = $1", case_ref)
                and await rows(metrics, "SELECT 1 FROM case_facts WHERE case_ref = $1", case_ref)
            )

        await amqp.eventually(everywhere, what=f"{case_ref} known to every service")

    async def closed_everywhere(case_ref):
        async def closed():
            return await rows(
                meeting, "SELECT 1 FROM cases WHERE case_ref = $1 AND closed_at IS NOT NULL", case_ref
            ) and await rows(
                metrics, "SELECT 1 FROM case_facts WHERE case_ref = $1 AND closed_on IS NOT NULL", case_ref
            )

        await amqp.eventually(closed, what=f"{case_ref} closed everywhere")

    await known("TS-RETENTIONOLD")
    await known("TS-RETENTIONNEW")
    await amqp.publish(settings.amqp_url, events, "CaseNotConsulted", not_consulted("TS-RETENTIONOLD"))
    await closed_everywhere("TS-RETENTIONOLD")
    clock.advance(days=10)
    await amqp.publish(settings.amqp_url, events, "CaseNotConsulted", not_consulted("TS-RETENTIONNEW"))
    await closed_everywhere("TS-RETENTIONNEW")
    [(closed_by,)] = await rows(followup, "SELECT closed_by FROM tracked_cases WHERE case_ref = 'TS-RETENTIONOLD'")
    assert closed_by == "system:not_consulted"

    cells = "SELECT * FROM figure_cells ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9"
    figures = await rows(metrics, cells)
    assert any(r[1] == "meeting_held" for r in figures)  # the meeting counts as held by its cases

    clock.advance(days=25)  # the old case closed 35 days ago, the new one 25: only the old is due

    async def forgotten():
        return (
            not await rows(meeting, "SELECT 1 FROM cases WHERE case_ref = 'TS-RETENTIONOLD'")
            and not await rows(followup, "SELECT 1 FROM tracked_cases WHERE case_ref = 'TS-RETENTIONOLD'")
            and not await rows(metrics, "SELECT 1 FROM case_facts WHERE case_ref = 'TS-RETENTIONOLD'")
        )

    await amqp.eventually(forgotten, what="the old case's rows deleted by every service")
    for runtime in (meeting, followup):
        assert not await rows(runtime, "SELECT 1 FROM consent_state WHERE case_ref = 'TS-RETENTIONOLD'")
    assert not await rows(metrics, "SELECT 1 FROM event_log WHERE payload->>'case_ref' = 'TS-RETENTIONOLD'")
    # the recent case stays everywhere, and the meeting (the team's, not the case's)
    assert await rows(meeting, "SELECT 1 FROM cases WHERE case_ref = 'TS-RETENTIONNEW'")
    assert await rows(followup, "SELECT 1 FROM tracked_cases WHERE case_ref = 'TS-RETENTIONNEW'")
    assert await rows(metrics, "SELECT 1 FROM event_log WHERE payload->>'case_ref' = 'TS-RETENTIONNEW'")
    # the figures are as they were, and a rebuild from what is left gives them again
    assert await rows(metrics, cells) == figures
    await rebuilt_as_owner(metrics.settings)
    assert await rows(metrics, cells) == figures
