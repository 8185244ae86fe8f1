"""The meeting use cases on the in-memory unit of work (``tests/fakes/meeting.py``): the
registry and calendar, a case's way through the queue and the cut-off, cancellations, consent
changes, closure, the pre-meeting and the consultation record. No servers.

Team T-ONE meets every other Tuesday at 09:00 from 1 December, 3 cases per meeting, agenda
cut-off 5 days before (Thursday 09:00). The clock starts Monday 23 November.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta

import pytest

from services.meeting import agenda, calendar, consultation
from services.meeting.domain import Consultation, Refused, SkipDate, meeting_id, team_entry
from shared.contracts import (
    CaseNotConsulted,
    CasePostponed,
    CaseReferred,
    CaseScheduled,
    ConsentRecorded,
    ConsentReminder,
    ConsentWithdrawn,
    ConsultationHeld,
    MeetingCancelled,
    MeetingScheduled,
    PlanAction,
    PreMeetingHeld,
    TeamUpdated,
)
from shared.contracts.vocabulary import CancellationReason, NotConsultedReason, Party
from shared.platform.clock import STOCKHOLM, SettableClock
from tests.fakes.meeting import FakeMeetingUnitOfWork

ALL = ("AF", "FK", "KOMMUN", "REGION")
START = datetime(2026, 11, 23, 12, 0, tzinfo=STOCKHOLM)  # a Monday
DATES = [date(2026, 12, 1) + timedelta(weeks=2 * k) for k in range(6)]
DEC1, DEC15, DEC29 = DATES[:3]
AFTER_DEC1_CUTOFF = datetime(2026, 11, 26, 9, 1, tzinfo=STOCKHOLM)
ENTRY = {
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
}
DEC1_ID, DEC15_ID, DEC29_ID = (meeting_id("T-ONE", d) for d in (DEC1, DEC15, DEC29))


async def team_one(**settings) -> FakeMeetingUnitOfWork:
    """A unit of work with T-ONE registered from the registry file and its calendar generated."""
    uow = FakeMeetingUnitOfWork(clock=SettableClock(START), **settings)
    assert await calendar.seed_teams(uow, [ENTRY], file_version=1) == 1
    return uow


def referred(case_ref: str, *, minute: int = 0, consented=ALL, party: str = "AF") -> CaseReferred:
    return CaseReferred(
        case_ref=case_ref,
        team_id="T-ONE",
        municipality="Gävle",
        referring_party=party,
        gender="WOMAN",
        age_band="25-34",
        income_source="SJUKPENNING",
        consented_parties=consented,
        wishes_to_attend=True,
        violence_question_asked=False,
        reason_codes=(),
        referred_at=datetime(2026, 11, 20, 8, minute, tzinfo=STOCKHOLM),
    )


async def refer(uow: FakeMeetingUnitOfWork, *cases: CaseReferred) -> None:
    for case in cases:
        await agenda.case_referred(uow, case)


def consent(case_ref: str, party: str, *, withdrawn: bool, at: datetime) -> ConsentRecorded | ConsentWithdrawn:
    if withdrawn:
        return ConsentWithdrawn(
            case_ref=case_ref,
            party=party,
            withdrawn_on=at.date(),
            on_behalf_of_individual=True,
            recorded_by="AF",
            recorded_at=at,
        )
    return ConsentRecorded(case_ref=case_ref, party=party, given_on=at.date(), recorded_by="AF", recorded_at=at)


async def on_agenda(uow: FakeMeetingUnitOfWork, day: date) -> list[str]:
    return [c.case_ref for c in await uow.cases.on_meeting(meeting_id("T-ONE", day))]


async def past_cutoff(uow: FakeMeetingUnitOfWork, at: datetime = AFTER_DEC1_CUTOFF) -> None:
    uow.clock.set(at)
    assert await calendar.maintain(uow, "T-ONE")


# --------------------------------------------------------------------------- the calendar


async def test_a_registered_team_gets_its_calendar_ahead_announced_once():
    uow = await team_one()
    [team] = uow.of_type(TeamUpdated)
    assert team.fixed_parties == tuple(Party(p) for p in ALL) and team.revision == 1 and team.weekday == 1
    scheduled = uow.of_type(MeetingScheduled)
    assert [s.meeting_date for s in scheduled] == DATES
    assert scheduled[0].starts_at.isoformat() == "2026-12-01T08:00:00+00:00"  # 09:00 Swedish time
    assert scheduled[0].cutoff_at.isoformat() == "2026-11-26T08:00:00+00:00" and scheduled[0].capacity == 3
    assert uow.ordering_keys[:2] == ["team:T-ONE", DEC1_ID]

    uow.clock.set(START + timedelta(hours=1))  # later rounds announce nothing twice
    assert await calendar.maintain(uow, "T-ONE")
    assert await calendar.seed_teams(uow, [ENTRY], file_version=1) == 0
    assert len(uow.events) == 1 + len(DATES)


async def test_an_invalid_registry_entry_is_skipped():
    uow = FakeMeetingUnitOfWork(clock=SettableClock(START))
    assert await calendar.seed_teams(uow, [{**ENTRY, "weekday": "someday"}, {"team_id": "X"}], 1) == 0
    assert uow.events == []


async def test_a_new_time_retimes_meetings_and_their_cases_and_a_new_weekday_starts_a_new_calendar():
    uow = await team_one()
    await refer(uow, referred("C0"))
    entry = {**ENTRY, "time": "10:30"}
    assert await calendar.save_team(uow, "T-ONE", team_entry(entry), by="admin:a")
    assert not await calendar.save_team(uow, "T-ONE", team_entry(entry), by="admin:a")
    assert (await uow.teams.get("T-ONE")).revision == 2
    again = uow.of_type(CaseScheduled)[-1]
    assert again.case_ref == "C0" and again.starts_at.isoformat() == "2026-12-01T09:30:00+00:00"

    wednesday = team_entry({**entry, "weekday": "wednesday"})
    assert await calendar.save_team(uow, "T-ONE", wednesday, by="admin:a")
    cancelled = uow.of_type(MeetingCancelled)
    assert len(cancelled) == 6 and {c.reason for c in cancelled} == {CancellationReason.RESCHEDULED}
    [moved] = uow.of_type(CasePostponed)
    assert (moved.reason, moved.to_meeting_date) == ("meeting_cancelled", date(2026, 12, 2))


async def test_a_skip_date_cancels_its_meeting_and_removing_it_brings_the_meeting_back():
    uow = await team_one()
    await refer(uow, referred("C0"))
    with pytest.raises(Refused, match="team_not_found"):
        await calendar.add_skip_date(uow, SkipDate("NOPE", DEC1, "Helgdag"), by="admin:a")
    assert await calendar.add_skip_date(uow, SkipDate("*", DEC1, "Helgdag"), by="admin:a") == 1
    [cancelled] = uow.of_type(MeetingCancelled)
    assert (cancelled.meeting_id, cancelled.reason, cancelled.cases_moved) == (DEC1_ID, "holiday", 1)
    assert await on_agenda(uow, DEC15) == ["C0"]

    await calendar.remove_skip_date(uow, "*", DEC1)
    with pytest.raises(Refused, match="skip_date_not_found"):
        await calendar.remove_skip_date(uow, "*", DEC1)
    assert await calendar.maintain(uow, "T-ONE")
    assert (await uow.meetings.get(DEC1_ID)).status == "open"
    assert await on_agenda(uow, DEC1) == ["C0"]  # back to the earlier meeting


# --------------------------------------------------------------------------- the queue


async def test_cases_fill_meetings_by_capacity_first_come_first_served():
    uow = await team_one()
    await refer(uow, *[referred(f"C{i}", minute=i) for i in range(8)])
    assert [await on_agenda(uow, d) for d in (DEC1, DEC15, DEC29)] == [
        ["C0", "C1", "C2"],
        ["C3", "C4", "C5"],
        ["C6", "C7"],
    ]
    assert [(e.case_ref, e.meeting_id) for e in uow.of_type(CaseScheduled)] == [
        (f"C{i}", meeting_id("T-ONE", DATES[i // 3])) for i in range(8)
    ]
    assert uow.of_type(CasePostponed) == []  # arrivals never move anyone
    where = await agenda.case_schedule(uow, "C7")
    assert (where.position, where.meeting_date, where.expected_date) == (8, DEC29, DEC29)


async def test_cases_referred_together_are_placed_as_one_by_one_would_place_them():
    """A group commit's batch of referrals (``cases_referred``): the same agendas and the same
    events, in the same order, as the same referrals one by one; a case known already is left."""
    cases = [referred(f"C{i}", minute=i, consented=ALL if i != 4 else ("AF", "KOMMUN")) for i in range(8)]
    one_by_one = await team_one()
    await refer(one_by_one, *cases)
    together = await team_one()
    await agenda.cases_referred(together, cases[:5])
    await agenda.cases_referred(together, [cases[2], *cases[5:]])  # C2 again: known already
    assert [await on_agenda(together, d) for d in (DEC1, DEC15, DEC29)] == [
        await on_agenda(one_by_one, d) for d in (DEC1, DEC15, DEC29)
    ]
    assert together.of_type(CaseScheduled) == one_by_one.of_type(CaseScheduled) != []


async def test_overflow_waits_in_the_queue_with_an_expected_date_until_the_calendar_reaches_it():
    uow = await team_one()
    await refer(uow, *[referred(f"C{i:02}", minute=i) for i in range(20)])
    queue = await agenda.queue(uow, await calendar.team(uow, "T-ONE"))
    assert [(w.case_ref, expected) for w, expected in queue][17:] == [
        ("C17", DATES[-1]),
        ("C18", DATES[-1] + timedelta(weeks=2)),
        ("C19", DATES[-1] + timedelta(weeks=2)),
    ]
    where = await agenda.case_schedule(uow, "C19")
    assert (where.position, where.case.meeting_id) == (20, None)

    uow.clock.set(START + timedelta(weeks=2))  # the calendar reaches further
    assert await calendar.maintain(uow, "T-ONE")
    assert [e.meeting_date for e in uow.of_type(CaseScheduled) if e.case_ref == "C18"] == [
        DATES[-1] + timedelta(weeks=2)
    ]


# --------------------------------------------------------------------------- the cut-off


async def test_at_the_cutoff_a_case_without_fks_consent_moves_on_its_agency_is_reminded_and_its_seat_used():
    uow = await team_one()
    await refer(
        uow,
        referred("OK1"),
        referred("NOFK", party="KOMMUN", consented=("AF", "KOMMUN", "REGION")),
        referred("OK2"),
        referred("OK3"),
    )
    assert await on_agenda(uow, DEC1) == ["OK1", "NOFK", "OK2"]  # before the cut-off it may still come
    await past_cutoff(uow)
    [postponed] = uow.of_type(CasePostponed)
    assert (postponed.case_ref, postponed.reason, postponed.missing_parties) == ("NOFK", "consent_missing", (Party.FK,))
    assert (postponed.from_meeting_id, postponed.to_meeting_id) == (DEC1_ID, DEC15_ID)
    [reminder] = uow.of_type(ConsentReminder)
    assert (reminder.recipient, reminder.next_meeting_date) == (Party.KOMMUN, DEC15)
    assert (await uow.meetings.get(DEC1_ID)).status == "closed"
    assert await on_agenda(uow, DEC1) == ["OK1", "OK2", "OK3"]  # the freed seat is used
    assert [e.meeting_id for e in uow.of_type(CaseScheduled) if e.case_ref == "OK3"] == [DEC15_ID, DEC1_ID]
    assert await on_agenda(uow, DEC15) == ["NOFK"]
    assert (await uow.cases.get("NOFK")).postponements == 1

    # consent recorded: at the next cut-off it keeps its seat
    await agenda.consent_given(uow, consent("NOFK", "FK", withdrawn=False, at=AFTER_DEC1_CUTOFF))
    await past_cutoff(uow, datetime(2026, 12, 10, 9, 1, tzinfo=STOCKHOLM))
    assert await on_agenda(uow, DEC15) == ["NOFK"] and len(uow.of_type(CasePostponed)) == 1


async def test_freed_seats_go_to_the_next_cases_in_queue_order_that_have_every_fixed_partys_consent():
    uow = await team_one()
    lacking = ("AF", "KOMMUN", "REGION")
    await refer(
        uow, *[referred(ref, minute=i, consented=lacking if ref in "ABD" else ALL) for i, ref in enumerate("ABCDEFG")]
    )
    assert [await on_agenda(uow, d) for d in (DEC1, DEC15, DEC29)] == [["A", "B", "C"], ["D", "E", "F"], ["G"]]
    await past_cutoff(uow)
    assert await on_agenda(uow, DEC1) == ["C", "E", "F"]  # D lacks FK's consent too: passed over
    assert await on_agenda(uow, DEC15) == ["A", "B", "D"]  # ahead of newer cases
    assert await on_agenda(uow, DEC29) == ["G"]
    assert {(e.case_ref, e.reason) for e in uow.of_type(CasePostponed)} == {
        ("A", "consent_missing"),
        ("B", "consent_missing"),
    }
    assert [r.case_ref for r in uow.of_type(ConsentReminder)] == ["A", "B"]


async def test_a_withdrawn_consent_keeps_or_loses_the_seat_as_configured():
    # the default configuration postpones on FK's withdrawal only: AF's withdrawal keeps the seat
    uow = await team_one()
    await refer(uow, referred("C0"))
    await agenda.consent_withdrawn(uow, consent("C0", "AF", withdrawn=True, at=START))
    await past_cutoff(uow)
    assert await on_agenda(uow, DEC1) == ["C0"] and uow.of_type(CasePostponed) == []

    strict = await team_one(postpone_on_withdrawal=frozenset({"AF", "FK"}))
    await refer(strict, referred("C0"))
    await agenda.consent_withdrawn(strict, consent("C0", "AF", withdrawn=True, at=START))
    [postponed] = strict.of_type(CasePostponed)
    assert (postponed.reason, postponed.missing_parties, postponed.to_meeting_id) == (
        "consent_withdrawn",
        (Party.AF,),
        None,
    )
    assert (await strict.cases.get("C0")).status == "on_hold"


async def test_a_meeting_without_cases_at_its_cutoff_is_cancelled():
    uow = await team_one()
    await past_cutoff(uow)
    [cancelled] = uow.of_type(MeetingCancelled)
    assert (cancelled.meeting_id, cancelled.reason, cancelled.cases_moved) == (DEC1_ID, "no_cases", 0)
    assert (await uow.meetings.get(DEC15_ID)).status == "open"


# --------------------------------------------------------------------------- cancellation, consent, closure


async def test_a_cancelled_meetings_cases_move_to_the_next_meeting_ahead_of_newer_cases():
    uow = await team_one()
    await refer(uow, *[referred(f"C{i}", minute=i) for i in range(6)])
    moved = await agenda.cancel_meeting(uow, DEC1_ID, CancellationReason.OTHER, "Lokalen är upptagen", "rk-1")
    assert moved == 3
    assert await on_agenda(uow, DEC15) == ["C0", "C1", "C2"] and await on_agenda(uow, DEC29) == ["C3", "C4", "C5"]
    reasons = {e.case_ref: (e.reason, e.to_meeting_id) for e in uow.of_type(CasePostponed)}
    assert reasons == {
        **{f"C{i}": ("meeting_cancelled", DEC15_ID) for i in range(3)},
        **{f"C{i}": ("displaced", DEC29_ID) for i in range(3, 6)},
    }
    [cancelled] = uow.of_type(MeetingCancelled)
    assert cancelled.reason == "other" and "Lokalen" not in cancelled.model_dump_json()  # the note stays here
    assert uow.meetings.cancelled[DEC1_ID] == ("Lokalen är upptagen", "rk-1")
    with pytest.raises(Refused, match="meeting_cancelled") as again:
        await agenda.cancel_meeting(uow, DEC1_ID, CancellationReason.STAFF_ABSENT, None, "rk-1")
    assert again.value.conflict
    with pytest.raises(Refused, match="meeting_not_found"):
        await agenda.cancel_meeting(uow, "NOPE-1", CancellationReason.STAFF_ABSENT, None, "rk-1")


async def test_withdrawal_for_a_party_that_postpones_puts_the_case_on_hold_until_consent_is_given_again():
    uow = await team_one()
    await refer(uow, *[referred(f"C{i}", minute=i) for i in range(4)])
    await agenda.consent_withdrawn(uow, consent("C0", "FK", withdrawn=True, at=START))
    [postponed] = uow.of_type(CasePostponed)
    assert (postponed.case_ref, postponed.reason, postponed.to_meeting_id) == ("C0", "consent_withdrawn", None)
    assert (await uow.cases.get("C0")).status == "on_hold"
    assert await on_agenda(uow, DEC1) == ["C1", "C2", "C3"]  # C3 moves up into the free seat

    await agenda.consent_given(uow, consent("C0", "FK", withdrawn=False, at=START + timedelta(minutes=1)))
    assert await on_agenda(uow, DEC1) == ["C0", "C1", "C2"]  # back at its place in the queue
    assert await on_agenda(uow, DEC15) == ["C3"]
    assert (uow.of_type(CasePostponed)[-1].case_ref, uow.of_type(CasePostponed)[-1].reason) == ("C3", "displaced")


async def test_a_withdrawal_after_the_meeting_was_held_leaves_the_case_to_be_recorded():
    uow = await team_one()
    await refer(uow, referred("C0"))
    await past_cutoff(uow, datetime(2026, 12, 2, 9, tzinfo=STOCKHOLM))
    await agenda.consent_withdrawn(uow, consent("C0", "FK", withdrawn=True, at=uow.clock.now()))
    assert (await uow.cases.get("C0")).status == "queued" and uow.of_type(CasePostponed) == []


async def test_a_closed_case_leaves_the_queue_and_its_seat_goes_to_the_next():
    uow = await team_one()
    await refer(uow, *[referred(f"C{i}", minute=i) for i in range(4)])
    closed_at = uow.clock.now()
    await agenda.case_closed(uow, "C1", closed_at)
    assert await on_agenda(uow, DEC1) == ["C0", "C2", "C3"]
    assert uow.cases.closed_at == {"C1": closed_at}  # its retention period runs from then
    assert (await uow.cases.get("C1")).status == "closed"
    await agenda.case_closed(uow, "C1", closed_at)  # again: nothing more
    await agenda.case_closed(uow, "UNKNOWN", closed_at)


# --------------------------------------------------------------------------- the pre-meeting and consultation


async def test_the_pre_meeting_is_recorded_once_and_not_ahead_of_time():
    uow = await team_one()
    await past_cutoff(uow)
    with pytest.raises(Refused, match="held_on_in_future"):
        await consultation.record_pre_meeting(uow, DEC15_ID, date(2026, 11, 27), "rk-1")
    await consultation.record_pre_meeting(uow, DEC15_ID, date(2026, 11, 26), "rk-1")
    await consultation.record_pre_meeting(uow, DEC15_ID, date(2026, 11, 26), "rk-1")
    [held] = uow.of_type(PreMeetingHeld)
    assert (held.meeting_id, held.held_on) == (DEC15_ID, date(2026, 11, 26))
    assert uow.meetings.pre_meetings_recorded_by[DEC15_ID] == "rk-1"


class FakeReferral:
    """The referral service's case details: granted for every case asked for."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    async def case_details(self, case_ref: str, *, authorization: str, purpose: str) -> dict:
        self.asked.append((case_ref, purpose))
        return {"details": {"question": f"question of {case_ref}"}}


