"""The full path over the real broker: an agency's SubmitReferral becomes a case, is scheduled on
its team's next meeting, shows on the pre-meeting agenda with identity and question only to
members whose party has consent (fetched from the referral service, audited there), and its
consultation is announced as ConsultationHeld without personal data."""

from __future__ import annotations

import json
import random
from datetime import date, datetime

import httpx
import pytest

from services.meeting import app as meeting_app
from services.meeting.referral_api import ReferralApi
from services.referral import app as referral_app
from shared.contracts.vocabulary import Party
from shared.platform.clock import STOCKHOLM, SettableClock
from shared.platform.runtime import build_app
from tests.support import broker as amqp
from tests.support.agencies import take_replies
from tests.support.http import client_for, token
from tests.support.meetings import START
from tests.support.privacy import personnummer_in
from tests.support.referrals import TEAM, send_command, send_referral, submit_referral

pytestmark = pytest.mark.infra

# GAVLE-BRYNAS (deploy/teams.json) meets every other Tuesday 09:00, cut-off 5 days before
FIRST = date(2026, 12, 1)
MEETING = f"{TEAM}-{FIRST:%Y%m%d}"


async def test_from_submit_referral_to_consultation_held(agencies, settings, runtimes):
    referral = await runtimes(referral_app.spec(settings), settings)
    referral_http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=build_app(referral)), base_url="http://referral"
    )
    clock = SettableClock(START)
    fast = settings.model_copy(update={"meeting_check_seconds": 0.1})
    async with amqp.EventTap(settings.amqp_url, settings.namespace) as tap:
        meeting = await runtimes(meeting_app.spec(fast, clock, ReferralApi(referral_http)), fast)
        await tap.wait_for("MeetingScheduled", 1, meeting_id=MEETING, timeout=30)

        command = submit_referral(random.Random(11))
        personnummer = command["payload"]["personnummer"]
        await send_referral(agencies[Party.KOMMUN], settings.namespace, command)
        [accepted] = await take_replies(agencies[Party.KOMMUN], settings.namespace, 1)
        case_ref = accepted["payload"]["case_ref"]
        [scheduled] = await tap.wait_for("CaseScheduled", case_ref=case_ref)
        assert scheduled["meeting_id"] == MEETING

        # AF's consent is withdrawn (AF does not postpone by default): the case stays, AF sees less
        withdraw = amqp.envelope(
            "WithdrawConsent",
            {"case_ref": case_ref, "party": "AF", "withdrawn_on": "2026-11-23", "on_behalf_of_individual": True},
        )
        await send_command(agencies[Party.KOMMUN], settings.namespace, withdraw)

        async def applied():
            async with meeting.pool.acquire() as conn:
                return (
                    await conn.fetchval(
                        "SELECT status FROM consent_state WHERE case_ref = $1 AND party = 'AF'", case_ref
                    )
                    == "withdrawn"
                )

        await amqp.eventually(applied, what="the meeting service to apply the withdrawal")

        clock.set(datetime(2026, 11, 26, 10, 0, tzinfo=STOCKHOLM))  # past the cut-off
        async with client_for(meeting) as api:

            async def fixed():
                found = (await api.get(f"/api/v1/meetings/{MEETING}", headers=coordinator)).json()
                return found["status"] == "closed" and found

            coordinator = token(settings, party="REGION", role="coordinator", teams=[TEAM], user="rk-brynas")
            agenda = (await amqp.eventually(fixed, what="the agenda to be fixed"))["agenda"]
            assert [item["case_ref"] for item in agenda] == [case_ref]

            fk = token(settings, party="FK", role="member", teams=[TEAM], user="fk-brynas")
            seen = (await api.get(f"/api/v1/meetings/{MEETING}/pre-meeting-agenda", headers=fk)).json()
            [item] = seen["agenda"]
            assert item["details"]["personnummer"] == personnummer.replace("-", "")
            assert item["details"]["question"] == command["payload"]["question"]
            af = token(settings, party="AF", role="member", teams=[TEAM], user="af-brynas")
            [hidden] = (await api.get(f"/api/v1/meetings/{MEETING}/pre-meeting-agenda", headers=af)).json()["agenda"]
            assert hidden["withheld"] == "no_consent" and "details" not in hidden
            assert personnummer_in(json.dumps(hidden)) == []
            stranger = token(settings, party="FK", role="member", teams=["SANDVIKEN-NORR"])
            assert (
                await api.get(f"/api/v1/meetings/{MEETING}/pre-meeting-agenda", headers=stranger)
            ).status_code == 403

            clock.set(datetime(2026, 12, 1, 10, 30, tzinfo=STOCKHOLM))
            held = await api.post(
                f"/api/v1/meetings/{MEETING}/cases/{case_ref}/consultation",
                json={
                    "outcome": "held",
                    "held_on": "2026-12-01",
                    "parties_present": ["FK", "KOMMUN", "REGION"],
                    "others_invited": [],
                    "individual_attended": False,
                    "actions": [{"type": "joint_mapping", "responsible_party": "KOMMUN", "due_on": "2027-01-15"}],
                },
                headers=coordinator,
            )
            assert held.status_code == 201, held.text
        [consulted] = await tap.wait_for("ConsultationHeld", case_ref=case_ref)
        assert consulted["referring_party"] == "KOMMUN" and consulted["meeting_id"] == MEETING

    # the referral service logged FK's read for the pre-meeting, under FK's member
    async with client_for(referral) as api:
        auditor = token(settings, party="REGION", role="auditor")
        entries = (await api.get(f"/api/v1/cases/{case_ref}/access-log", headers=auditor)).json()["entries"]
        assert [(e["user_id"], e["purpose"], e["outcome"]) for e in entries] == [
            ("fk-brynas", f"pre-meeting {MEETING}", "granted")
        ]
    await referral_http.aclose()
    published = json.dumps(tap.events)
    assert personnummer_in(published) == []
    assert personnummer not in published and personnummer.replace("-", "") not in published


