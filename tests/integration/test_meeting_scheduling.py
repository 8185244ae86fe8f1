"""Meeting scheduling rules on the real broker and database, with a settable clock.

Team T-ONE (tests/support/meetings.py) meets every other Tuesday at 09:00 from 1 December,
3 cases per meeting, agenda cut-off 5 days before. The clock starts Monday 23 November.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta

import pytest

from shared.platform.clock import STOCKHOLM
from tests.support import broker as amqp
from tests.support.http import client_for, token
from tests.support.meetings import ALL, ONE_DATES, START, case_referred, consent_event, meeting_id, meeting_service

pytestmark = pytest.mark.infra

DEC1, DEC15, DEC29 = ONE_DATES[:3]
AFTER_DEC1_CUTOFF = datetime(2026, 11, 26, 9, 1, tzinfo=STOCKHOLM)


@pytest.fixture
async def meeting(settings, runtimes, tmp_path):
    async with meeting_service(settings, runtimes, tmp_path) as service:
        yield service


def coordinator(settings, team="T-ONE"):
    return token(settings, party="REGION", role="coordinator", teams=[team], user="rk-1")


async def test_the_calendar_is_generated_ahead_from_the_registry_and_announced(meeting):
    scheduled = meeting.tap.of("MeetingScheduled", team_id="T-ONE")
    assert [s["meeting_date"] for s in scheduled] == [str(d) for d in ONE_DATES]
    first = scheduled[0]
    assert first["starts_at"].startswith("2026-12-01T08:00:00") and first["capacity"] == 3
    assert first["cutoff_at"].startswith("2026-11-26T08:00:00")  # 09:00 Swedish time, in UTC
    two = await meeting.tap.wait_for("MeetingScheduled", 4, team_id="T-TWO")  # every 3rd Thursday
    assert [date.fromisoformat(s["meeting_date"]).weekday() for s in two] == [3] * 4
    [team] = meeting.tap.of("TeamUpdated", team_id="T-ONE")
    assert team["fixed_parties"] == ALL and team["revision"] == 1 and team["weekday"] == 1

    # later rounds of the scheduler (every 0.1 s here) announce nothing twice
    meeting.clock.advance(hours=1)
    await asyncio.sleep(1.0)
    await meeting.settled()
    rows = await meeting.fetch("SELECT count(*) AS n FROM meetings")
    assert rows[0]["n"] == len(meeting.tap.of("MeetingScheduled")) == 10


async def test_cases_fill_meetings_by_capacity_first_come_first_served(meeting):
    await meeting.queue(*[case_referred(f"C{i}", minute=i) for i in range(8)])
    await meeting.until_agenda(DEC29, ["C6", "C7"])
    assert await meeting.agenda(DEC1) == ["C0", "C1", "C2"]
    assert await meeting.agenda(DEC15) == ["C3", "C4", "C5"]

    async with client_for(meeting.runtime) as api:
        member = token(meeting.settings, party="FK", role="member", teams=["T-ONE"])
        answer = await api.get("/api/v1/cases/C7/schedule", headers=member)
        assert answer.status_code == 200, answer.text
        where = answer.json()
        assert (where["position"], where["meeting_date"], where["expected_date"]) == (8, str(DEC29), str(DEC29))
        queue = (await api.get("/api/v1/teams/T-ONE/queue", headers=member)).json()
        assert [c["case_ref"] for c in queue["cases"]] == [f"C{i}" for i in range(8)]
        meetings = (await api.get("/api/v1/teams/T-ONE/meetings", headers=member)).json()
        assert [len(m["agenda"]) for m in meetings["meetings"]] == [3, 3, 2, 0, 0, 0]
        assert meetings["meetings"][0]["agenda"][0]["consents"] == {p: "given" for p in ALL}
        officer = token(meeting.settings, party="AF", role="officer")  # the referring party
        assert (await api.get("/api/v1/cases/C0/schedule", headers=officer)).status_code == 200
        stranger = token(meeting.settings, party="FK", role="member", teams=["T-TWO"])
        assert (await api.get("/api/v1/cases/C0/schedule", headers=stranger)).status_code == 403
        assert (await api.get("/api/v1/teams/T-ONE/meetings", headers=stranger)).status_code == 403
        assert (await api.get("/api/v1/teams/T-ONE/meetings")).status_code == 401
    for i in range(8):
        [scheduled] = await meeting.tap.wait_for("CaseScheduled", case_ref=f"C{i}")
        assert scheduled["meeting_id"] == meeting_id(ONE_DATES[i // 3])
    assert meeting.tap.of("CasePostponed") == []


async def test_overflow_waits_for_the_calendar_with_an_expected_date(meeting):
    await meeting.queue(*[case_referred(f"C{i:02}", minute=i) for i in range(20)])
    await meeting.tap.wait_for("CaseScheduled", 18)
    async with client_for(meeting.runtime) as api:
        member = token(meeting.settings, party="FK", role="member", teams=["T-ONE"])
        where = (await api.get("/api/v1/cases/C19/schedule", headers=member)).json()
    assert where["meeting_id"] is None and where["position"] == 20
    assert where["expected_date"] == str(ONE_DATES[-1] + timedelta(weeks=2))
    # weeks later the calendar reaches further and the waiting cases get their meeting
    meeting.clock.set(START + timedelta(weeks=2))
    await meeting.tap.wait_for("CaseScheduled", 1, case_ref="C18")
    assert meeting.tap.of("CaseScheduled", case_ref="C18")[0]["meeting_date"] == str(ONE_DATES[-1] + timedelta(weeks=2))


async def test_at_the_cutoff_a_case_without_a_fixed_partys_consent_is_postponed_and_its_agency_reminded(meeting):
    await meeting.queue(
        case_referred("OK1"),
        case_referred("NOFK", party="KOMMUN", consented=["AF", "KOMMUN", "REGION"]),
        case_referred("OK2"),
        case_referred("OK3"),
    )
    await meeting.until_agenda(DEC1, ["OK1", "NOFK", "OK2"])  # before the cut-off it may still come
    meeting.clock.set(AFTER_DEC1_CUTOFF)
    [postponed] = await meeting.tap.wait_for("CasePostponed", case_ref="NOFK")
    assert postponed["reason"] == "consent_missing" and postponed["missing_parties"] == ["FK"]
    assert (postponed["from_meeting_id"], postponed["to_meeting_id"]) == (meeting_id(DEC1), meeting_id(DEC15))
    [reminder] = await meeting.tap.wait_for("ConsentReminder", case_ref="NOFK")
    assert reminder["recipient"] == "KOMMUN" and reminder["missing_parties"] == ["FK"]
    assert reminder["next_meeting_date"] == str(DEC15)
    await meeting.until_status(DEC1, "closed")
    assert await meeting.agenda(DEC1) == ["OK1", "OK2", "OK3"]  # the freed seat is used
    assert await meeting.agenda(DEC15) == ["NOFK"]
    async with client_for(meeting.runtime) as api:  # the coordinator sees why, on the agenda and the case
        coordinator = token(meeting.settings, party="REGION", role="coordinator", teams=["T-ONE"])
        why = {"reason": "consent_missing", "parties": ["FK"]}
        where = (await api.get("/api/v1/cases/NOFK/schedule", headers=coordinator)).json()
        assert (where["postponements"], where["last_postponement"]) == (1, why)
        agenda = (await api.get(f"/api/v1/meetings/{meeting_id(DEC15)}", headers=coordinator)).json()["agenda"]
        assert agenda[0]["last_postponement"] == why
        first = (await api.get(f"/api/v1/meetings/{meeting_id(DEC1)}", headers=coordinator)).json()["agenda"]
        assert [item["last_postponement"] for item in first] == [None, None, None]
    [moved_up] = meeting.tap.of("CaseScheduled", case_ref="OK3")[-1:]
    assert moved_up["meeting_id"] == meeting_id(DEC1)

    # consent recorded: at the next cut-off it stays on the agenda
    await meeting.send(consent_event("NOFK", "FK", withdrawn=False, at=AFTER_DEC1_CUTOFF))
    meeting.clock.set(datetime(2026, 12, 10, 9, 1, tzinfo=STOCKHOLM))
    await meeting.until_status(DEC15, "closed")
    assert await meeting.agenda(DEC15) == ["NOFK"]
    await meeting.settled()
    assert len(meeting.tap.of("CasePostponed", case_ref="NOFK")) == 1


async def test_a_case_that_never_gets_consent_moves_on_at_each_cutoff_and_wastes_no_seat(meeting):
    await meeting.queue(
        case_referred("NOFK", consented=["AF", "KOMMUN", "REGION"]), *[case_referred(f"C{i}") for i in range(1, 7)]
    )
    await meeting.until_agenda(DEC29, ["C6"])
    meeting.clock.set(AFTER_DEC1_CUTOFF)
    await meeting.until_status(DEC1, "closed")
    assert await meeting.agenda(DEC1) == ["C1", "C2", "C3"]
    await meeting.until_agenda(DEC15, ["NOFK", "C4", "C5"])
    meeting.clock.set(datetime(2026, 12, 10, 9, 1, tzinfo=STOCKHOLM))
    await meeting.until_status(DEC15, "closed")
    assert await meeting.agenda(DEC15) == ["C4", "C5", "C6"]
    await meeting.until_agenda(DEC29, ["NOFK"])
    reminders = await meeting.tap.wait_for("ConsentReminder", 2, case_ref="NOFK")
    assert [r["next_meeting_date"] for r in reminders] == [str(DEC15), str(DEC29)]


async def test_a_meeting_without_cases_at_its_cutoff_is_cancelled(meeting):
    meeting.clock.set(AFTER_DEC1_CUTOFF)
    [cancelled] = await meeting.tap.wait_for("MeetingCancelled", meeting_id=meeting_id(DEC1))
    assert cancelled["reason"] == "no_cases" and cancelled["cases_moved"] == 0
    await meeting.until_status(DEC15, "open")


async def test_removing_a_skip_date_brings_its_meeting_back(meeting):
    await meeting.queue(case_referred("C0"))
    admin = token(meeting.settings, party="REGION", role="admin", user="admin-1")
    async with client_for(meeting.runtime) as api:
        added = await api.put(
            "/api/v1/skip-dates", headers=admin, json={"on_date": str(DEC1), "reason": "Helgdag"}
        )  # every team
        assert added.status_code == 200 and added.json()["meetings_cancelled"] == 1
        await meeting.until_agenda(DEC15, ["C0"])
        assert (await api.delete(f"/api/v1/skip-dates/*/{DEC1}", headers=admin)).status_code == 204
        assert (await api.delete(f"/api/v1/skip-dates/*/{DEC1}", headers=admin)).status_code == 404
    await meeting.until_status(DEC1, "open")
    await meeting.until_agenda(DEC1, ["C0"])  # back to the earlier meeting
    scheduled = await meeting.tap.wait_for("MeetingScheduled", 2, meeting_id=meeting_id(DEC1))
    assert len(scheduled) == 2


async def test_cancelled_meetings_cases_move_to_the_next_meeting_ahead_of_newer_cases(meeting):
    await meeting.queue(*[case_referred(f"C{i}", minute=i) for i in range(6)])
    await meeting.until_agenda(DEC15, ["C3", "C4", "C5"])
    async with client_for(meeting.runtime) as api:
        url = f"/api/v1/meetings/{meeting_id(DEC1)}/cancellation"
        member = token(meeting.settings, party="FK", role="member", teams=["T-ONE"])
        assert (await api.post(url, json={"reason": "staff_absent"}, headers=member)).status_code == 403
        other = coordinator(meeting.settings, team="T-TWO")
        assert (await api.post(url, json={"reason": "staff_absent"}, headers=other)).status_code == 403
        bad = await api.post(url, json={"reason": "other"}, headers=coordinator(meeting.settings))
        assert bad.status_code == 422
        bad = await api.post(url, json={"reason": "no_cases"}, headers=coordinator(meeting.settings))
        assert bad.status_code == 422  # automatic only
        done = await api.post(
            url, json={"reason": "other", "note": "Lokalen är upptagen"}, headers=coordinator(meeting.settings)
        )
        assert done.status_code == 200 and done.json()["cases_moved"] == 3
        again = await api.post(url, json={"reason": "staff_absent"}, headers=coordinator(meeting.settings))
        assert again.status_code == 409 and again.json()["detail"]["code"] == "meeting_cancelled"
    [cancelled] = await meeting.tap.wait_for("MeetingCancelled", meeting_id=meeting_id(DEC1))
    assert cancelled["reason"] == "other" and "note" not in cancelled
    assert await meeting.agenda(DEC15) == ["C0", "C1", "C2"]
    assert await meeting.agenda(DEC29) == ["C3", "C4", "C5"]
    for ref in ("C0", "C1", "C2"):
        [moved] = await meeting.tap.wait_for("CasePostponed", case_ref=ref)
        assert moved["reason"] == "meeting_cancelled" and moved["to_meeting_id"] == meeting_id(DEC15)
    for ref in ("C3", "C4", "C5"):
        [moved] = await meeting.tap.wait_for("CasePostponed", case_ref=ref)
        assert moved["reason"] == "displaced" and moved["to_meeting_id"] == meeting_id(DEC29)
    rows = await meeting.fetch("SELECT cancel_note FROM meetings WHERE meeting_id = $1", meeting_id(DEC1))
    assert rows[0]["cancel_note"] == "Lokalen är upptagen"


async def test_withdrawal_after_scheduling_postpones_only_for_configured_parties(meeting):
    # the default configuration postpones on FK's withdrawal only
    await meeting.queue(*[case_referred(f"C{i}", minute=i) for i in range(4)])
    await meeting.until_agenda(DEC15, ["C3"])
    at = START + timedelta(minutes=5)
    await meeting.send(consent_event("C1", "AF", withdrawn=True, at=at))
    await meeting.send(consent_event("C0", "FK", withdrawn=True, at=at))
    [postponed] = await meeting.tap.wait_for("CasePostponed", case_ref="C0")
    assert postponed["reason"] == "consent_withdrawn" and postponed["missing_parties"] == ["FK"]
    assert postponed["to_meeting_id"] is None  # on hold until consent is given again
    await meeting.until_agenda(DEC1, ["C1", "C2", "C3"])  # C3 moves up into the free seat
    rows = await meeting.fetch("SELECT status FROM cases WHERE case_ref = 'C0'")
    assert rows[0]["status"] == "on_hold"
    await meeting.settled()
    assert meeting.tap.of("CasePostponed", case_ref="C1") == []  # AF's withdrawal: no move
    async with client_for(meeting.runtime) as api:  # AF's member sees the withdrawal
        member = token(meeting.settings, party="AF", role="member", teams=["T-ONE"])
        agenda = (await api.get(f"/api/v1/meetings/{meeting_id(DEC1)}", headers=member)).json()["agenda"]
        assert agenda[0]["case_ref"] == "C1" and agenda[0]["consents"]["AF"] == "withdrawn"

    await meeting.send(consent_event("C0", "FK", withdrawn=False, at=at + timedelta(minutes=1)))
    await meeting.until_agenda(DEC1, ["C0", "C1", "C2"])  # back at its place in the queue
    await meeting.until_agenda(DEC15, ["C3"])
    [displaced] = await meeting.tap.wait_for("CasePostponed", case_ref="C3")
    assert displaced["reason"] == "displaced"


async def test_a_withdrawal_that_arrives_before_its_referral_holds_the_case(meeting):
    """FK's withdrawal, recorded after the referral but delivered first, is not undone by the
    referral's consents (a late older change never overrides a newer one) and holds the case."""
    await meeting.send(consent_event("C0", "FK", withdrawn=True, at=START + timedelta(minutes=5)))
    await amqp.eventually(
        lambda: meeting.fetch("SELECT 1 FROM consent_state WHERE case_ref = 'C0'"), what="the withdrawal"
    )
    await meeting.queue(case_referred("C0"), case_referred("C1", minute=1))
    await meeting.until_agenda(DEC1, ["C1"])
    rows = await meeting.fetch("SELECT status FROM cases WHERE case_ref = 'C0'")
    assert rows[0]["status"] == "on_hold"
    consents = await meeting.fetch("SELECT party, status FROM consent_state WHERE case_ref = 'C0' ORDER BY party")
    assert {r["party"]: r["status"] for r in consents}["FK"] == "withdrawn"


