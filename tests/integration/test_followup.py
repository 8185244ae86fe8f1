"""Follow-up on the real broker and database, with a settable clock: scheduling intervals, due
reminders exactly once (across a restart and with two instances), overdue and escalation,
recording and correction (AMQP and HTTP), closure, out-of-order events, backfilled history."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from datetime import date, datetime, timedelta

import pytest

from services.followup import app as followup_app
from services.followup.domain import Rules, due_at, followups_for
from shared.contracts.vocabulary import Party
from shared.platform.clock import STOCKHOLM, SettableClock
from tests.support import broker as amqp
from tests.support.agencies import take_replies
from tests.support.http import client_for, token
from tests.support.referrals import send_command

pytestmark = pytest.mark.infra

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=STOCKHOLM)
HELD = date(2026, 11, 17)
PLAN_DUE = date(2027, 1, 12)  # 8 weeks after
OUTCOME_DUE = date(2027, 5, 17)  # six months after


def consultation(case_ref: str, held_on: date = HELD, party: str = "AF", team: str = "T-ONE") -> dict:
    return amqp.envelope(
        "ConsultationHeld",
        {
            "case_ref": case_ref,
            "team_id": team,
            "municipality": "Gävle",
            "meeting_id": f"{team}-X",
            "meeting_date": str(held_on),
            "held_on": str(held_on),
            "referring_party": party,
            "referred_at": "2026-10-01T08:00:00+00:00",
            "parties_present": ["AF", "FK"],
            "others_invited": [],
            "individual_attended": True,
            "actions": [{"type": "sip", "responsible_party": "KOMMUN", "due_on": "2027-01-01"}],
            "recorded_at": NOW.isoformat(),
        },
        producer="meeting",
    )


class Service:
    def __init__(self, settings, runtimes, tap, clock):
        self.settings, self._start, self.tap, self.clock = settings, runtimes, tap, clock
        self.instances = []

    async def start(self):
        runtime = await self._start(followup_app.spec(self.settings, self.clock), self.settings)
        self.instances.append(runtime)
        return runtime

    async def send(self, *envelopes: dict) -> None:
        await amqp.publish_many(
            self.settings.amqp_url, f"{self.settings.namespace}.events", [(e["event_type"], e) for e in envelopes]
        )

    async def fetch(self, sql: str, *args):
        async with self.instances[-1].pool.acquire() as conn:
            return await conn.fetch(sql, *args)

    async def settled(self) -> None:
        """Every change so far handled and announced: the queue and the outbox are empty."""

        async def quiet():
            rows = await self.fetch("SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL")
            queued = await amqp.message_count(self.settings.amqp_url, f"{self.settings.namespace}.followup")
            return rows[0]["n"] == 0 and queued == 0

        await asyncio.sleep(0.5)  # a scheduler round (every 0.1 s here)
        await amqp.eventually(quiet, what="the follow-up service to settle")
        await asyncio.sleep(0.3)

    async def followup_state(self, followup_id: str):
        rows = await self.fetch("SELECT * FROM followups WHERE followup_id = $1", followup_id)
        return rows[0] if rows else None


@contextlib.asynccontextmanager
async def followup_service(settings, runtimes, **overrides):
    settings = settings.model_copy(update={"followup_check_seconds": 0.1, **overrides})
    async with amqp.EventTap(settings.amqp_url, settings.namespace, agency=True) as tap:
        service = Service(settings, runtimes, tap, SettableClock(NOW))
        await service.start()
        yield service


@pytest.fixture
async def service(settings, runtimes):
    async with followup_service(settings, runtimes) as running:
        yield running


async def test_a_consultation_schedules_the_plan_check_and_the_outcome_follow_up(service):
    await service.send(consultation("C1"))
    scheduled = await service.tap.wait_for("FollowUpScheduled", 2, case_ref="C1")
    assert {(s["kind"], s["due_on"], s["responsible_party"]) for s in scheduled} == {
        ("plan_check", str(PLAN_DUE), "AF"),
        ("six_months", str(OUTCOME_DUE), "AF"),
    }
    # the same consultation again (another event) schedules nothing new
    await service.send(consultation("C1"))
    await service.settled()
    assert len(service.tap.of("FollowUpScheduled", case_ref="C1")) == 2


async def test_a_twelve_month_follow_up_when_switched_on(settings, runtimes):
    async with followup_service(
        settings, runtimes, followup_twelve_months=True, followup_plan_check_weeks=6
    ) as service:
        await service.send(consultation("C1", held_on=date(2026, 8, 31)))
        scheduled = await service.tap.wait_for("FollowUpScheduled", 3, case_ref="C1")
        assert {s["kind"]: s["due_on"] for s in scheduled} == {
            "plan_check": "2026-10-12",
            "six_months": "2027-02-28",
            "twelve_months": "2027-08-31",
        }


async def test_due_fires_exactly_once_across_a_restart_and_with_two_instances(service):
    await service.start()  # a second instance
    await service.send(*[consultation(f"C{i}") for i in range(20)])
    await service.tap.wait_for("FollowUpScheduled", 40)
    service.clock.set(due_at(PLAN_DUE) + timedelta(minutes=1))
    await service.tap.wait_for("FollowUpDue", 20, timeout=30)
    await service.settled()
    assert Counter(d["case_ref"] for d in service.tap.of("FollowUpDue")) == {f"C{i}": 1 for i in range(20)}

    # both instances stop; the outcome follow-ups come due while the service is down
    for runtime in list(service.instances):
        await runtime.stop()
    service.clock.set(due_at(OUTCOME_DUE) + timedelta(hours=1))
    await service.start()  # fires what came due in the meantime, once
    await service.tap.wait_for("FollowUpDue", 40, timeout=30)
    await service.settled()
    due = service.tap.of("FollowUpDue")
    assert Counter((d["case_ref"], d["kind"]) for d in due) == {
        (f"C{i}", kind): 1 for i in range(20) for kind in ("plan_check", "six_months")
    }
    assert {d["recipient"] for d in due} == {"AF"}


async def test_overdue_reminders_repeat_up_to_the_limit_then_escalate_to_the_coordinator(service):
    await service.send(consultation("C1", party="KOMMUN"))
    await service.tap.wait_for("FollowUpScheduled", 2)
    moment = due_at(PLAN_DUE) + timedelta(minutes=1)
    service.clock.set(moment)
    [due] = await service.tap.wait_for("FollowUpDue", kind="plan_check")
    assert due["recipient"] == "KOMMUN"
    for n, days in ((1, 14), (2, 21), (3, 28)):
        service.clock.set(moment + timedelta(days=days, minutes=1))
        overdue = await service.tap.wait_for("FollowUpOverdue", n, kind="plan_check")
        assert (overdue[-1]["reminder"], overdue[-1]["of"], overdue[-1]["recipient"]) == (n, 3, "KOMMUN")
    service.clock.set(moment + timedelta(days=35, minutes=1))
    [escalated] = await service.tap.wait_for("FollowUpEscalated", kind="plan_check")
    assert escalated["recipient"] == "REGION" and escalated["responsible_party"] == "KOMMUN"
    assert escalated["reminders_sent"] == 3
    service.clock.set(moment + timedelta(days=90))  # nothing more for the plan check
    await service.settled()
    assert len(service.tap.of("FollowUpOverdue", kind="plan_check")) == 3
    assert len(service.tap.of("FollowUpEscalated", kind="plan_check")) == 1
    async with client_for(service.instances[-1]) as api:
        kommun = token(service.settings, party="KOMMUN", role="officer")
        overdue = (await api.get("/api/v1/followups", params={"state": "overdue"}, headers=kommun)).json()
        assert [f["followup_id"] for f in overdue["followups"]] == ["C1.plan_check"]
        assert overdue["followups"][0]["escalated"] is True


async def record_command(agency, namespace, case_ref, kind, **answers) -> dict:
    command = amqp.envelope("RecordFollowUp", {"case_ref": case_ref, "kind": kind, **answers})
    await send_command(agency, namespace, command)
    while True:  # the agency's queue also holds its reminders
        [reply] = await take_replies(agency, namespace, 1)
        if reply["event_type"] in ("CommandAccepted", "CommandRejected"):
            return reply


async def test_recording_over_amqp_and_http_and_correcting(agencies, service):
    await service.send(consultation("C1", party="AF"))
    await service.tap.wait_for("FollowUpScheduled", 2)
    ns, af = service.settings.namespace, agencies[Party.AF]
    # early: recorded before its reminder; no reminder follows
    accepted = await record_command(
        af, ns, "C1", "plan_check", recorded_on="2026-11-23", reached=True, plan_status="partly"
    )
    assert accepted["event_type"] == "CommandAccepted" and accepted["payload"]["case_ref"] == "C1"
    [completed] = await service.tap.wait_for("FollowUpCompleted", case_ref="C1")
    assert (completed["kind"], completed["plan_status"], completed["revision"]) == ("plan_check", "partly", 1)

    refused = await record_command(
        af, ns, "C1", "six_months", recorded_on="2026-11-23", reached=True, plan_status="done"
    )
    assert refused["event_type"] == "CommandRejected"
    assert {r["code"] for r in refused["payload"]["reasons"]} == {"income_source_missing", "readiness_missing"}
    not_theirs = await record_command(
        agencies[Party.FK], ns, "C1", "plan_check", recorded_on="2026-11-23", reached=False
    )
    assert [r["code"] for r in not_theirs["payload"]["reasons"]] == ["followup_not_found"]
    bad = await record_command(af, ns, "C1", "plan_check", recorded_on="2026-11-23", reached=True, plan_status="maybe")
    assert bad["event_type"] == "CommandRejected"

    service.clock.set(due_at(PLAN_DUE) + timedelta(days=1))
    async with client_for(service.instances[-1]) as api:
        officer = token(service.settings, party="AF", role="officer", user="af-17", teams=["T-ONE"])
        url = "/api/v1/followups/C1.plan_check/records"
        elsewhere = token(service.settings, party="AF", role="officer", user="af-18", teams=["T-TWO"])
        not_theirs = await api.post(
            url, headers=elsewhere, json={"recorded_on": "2026-11-30", "reached": True, "plan_status": "done"}
        )
        assert not_theirs.status_code == 403 and not_theirs.json()["detail"]["code"] == "not_in_team"
        corrected = await api.post(
            url, headers=officer, json={"recorded_on": "2026-11-30", "reached": True, "plan_status": "revised"}
        )
        assert corrected.status_code == 201 and corrected.json()["revision"] == 2
        same = await api.post(
            url, headers=officer, json={"recorded_on": "2026-11-30", "reached": True, "plan_status": "revised"}
        )
        assert same.status_code == 200 and same.json()["revision"] == 2
        invalid = await api.post(
            url, headers=officer, json={"recorded_on": "2026-11-30", "reached": False, "plan_status": "done"}
        )
        assert invalid.status_code == 422
        assert invalid.json()["reasons"][0]["code"] == "answers_when_not_reached"
        fk = token(service.settings, party="FK", role="officer")
        assert (
            await api.post(url, headers=fk, json={"recorded_on": "2026-11-30", "reached": False})
        ).status_code == 404
        assert (await api.get("/api/v1/followups/C1.plan_check", headers=fk)).status_code == 404
        history = (await api.get("/api/v1/followups/C1.plan_check", headers=officer)).json()
        assert [(r["revision"], r["plan_status"], r["channel"]) for r in history["records"]] == [
            (1, "partly", "amqp"),
            (2, "revised", "http"),
        ]
        await service.settled()
        assert service.tap.of("FollowUpDue", case_ref="C1", kind="plan_check") == []

        # the outcome follow-up: recorded, the case is closed (plan completed)
        outcome = await api.post(
            "/api/v1/followups/C1.six_months/records",
            headers=officer,
            json={"recorded_on": "2026-12-01", "reached": True, "income_source": "LON", "readiness": "much_more"},
        )
        assert outcome.status_code == 201, outcome.text
    [closed] = await service.tap.wait_for("CaseClosed", case_ref="C1")
    assert closed["reason"] == "PLAN_COMPLETED"
    assert (closed["closed_by"], closed["closed_by_party"]) == ("af-17", "AF")  # whose record ended it
    revisions = [c["revision"] for c in service.tap.of("FollowUpCompleted", kind="plan_check")]
    assert revisions == [1, 2]


async def test_closing_a_case_cancels_its_pending_follow_ups(service):
    await service.send(consultation("C1", party="FK", team="T-ONE"))
    await service.tap.wait_for("FollowUpScheduled", 2)
    async with client_for(service.instances[-1]) as api:
        url = "/api/v1/cases/C1/closure"
        assert (
            await api.post(url, json={"reason": "MOVED"}, headers=token(service.settings, party="AF", role="officer"))
        ).status_code == 403
        assert (
            await api.post(
                url,
                json={"reason": "MOVED"},
                headers=token(service.settings, party="REGION", role="coordinator", teams=["T-TWO"]),
            )
        ).status_code == 403
        assert (
            await api.post(url, json={"reason": "SOLD"}, headers=token(service.settings, party="FK", role="officer"))
        ).status_code == 422
        closed = await api.post(
            url,
            json={"reason": "MOVED"},
            headers=token(service.settings, party="REGION", role="coordinator", teams=["T-ONE"]),
        )
        assert closed.status_code == 200
        again = await api.post(
            url, json={"reason": "MOVED"}, headers=token(service.settings, party="FK", role="officer", teams=["T-ONE"])
        )
        assert again.status_code == 409
        late = await api.post(
            "/api/v1/followups/C1.plan_check/records",
            json={"recorded_on": "2026-11-23", "reached": False},
            headers=token(service.settings, party="FK", role="officer", teams=["T-ONE"]),
        )
        assert late.status_code == 409 and late.json()["reasons"][0]["code"] == "followup_cancelled"
        await service.send(consultation("C2", party="FK"))
        await service.tap.wait_for("FollowUpScheduled", 2, case_ref="C2")
        elsewhere = await api.post(
            "/api/v1/cases/C2/closure",
            json={"reason": "DECEASED"},
            headers=token(service.settings, party="FK", role="officer", teams=["T-TWO"]),
        )
        assert elsewhere.status_code == 403 and elsewhere.json()["detail"]["code"] == "not_in_team"
        by_officer = await api.post(
            "/api/v1/cases/C2/closure",
            json={"reason": "DECEASED"},
            headers=token(service.settings, party="FK", role="officer", teams=["T-ONE"], user="fk-4"),
        )
        assert by_officer.status_code == 200
    [event] = await service.tap.wait_for("CaseClosed", case_ref="C1")
    assert (event["reason"], event["closed_by"], event["closed_by_party"]) == ("MOVED", "region-coordinator", "REGION")
    [event] = await service.tap.wait_for("CaseClosed", case_ref="C2")
    assert (event["reason"], event["closed_by"], event["closed_by_party"]) == ("DECEASED", "fk-4", "FK")
    cancelled = await service.tap.wait_for("FollowUpCancelled", 2, case_ref="C1")
    assert {c["kind"] for c in cancelled} == {"plan_check", "six_months"}
    service.clock.set(due_at(OUTCOME_DUE) + timedelta(days=1))
    await service.settled()
    assert service.tap.of("FollowUpDue", case_ref="C1") == []


async def test_out_of_order_and_exits(service):
    not_consulted = amqp.envelope(
        "CaseNotConsulted",
        {
            "case_ref": "N1",
            "team_id": "T-ONE",
            "municipality": "Gävle",
            "meeting_id": "T-ONE-X",
            "meeting_date": "2026-11-17",
            "referring_party": "AF",
            "reason": "individual_withdrew",
            "recorded_at": NOW.isoformat(),
        },
    )
    await service.send(not_consulted)  # before its CaseReferred
    [closed] = await service.tap.wait_for("CaseClosed", case_ref="N1")
    assert closed["reason"] == "CONSENT_WITHDRAWN"
    await service.send(consultation("N1"))  # a late consultation of a closed case
    # every party's consent withdrawn: the case is closed, its follow-ups cancelled
    referred = amqp.envelope(
        "CaseReferred",
        {
            "case_ref": "W1",
            "team_id": "T-ONE",
            "municipality": "Gävle",
            "referring_party": "AF",
            "gender": "MAN",
            "age_band": "35-44",
            "income_source": "FORSORJNINGSSTOD",
            "consented_parties": ["AF", "FK"],
            "wishes_to_attend": None,
            "violence_question_asked": True,
            "reason_codes": [],
            "referred_at": "2026-10-01T08:00:00+00:00",
        },
    )
    await service.send(referred, consultation("W1"))
    await service.tap.wait_for("FollowUpScheduled", 2, case_ref="W1")

    def withdrawal(case_ref: str, party: str) -> dict:
        return amqp.envelope(
            "ConsentWithdrawn",
            {
                "case_ref": case_ref,
                "party": party,
                "withdrawn_on": "2026-11-23",
                "on_behalf_of_individual": True,
                "recorded_by": "AF",
                "recorded_at": (NOW + timedelta(minutes=1)).isoformat(),
            },
        )

    await service.send(withdrawal("W1", "AF"), withdrawal("W1", "FK"))  # at once: each sees the other
    [closed] = await service.tap.wait_for("CaseClosed", case_ref="W1")
    assert closed["reason"] == "CONSENT_WITHDRAWN"
    await service.tap.wait_for("FollowUpCancelled", 2, case_ref="W1")
    # every consent withdrawn before the case reached the follow-up service: no follow-ups
    await service.send(withdrawal("E1", "KOMMUN"))
    await service.send(consultation("E1"))
    [closed] = await service.tap.wait_for("CaseClosed", case_ref="E1")
    assert closed["reason"] == "CONSENT_WITHDRAWN"
    await service.settled()
    assert service.tap.of("FollowUpScheduled", case_ref="N1") == []
    assert service.tap.of("FollowUpScheduled", case_ref="E1") == []
    assert len(service.tap.of("CaseClosed")) == 3


async def test_a_year_of_backfilled_history_fires_each_due_reminder_once(service):
    held = [NOW.date() - timedelta(weeks=k) for k in range(1, 53)]
    await service.send(*[consultation(f"H{k:02}", held_on=day) for k, day in enumerate(held)])
    expected = sum(1 for day in held for _kind, due_on in followups_for(day, Rules()) if due_at(due_on) <= NOW)
    assert expected == 45 + 26  # plan checks of 8 weeks back and older, outcomes of 27 weeks and older
    await service.tap.wait_for("FollowUpDue", expected, timeout=30)
    await service.settled()
    assert len(service.tap.of("FollowUpDue")) == expected
    assert service.tap.of("FollowUpOverdue") == []  # the next reminder counts from now
    service.clock.set(NOW + timedelta(days=14, minutes=1))
    await service.tap.wait_for("FollowUpOverdue", expected, timeout=30)
    await service.settled()
    assert len(service.tap.of("FollowUpOverdue")) == expected


async def test_the_scheduler_acts_only_on_due_follow_ups_among_many_pending(service):
    """Correctness with 20,000 pending follow-ups (the tick's speed: bench/followup_scheduler.py)."""
    async with service.instances[-1].pool.acquire() as conn:
        await conn.execute("""
            INSERT INTO tracked_cases (case_ref, referring_party, referred_at, team_id, municipality)
            SELECT 'P' || g, 'FK', now(), 'T-ONE', 'Gävle' FROM generate_series(1, 20000) g""")
        await conn.execute(
            """
            INSERT INTO followups (followup_id, case_ref, kind, team_id, municipality, referring_party,
                                   responsible_party, consultation_held_on, due_on, next_action_at)
            SELECT 'P' || g || '.six_months', 'P' || g, 'six_months', 'T-ONE', 'Gävle', 'FK', 'FK',
                   DATE '2026-11-01', DATE '2027-05-01' + (g % 300),
                   $1::timestamptz + make_interval(days => 200 + g % 300)
            FROM generate_series(1, 20000) g""",
            NOW,
        )
    await service.send(*[consultation(f"D{i}") for i in range(10)])
    await service.tap.wait_for("FollowUpScheduled", 20)
    service.clock.set(due_at(PLAN_DUE) + timedelta(minutes=1))
    await service.tap.wait_for("FollowUpDue", 10)
    await service.settled()
    assert {d["case_ref"] for d in service.tap.of("FollowUpDue")} == {f"D{i}" for i in range(10)}
    rows = await service.fetch("SELECT count(*) AS n FROM followups WHERE status = 'pending'")
    assert rows[0]["n"] == 20000 + 10  # the outcome follow-ups of D0..D9 wait too


async def test_the_teams_coordinator_sees_its_due_and_overdue_follow_ups_of_every_party(service):
    await service.send(consultation("T1", party="AF", team="T-ONE"), consultation("T2", party="FK", team="T-TWO"))
    await service.tap.wait_for("FollowUpScheduled", 4)
    service.clock.set(due_at(PLAN_DUE) + timedelta(hours=1))
    await service.tap.wait_for("FollowUpDue", 2)
    async with client_for(service.instances[-1]) as api:
        coordinator = token(service.settings, party="REGION", role="coordinator", teams=["T-ONE"])
        due = (await api.get("/api/v1/teams/T-ONE/followups", params={"state": "due"}, headers=coordinator)).json()
        assert [(f["case_ref"], f["kind"], f["responsible_party"]) for f in due["followups"]] == [
            ("T1", "plan_check", "AF")
        ]
        assert (await api.get("/api/v1/teams/T-TWO/followups", headers=coordinator)).status_code == 403
        member = token(service.settings, party="AF", role="member", teams=["T-ONE"])
        assert (await api.get("/api/v1/teams/T-ONE/followups", headers=member)).status_code == 403
        assert (await api.get("/api/v1/teams/T-ONE/followups")).status_code == 401
        bad = await api.get("/api/v1/teams/T-ONE/followups", params={"state": "all"}, headers=coordinator)
        assert bad.status_code == 422