async def test_a_team_an_administrator_creates_takes_referrals(agencies, settings, runtimes):
    referral = await runtimes(referral_app.spec(settings), settings)
    meeting = await runtimes(meeting_app.spec(settings), settings)
    entry = {
        "name": "Trisam Nya hälsocentralen",
        "municipality": "Gävle",
        "host_unit": {"type": "health_centre", "name": "Nya hälsocentralen"},
        "cadence_weeks": 3,
        "weekday": "monday",
        "time": "13:00",
        "capacity": 4,
        "cutoff_days": 4,
        "fixed_members": {"AF": "af-nya", "FK": "fk-nya", "KOMMUN": "kommun-nya", "REGION": "region-nya"},
    }
    async with client_for(meeting) as api:
        created = await api.put(
            "/api/v1/teams/GAVLE-NYA", json=entry, headers=token(settings, party="REGION", role="admin")
        )
        assert created.status_code == 200, created.text

    async def known_to_referral():
        async with referral.pool.acquire() as conn:
            return await conn.fetchval("SELECT municipality FROM registered_teams WHERE team_id = 'GAVLE-NYA'")

    assert await amqp.eventually(known_to_referral, what="the referral service to learn of the team") == "Gävle"
    await send_referral(agencies[Party.FK], settings.namespace, submit_referral(random.Random(12), team_id="GAVLE-NYA"))
    [reply] = await take_replies(agencies[Party.FK], settings.namespace, 1)
    assert reply["event_type"] == "ReferralAccepted", reply
    async with meeting.pool.acquire() as conn:

        async def scheduled():
            return await conn.fetchval("SELECT meeting_id FROM cases WHERE case_ref = $1", reply["payload"]["case_ref"])

        assert (await amqp.eventually(scheduled, what="the case on the new team's agenda")).startswith("GAVLE-NYA-")