async def test_a_closed_case_leaves_the_queue(meeting):
    await meeting.queue(*[case_referred(f"C{i}", minute=i) for i in range(4)])
    await meeting.until_agenda(DEC15, ["C3"])
    await meeting.send(
        {
            **case_referred("x"),
            "event_type": "CaseClosed",
            "payload": {"case_ref": "C1", "reason": "MOVED", "closed_at": START.isoformat()},
        }
    )
    await meeting.until_agenda(DEC1, ["C0", "C2", "C3"])


async def test_skip_dates_and_team_changes_by_administrators(meeting):
    await meeting.queue(*[case_referred(f"C{i}", minute=i) for i in range(2)])
    await meeting.until_agenda(DEC1, ["C0", "C1"])
    admin = token(meeting.settings, party="REGION", role="admin", user="admin-1")
    async with client_for(meeting.runtime) as api:
        holiday = {"on_date": str(DEC1), "team_id": "T-ONE", "reason": "Helgdag"}
        assert (
            await api.put("/api/v1/skip-dates", json=holiday, headers=coordinator(meeting.settings))
        ).status_code == 403
        added = await api.put("/api/v1/skip-dates", json=holiday, headers=admin)
        assert added.status_code == 200 and added.json()["meetings_cancelled"] == 1
        [cancelled] = await meeting.tap.wait_for("MeetingCancelled", meeting_id=meeting_id(DEC1))
        assert cancelled["reason"] == "holiday"
        await meeting.until_agenda(DEC15, ["C0", "C1"])

        team = (await api.get("/api/v1/teams/T-ONE", headers=admin)).json()
        change = {
            k: team[k]
            for k in (
                "name",
                "municipality",
                "host_unit",
                "cadence_weeks",
                "weekday",
                "time",
                "capacity",
                "cutoff_days",
                "fixed_members",
            )
        }
        assert (
            await api.put("/api/v1/teams/T-ONE", json={**change, "capacity": 1}, headers=coordinator(meeting.settings))
        ).status_code == 403
        bad = await api.put("/api/v1/teams/T-ONE", json={**change, "cadence_weeks": 6}, headers=admin)
        assert bad.status_code == 422
        saved = await api.put("/api/v1/teams/T-ONE", json={**change, "capacity": 1}, headers=admin)
        assert saved.status_code == 200 and saved.json()["revision"] == 2
        await meeting.until_agenda(DEC15, ["C0"])
        await meeting.until_agenda(DEC29, ["C1"])
        updated = await meeting.tap.wait_for("TeamUpdated", 2, team_id="T-ONE")
        assert updated[-1]["capacity"] == 1

        # a new time: the meetings and the cases on them are announced again with it
        retimed = await api.put("/api/v1/teams/T-ONE", json={**change, "capacity": 1, "time": "10:30"}, headers=admin)
        assert retimed.status_code == 200
        again = await meeting.tap.wait_for("CaseScheduled", 3, case_ref="C0")  # DEC1, DEC15, new time
        assert again[-1]["meeting_id"] == meeting_id(DEC15)
        assert again[-1]["starts_at"].startswith("2026-12-15T09:30:00")  # 10:30 Swedish time
        change["time"] = "10:30"

        # a new weekday starts a new calendar: open meetings off it are cancelled
        moved = await api.put(
            "/api/v1/teams/T-ONE", json={**change, "capacity": 1, "weekday": "wednesday"}, headers=admin
        )
        assert moved.status_code == 200
        cancelled = await meeting.tap.wait_for("MeetingCancelled", 6, team_id="T-ONE")
        assert {c["reason"] for c in cancelled[1:]} == {"rescheduled"}
        wednesdays = await meeting.tap.wait_for("MeetingScheduled", 1, team_id="T-ONE", meeting_date="2026-12-02")
        assert wednesdays
        await meeting.until_agenda(date(2026, 12, 2), ["C0"])
        new_team = await api.put("/api/v1/teams/T-NEW", json={**change, "name": "Ny"}, headers=admin)
        assert new_team.status_code == 200 and new_team.json()["revision"] == 1
        await meeting.tap.wait_for("MeetingScheduled", 6, team_id="T-NEW")