async def test_the_pre_meeting_agenda_asks_for_details_only_where_the_callers_party_has_consent():
    uow = await team_one()
    await refer(uow, referred("C0"), referred("NOAF", consented=("FK", "KOMMUN", "REGION")))
    entries = await agenda.agenda_of(uow, await agenda.meeting(uow, DEC1_ID))
    referral = FakeReferral()
    details = await consultation.pre_meeting_details(referral, DEC1_ID, entries, Party.AF, "Bearer x")
    assert details == {"C0": {"details": {"question": "question of C0"}}, "NOAF": {"withheld": "no_consent"}}
    assert referral.asked == [("C0", f"pre-meeting {DEC1_ID}")]


HELD = Consultation(
    held_on=DEC1,
    parties_present=(Party.AF, Party.FK, Party.REGION),
    others_invited=("physician",),
    individual_attended=True,
    actions=(PlanAction(type="sip", responsible_party="KOMMUN", due_on=date(2026, 12, 20)),),
)


async def test_a_consultation_is_recorded_once_the_meeting_is_held_and_the_same_record_again_answered_alike():
    uow = await team_one()
    await refer(uow, *[referred(f"C{i}", minute=i) for i in range(3)])
    with pytest.raises(Refused, match="agenda_open"):
        await consultation.record_consultation(uow, DEC1_ID, "C0", HELD, "rk-1")
    await past_cutoff(uow, datetime(2026, 12, 1, 11, tzinfo=STOCKHOLM))
    created, published = await consultation.record_consultation(uow, DEC1_ID, "C0", HELD, "rk-1")
    assert created and published["held_on"] == "2026-12-01" and published["others_invited"] == ["physician"]
    [event] = uow.of_type(ConsultationHeld)
    assert (event.case_ref, event.referring_party, event.individual_attended) == ("C0", Party.AF, True)
    assert [a.type for a in event.actions] == ["sip"] and uow.ordering_keys[-1] == "C0"
    assert (await uow.cases.get("C0")).status == "consulted"

    assert await consultation.record_consultation(uow, DEC1_ID, "C0", HELD, "rk-1") == (False, published)
    assert len(uow.of_type(ConsultationHeld)) == 1  # the repeat announced nothing
    with pytest.raises(Refused, match="already_recorded"):
        await consultation.record_consultation(uow, DEC1_ID, "C0", replace(HELD, individual_attended=False), "rk-1")

    created, _ = await consultation.record_consultation(
        uow, DEC1_ID, "C1", NotConsultedReason.INDIVIDUAL_WITHDREW, "rk-1"
    )
    [skipped] = uow.of_type(CaseNotConsulted)
    assert created and skipped.reason == "individual_withdrew"
    assert (await uow.cases.get("C1")).status == "not_consulted"
    entries = await agenda.agenda_of(uow, await agenda.meeting(uow, DEC1_ID))
    assert [(e.case.case_ref, e.outcome) for e in entries] == [("C0", "held"), ("C1", "not_consulted"), ("C2", None)]
    with pytest.raises(Refused, match="meeting_held"):
        await agenda.cancel_meeting(uow, DEC1_ID, CancellationReason.STAFF_ABSENT, None, "rk-1")


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"held_on": date(2026, 12, 2)}, "held_on_in_future"),
        ({"held_on": date(2026, 11, 30)}, "held_before_meeting"),
        ({"parties_present": (Party.AF, Party.AF)}, "party_repeated"),
        (
            {"actions": (PlanAction(type="sip", responsible_party="FK", due_on=date(2026, 11, 1)),)},
            "action_due_before_consultation",
        ),
    ],
)
async def test_a_consultation_record_with_a_problem_is_refused_and_nothing_recorded(change, code):
    uow = await team_one()
    await refer(uow, referred("C0"))
    await past_cutoff(uow, datetime(2026, 12, 1, 11, tzinfo=STOCKHOLM))
    with pytest.raises(Refused) as refused:
        await consultation.record_consultation(uow, DEC1_ID, "C0", replace(HELD, **change), "rk")
    assert refused.value.code == code and not refused.value.conflict
    assert uow.of_type(ConsultationHeld) == [] and uow.consultations.rows == {}


async def test_a_consultation_only_for_a_case_on_this_meetings_agenda():
    uow = await team_one()
    await refer(uow, *[referred(f"C{i}", minute=i) for i in range(4)])
    await past_cutoff(uow, datetime(2026, 12, 1, 11, tzinfo=STOCKHOLM))
    for meeting, case_ref, code in (
        (DEC15_ID, "C3", "agenda_open"),
        (DEC1_ID, "C3", "not_on_agenda"),
        (DEC1_ID, "NOPE", "case_not_found"),
        ("NOPE-1", "C0", "meeting_not_found"),
    ):
        with pytest.raises(Refused) as refused:
            await consultation.record_consultation(uow, meeting, case_ref, NotConsultedReason.OTHER, "rk-1")
        assert refused.value.code == code and refused.value.conflict
