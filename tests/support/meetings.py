"""A meeting service on a small test registry and a settable clock, and the events it reacts to
(as the referral service would publish them)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from services.meeting import app as meeting_app
from shared.platform.clock import STOCKHOLM, SettableClock
from tests.support import broker as amqp

ALL = ["AF", "FK", "KOMMUN", "REGION"]
START = datetime(2026, 11, 23, 12, 0, tzinfo=STOCKHOLM)  # a Monday
REFERRED = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
# T-ONE meets every other Tuesday 09:00 from 1 December; cut-off 5 days before (Thu 09:00)
ONE_DATES = [date(2026, 12, 1) + timedelta(weeks=2 * k) for k in range(6)]
REGISTRY = {
    "version": 1,
    "description": "test registry",
    "teams": [
        {
            "team_id": "T-ONE",
            "name": "Team One",
            "municipality": "Gävle",
            "host_unit": {"type": "health_centre", "name": "One HC"},
            "cadence_weeks": 2,
            "weekday": "tuesday",
            "time": "09:00",
            "capacity": 3,
            "cutoff_days": 5,
            "fixed_members": {"AF": "af-1", "FK": "fk-1", "KOMMUN": "k-1", "REGION": "r-1"},
        },
        {
            "team_id": "T-TWO",
            "name": "Team Two",
            "municipality": "Sandviken",
            "host_unit": {"type": "psychiatry", "name": "Two OP"},
            "cadence_weeks": 3,
            "weekday": "thursday",
            "time": "13:00",
            "capacity": 2,
            "cutoff_days": 3,
            "fixed_members": {"AF": "af-2", "FK": "fk-2", "KOMMUN": "k-2", "REGION": "r-2"},
        },
    ],
}


def meeting_id(day: date, team: str = "T-ONE") -> str:
    return f"{team}-{day:%Y%m%d}"


def case_referred(case_ref: str, *, team: str = "T-ONE", minute: int = 0, consented=ALL, party: str = "AF") -> dict:
    return amqp.envelope(
        "CaseReferred",
        {
            "case_ref": case_ref,
            "team_id": team,
            "municipality": "Gävle",
            "referring_party": party,
            "gender": "WOMAN",
            "age_band": "25-34",
            "income_source": "SJUKPENNING",
            "consented_parties": list(consented),
            "wishes_to_attend": True,
            "violence_question_asked": False,
            "reason_codes": [],
            "referred_at": (REFERRED + timedelta(minutes=minute)).isoformat(),
        },
        producer="referral",
    )


def consent_event(case_ref: str, party: str, *, withdrawn: bool, at: datetime) -> dict:
    if withdrawn:
        return amqp.envelope(
            "ConsentWithdrawn",
            {
                "case_ref": case_ref,
                "party": party,
                "withdrawn_on": str(at.date()),
                "on_behalf_of_individual": True,
                "recorded_by": "AF",
                "recorded_at": at.isoformat(),
            },
        )
    return amqp.envelope(
        "ConsentRecorded",
        {
            "case_ref": case_ref,
            "party": party,
            "given_on": str(at.date()),
            "recorded_by": "AF",
            "recorded_at": at.isoformat(),
        },
    )


@dataclass
class MeetingUnderTest:
    runtimes: list
    clock: SettableClock
    tap: amqp.EventTap
    settings: object

    @property
    def runtime(self):
        return self.runtimes[0]

    async def send(self, *envelopes: dict) -> None:
        await amqp.publish_many(
            self.settings.amqp_url, f"{self.settings.namespace}.events", [(e["event_type"], e) for e in envelopes]
        )

    async def queue(self, *envelopes: dict) -> None:
        """Send CaseReferred events one at a time, each once the one before is in the queue,
        so that the order they come in is known."""
        for envelope in envelopes:
            await self.send(envelope)
            ref = envelope["payload"]["case_ref"]

            async def arrived():
                return await self.fetch("SELECT 1 FROM cases WHERE case_ref = $1", ref)

            await amqp.eventually(arrived, what=f"case {ref} to arrive")

    async def settled(self) -> None:
        """Wait until every event of the changes so far is published (the outbox is empty)."""

        async def empty():
            rows = await self.fetch("SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL")
            return rows[0]["n"] == 0

        await amqp.eventually(empty, what="the meeting outbox to drain")
        await asyncio.sleep(0.2)  # and the tap to receive what was just published

    async def fetch(self, sql: str, *args):
        async with self.runtime.pool.acquire() as conn:
            return await conn.fetch(sql, *args)

    async def agenda(self, day: date, team: str = "T-ONE") -> list[str]:
        rows = await self.fetch(
            "SELECT case_ref FROM cases WHERE meeting_id = $1 AND status = 'queued' ORDER BY queue_seq",
            meeting_id(day, team),
        )
        return [r["case_ref"] for r in rows]

    async def until_agenda(self, day: date, expected: list[str], team: str = "T-ONE") -> None:
        async def right():
            return await self.agenda(day, team) == expected

        await amqp.eventually(right, what=f"agenda of {day} to be {expected}")

    async def until_status(self, day: date, status: str, team: str = "T-ONE") -> None:
        async def right():
            rows = await self.fetch("SELECT status FROM meetings WHERE meeting_id = $1", meeting_id(day, team))
            return rows and rows[0]["status"] == status

        await amqp.eventually(right, what=f"meeting of {day} to be {status}")


@contextlib.asynccontextmanager
async def meeting_service(
    settings, runtimes, tmp_path, *, instances: int = 1, clock=None, referral_api=None, registry=REGISTRY, **overrides
):
    path = tmp_path / "teams.json"
    path.write_text(json.dumps(registry))
    settings = settings.model_copy(update={"teams_file": str(path), "meeting_check_seconds": 0.1, **overrides})
    clock = clock or SettableClock(START)
    async with amqp.EventTap(settings.amqp_url, settings.namespace, agency=True) as tap:
        started = [await runtimes(meeting_app.spec(settings, clock, referral_api), settings) for _ in range(instances)]
        under_test = MeetingUnderTest(started, clock, tap, settings)
        if registry is REGISTRY:
            await tap.wait_for("MeetingScheduled", len(ONE_DATES), team_id="T-ONE")
        yield under_test