async def test_pre_meeting_and_consultation_are_recorded_by_the_coordinator(meeting):
    await meeting.queue(*[case_referred(f"C{i}", minute=i) for i in range(3)])
    await meeting.until_agenda(DEC1, ["C0", "C1", "C2"])
    dec1 = meeting_id(DEC1)
    held = {
        "outcome": "held",
        "held_on": str(DEC1),
        "parties_present": ["AF", "FK", "REGION"],
        "others_invited": ["physician"],
        "individual_attended": True,
        "actions": [
            {"type": "sip", "responsible_party": "KOMMUN", "due_on": "2026-12-20"},
            {"type": "work_ability_assessment", "responsible_party": "FK", "due_on": "2027-01-15"},
        ],
    }
    url = f"/api/v1/meetings/{dec1}/cases/C0/consultation"
    async with client_for(meeting.runtime) as api:
        boss = coordinator(meeting.settings)
        early = await api.post(url, json=held, headers=boss)
        assert early.status_code == 409 and early.json()["detail"]["code"] == "agenda_open"
        meeting.clock.set(AFTER_DEC1_CUTOFF)
        await meeting.until_status(DEC1, "closed")
        future = await api.post(url, json=held, headers=boss)
        assert future.status_code == 422 and future.json()["detail"]["code"] == "held_on_in_future"
        pre = await api.post(f"/api/v1/meetings/{dec1}/pre-meeting", json={"held_on": "2026-11-26"}, headers=boss)
        assert pre.status_code == 200
        [pre_held] = await meeting.tap.wait_for("PreMeetingHeld", meeting_id=dec1)
        assert pre_held["held_on"] == "2026-11-26"

        meeting.clock.set(datetime(2026, 12, 1, 11, 0, tzinfo=STOCKHOLM))
        member = token(meeting.settings, party="FK", role="member", teams=["T-ONE"])
        assert (await api.post(url, json=held, headers=member)).status_code == 403
        bad = await api.post(url, json={**held, "parties_present": []}, headers=boss)
        assert bad.status_code == 422
        bad = await api.post(
            url,
            json={**held, "actions": [{"type": "cure", "responsible_party": "FK", "due_on": "2027-01-01"}]},
            headers=boss,
        )
        assert bad.status_code == 422
        created = await api.post(url, json=held, headers=boss)
        assert created.status_code == 201, created.text
        again = await api.post(url, json=held, headers=boss)
        assert again.status_code == 200 and again.json() == created.json()
        other = await api.post(url, json={**held, "individual_attended": False}, headers=boss)
        assert other.status_code == 409 and other.json()["detail"]["code"] == "already_recorded"
        not_consulted = await api.post(
            f"/api/v1/meetings/{dec1}/cases/C1/consultation",
            json={"outcome": "not_consulted", "reason": "individual_withdrew"},
            headers=boss,
        )
        assert not_consulted.status_code == 201
        wrong_meeting = await api.post(
            f"/api/v1/meetings/{meeting_id(DEC15)}/cases/C2/consultation", json=held, headers=boss
        )
        assert wrong_meeting.status_code == 409
        assert (
            await api.post("/api/v1/meetings/NOPE-1/cases/C2/consultation", json=held, headers=boss)
        ).status_code == 404
        cancel = await api.post(f"/api/v1/meetings/{dec1}/cancellation", json={"reason": "staff_absent"}, headers=boss)
        assert cancel.status_code == 409 and cancel.json()["detail"]["code"] == "meeting_held"

    [event] = await meeting.tap.wait_for("ConsultationHeld", case_ref="C0")
    assert event["meeting_id"] == dec1 and event["held_on"] == str(DEC1)
    assert event["parties_present"] == ["AF", "FK", "REGION"] and event["individual_attended"] is True
    assert event["others_invited"] == ["physician"] and event["referring_party"] == "AF"
    assert [a["type"] for a in event["actions"]] == ["sip", "work_ability_assessment"]
    assert event["referred_at"].startswith("2026-11-20T08:00")
    [skipped] = await meeting.tap.wait_for("CaseNotConsulted", case_ref="C1")
    assert skipped["reason"] == "individual_withdrew"
    assert len(meeting.tap.of("ConsultationHeld")) == 1  # the repeat published nothing
