"""The follow-up use cases on the in-memory unit of work (tests/fakes/followup.py): scheduling
after a consultation, the scheduler's reminders and escalation, recording and correcting,
closure and consent withdrawal. No servers: each rule as the service applies it, in milliseconds."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from services.followup import followups
from services.followup.domain import Answers, ClosedBy, Rules, due_at
from services.followup.handlers import handlers
from shared.contracts import (
    CaseClosed,
    CaseNotConsulted,
    CaseReferred,
    CommandAccepted,
    CommandRejected,
    ConsentRecorded,
    ConsentWithdrawn,
    ConsultationHeld,
    FollowUpCancelled,
    FollowUpCompleted,
    FollowUpDue,
    FollowUpEscalated,
    FollowUpOverdue,
    FollowUpScheduled,
    RecordFollowUp,
    envelope_for,
)
from shared.contracts.vocabulary import ExitReason, FollowUpKind, NotConsultedReason, Party
from shared.platform.auth import Principal, Role
from shared.platform.clock import STOCKHOLM, SettableClock
from shared.platform.uow import Message
from tests.fakes.followup import FakeFollowUpUnitOfWork

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=STOCKHOLM)
HELD = date(2026, 11, 17)
PLAN_DUE = date(2027, 1, 12)  # 8 weeks after
OUTCOME_DUE = date(2027, 5, 17)  # six months after


def consultation(
    case_ref: str = "C1", party: Party = Party.AF, team: str = "T-ONE", held_on: date = HELD
) -> ConsultationHeld:
    return ConsultationHeld(
        case_ref=case_ref,
        team_id=team,
        municipality="Gävle",
        meeting_id=f"{team}-X",
        meeting_date=held_on,
        held_on=held_on,
        referring_party=party,
        referred_at=datetime(2026, 10, 1, 8, tzinfo=UTC),
        parties_present=(Party.AF, Party.FK),
        others_invited=(),
        individual_attended=True,
        actions=(),
        recorded_at=NOW,
    )


def answers(recorded_on: date = date(2026, 11, 23), reached: bool = True, **given: str | None) -> Answers:
    values: dict[str, str | None] = {"income_source": None, "readiness": None, "plan_status": None, **given}
    return Answers(recorded_on=recorded_on, reached=reached, **values)


PLAN_ANSWERS = answers(plan_status="partly")
OUTCOME_ANSWERS = answers(income_source="LON", readiness="much_more")


def drain(uow: FakeFollowUpUnitOfWork) -> list:
    """The events emitted so far, forgotten: the next assertions see only what follows."""
    events = list(uow.events)
    uow.events.clear()
    uow.ordering_keys.clear()
    uow.emitted.clear()
    return events


@pytest.fixture
def uow() -> FakeFollowUpUnitOfWork:
    return FakeFollowUpUnitOfWork(clock=SettableClock(NOW))


async def consulted(uow: FakeFollowUpUnitOfWork, case_ref: str = "C1", **kw) -> None:
    await followups.schedule(uow, consultation(case_ref, **kw))
    drain(uow)


async def record(
    uow: FakeFollowUpUnitOfWork, followup_id: str = "C1.plan_check", given: Answers = PLAN_ANSWERS, by: Party = Party.AF
):
    return await followups.record(uow, followup_id, given, by_party=by, by_user="af-17", channel="http")


def principal(role: Role, party: Party, *teams: str) -> Principal:
    return Principal(user_id="u-1", party=party, role=role, teams=frozenset(teams))


# --------------------------------------------------------------------------- scheduling


async def test_a_consultation_schedules_the_plan_check_and_the_outcome_follow_up_once(uow):
    await followups.schedule(uow, consultation("C1"))
    scheduled = uow.of_type(FollowUpScheduled)
    assert {(s.kind, s.due_on, s.responsible_party) for s in scheduled} == {
        (FollowUpKind.PLAN_CHECK, PLAN_DUE, Party.AF),
        (FollowUpKind.SIX_MONTHS, OUTCOME_DUE, Party.AF),
    }
    assert uow.ordering_keys == ["C1", "C1"]
    stored = await uow.followups.of_case("C1")
    assert [(f.status, f.next_action_at) for f in stored] == [
        ("pending", due_at(PLAN_DUE)),
        ("pending", due_at(OUTCOME_DUE)),
    ]
    drain(uow)
    await followups.schedule(uow, consultation("C1"))  # the same consultation again
    assert uow.events == [] and len(await uow.followups.of_case("C1")) == 2


async def test_a_twelve_month_follow_up_when_switched_on():
    uow = FakeFollowUpUnitOfWork(rules=Rules(twelve_months=True, plan_check_weeks=6), clock=SettableClock(NOW))
    await followups.schedule(uow, consultation("C1", held_on=date(2026, 8, 31)))
    assert {s.kind.value: s.due_on.isoformat() for s in uow.of_type(FollowUpScheduled)} == {
        "plan_check": "2026-10-12",
        "six_months": "2027-02-28",
        "twelve_months": "2027-08-31",
    }


async def test_a_late_consultation_of_a_closed_case_schedules_nothing(uow):
    await followups.not_consulted(
        uow,
        CaseNotConsulted(
            case_ref="N1",
            team_id="T-ONE",
            municipality="Gävle",
            meeting_id="T-ONE-X",
            meeting_date=HELD,
            referring_party=Party.AF,
            reason=NotConsultedReason.INDIVIDUAL_WITHDREW,
            recorded_at=NOW,
        ),
    )
    [closed] = uow.of_type(CaseClosed)
    assert closed.reason == ExitReason.CONSENT_WITHDRAWN
    await followups.schedule(uow, consultation("N1"))
    assert uow.of_type(FollowUpScheduled) == [] and await uow.followups.of_case("N1") == []


@pytest.mark.parametrize(
    "reason,exit_reason",
    [
        (NotConsultedReason.INDIVIDUAL_WITHDREW, ExitReason.CONSENT_WITHDRAWN),
        (NotConsultedReason.HANDLED_ELSEWHERE, ExitReason.OTHER),
    ],
)
async def test_a_case_not_consulted_is_closed(uow, reason, exit_reason):
    await followups.not_consulted(
        uow,
        CaseNotConsulted(
            case_ref="N1",
            team_id="T-ONE",
            municipality="Gävle",
            meeting_id="T-ONE-X",
            meeting_date=HELD,
            referring_party=Party.AF,
            reason=reason,
            recorded_at=NOW,
        ),
    )
    assert [type(e) for e in uow.events] == [CaseClosed] and uow.events[0].reason == exit_reason
    assert (uow.events[0].closed_by, uow.events[0].closed_by_party) == ("system:not_consulted", None)
    assert (await uow.cases.lock("N1")).exit_reason == exit_reason


# --------------------------------------------------------------------------- the scheduler


async def test_due_then_overdue_reminders_up_to_the_limit_then_escalation_to_the_coordinator(uow):
    await consulted(uow, party=Party.KOMMUN)
    assert await followups.tick(uow, 10) == 0  # nothing due yet
    moment = due_at(PLAN_DUE) + timedelta(minutes=1)
    uow.clock.set(moment)
    assert await followups.tick(uow, 10) == 1
    [due] = drain(uow)
    assert isinstance(due, FollowUpDue) and (due.recipient, due.kind, due.sent_at) == (
        Party.KOMMUN,
        FollowUpKind.PLAN_CHECK,
        moment,
    )
    assert await followups.tick(uow, 10) == 0  # once
    for n, days in ((1, 14), (2, 21), (3, 28)):
        uow.clock.set(moment + timedelta(days=days, minutes=1))
        assert await followups.tick(uow, 10) == 1
        [overdue] = drain(uow)
        assert isinstance(overdue, FollowUpOverdue)
        assert (overdue.reminder, overdue.of, overdue.recipient) == (n, 3, Party.KOMMUN)
    uow.clock.set(moment + timedelta(days=35, minutes=1))
    await followups.tick(uow, 10)
    [escalated] = drain(uow)
    assert isinstance(escalated, FollowUpEscalated)
    assert (escalated.recipient, escalated.responsible_party, escalated.reminders_sent) == (
        Party.REGION,
        Party.KOMMUN,
        3,
    )
    plan_check = await uow.followups.get("C1.plan_check")
    assert plan_check.next_action_at is None and plan_check.escalated_at == uow.clock.now()
    assert plan_check.due_sent_at == moment and plan_check.state == "overdue"
    uow.clock.set(moment + timedelta(days=90))  # nothing more for the plan check
    assert await followups.tick(uow, 10) == 0
    listed = await followups.party_followups(uow, Party.KOMMUN, "overdue", 10)
    assert [f.followup_id for f in listed] == ["C1.plan_check"]
    assert await followups.party_followups(uow, Party.KOMMUN, "due", 10) == []


async def test_after_downtime_each_step_happens_once_and_the_next_counts_from_then(uow):
    await consulted(uow)
    late = due_at(OUTCOME_DUE) + timedelta(hours=1)  # the plan check is months overdue by now
    uow.clock.set(late)
    assert await followups.tick(uow, 10) == 2
    assert {(type(e), e.kind) for e in drain(uow)} == {
        (FollowUpDue, FollowUpKind.PLAN_CHECK),
        (FollowUpDue, FollowUpKind.SIX_MONTHS),
    }
    assert {f.next_action_at for f in await uow.followups.of_case("C1")} == {late + timedelta(days=14)}


async def test_a_tick_acts_on_at_most_its_batch(uow):
    for case_ref in ("C1", "C2", "C3"):
        await consulted(uow, case_ref)
    uow.clock.set(due_at(PLAN_DUE) + timedelta(minutes=1))
    assert [await followups.tick(uow, 2), await followups.tick(uow, 2), await followups.tick(uow, 2)] == [2, 1, 0]
    assert sorted(e.case_ref for e in uow.of_type(FollowUpDue)) == ["C1", "C2", "C3"]


async def test_a_stale_next_action_is_cleared_without_a_reminder(uow):
    await consulted(uow)
    recorded = await uow.followups.get("C1.plan_check")
    await uow.followups.save(replace(recorded, status="completed"))  # its next action left behind
    uow.clock.set(due_at(PLAN_DUE) + timedelta(minutes=1))
    assert await followups.tick(uow, 10) == 1
    assert uow.events == [] and (await uow.followups.get("C1.plan_check")).next_action_at is None


# --------------------------------------------------------------------------- recording


async def test_a_record_is_accepted_and_announced(uow):
    await consulted(uow)
    decision = await record(uow)
    assert decision.problems == ()
    [completed] = uow.events
    assert isinstance(completed, FollowUpCompleted) and decision.completed == completed
    assert (completed.kind, completed.plan_status, completed.revision, completed.recorded_by) == (
        FollowUpKind.PLAN_CHECK,
        "partly",
        1,
        Party.AF,
    )
    [stored] = await uow.records.of_followup("C1.plan_check")
    assert (stored.revision, stored.channel, stored.recorded_by_user, stored.recorded_at) == (1, "http", "af-17", NOW)
    plan_check = await uow.followups.get("C1.plan_check")
    assert (plan_check.status, plan_check.next_action_at, plan_check.revision) == ("completed", None, 1)
    uow.clock.set(due_at(PLAN_DUE) + timedelta(minutes=1))  # recorded early: no reminder follows
    await followups.tick(uow, 10)
    assert uow.of_type(FollowUpDue) == []


@pytest.mark.parametrize(
    "followup_id,by,given,codes",
    [
        ("C9.plan_check", Party.AF, PLAN_ANSWERS, ["followup_not_found"]),
        ("C1.plan_check", Party.FK, PLAN_ANSWERS, ["followup_not_found"]),  # another party learns nothing
        ("C1.plan_check", Party.AF, answers(date(2026, 11, 24), plan_status="done"), ["date_in_future"]),
        ("C1.plan_check", Party.AF, answers(date(2026, 11, 1), plan_status="done"), ["recorded_before_consultation"]),
        ("C1.plan_check", Party.AF, answers(), ["plan_status_missing"]),
        ("C1.plan_check", Party.AF, answers(plan_status="done", readiness="more"), ["not_asked"]),
        ("C1.six_months", Party.AF, answers(plan_status="done"), ["income_source_missing", "readiness_missing"]),
        ("C1.six_months", Party.AF, answers(reached=False, income_source="LON"), ["answers_when_not_reached"]),
    ],
)
async def test_a_record_is_rejected_with_every_reason(uow, followup_id, by, given, codes):
    await consulted(uow)
    decision = await record(uow, followup_id, given, by=by)
    assert [p.code for p in decision.problems] == codes
    assert uow.events == [] and uow.records.rows == []
    assert {f.status for f in await uow.followups.of_case("C1")} == {"pending"}


async def test_a_person_records_a_follow_up_only_on_their_teams_cases_the_agency_system_on_any(uow):
    await consulted(uow)  # team T-ONE
    elsewhere = await followups.record(
        uow,
        "C1.plan_check",
        PLAN_ANSWERS,
        by_party=Party.AF,
        by_user="af-9",
        channel="http",
        person_teams=frozenset({"T-TWO"}),
    )
    assert [p.code for p in elsewhere.problems] == ["followup_not_in_team"] and uow.events == []
    own = await followups.record(
        uow,
        "C1.plan_check",
        PLAN_ANSWERS,
        by_party=Party.AF,
        by_user="af-9",
        channel="http",
        person_teams=frozenset({"T-ONE"}),
    )
    assert own.problems == () and own.record is not None
    assert (await record(uow, "C1.plan_check", answers(plan_status="done"))).record is not None  # AMQP: no teams


async def test_a_follow_up_of_a_closed_case_is_cancelled_and_refuses_records(uow):
    await consulted(uow)
    await followups.close(uow, "C1", ExitReason.MOVED, by=ClosedBy("u-1", Party.AF))
    drain(uow)
    decision = await record(uow)
    assert [p.code for p in decision.problems] == ["followup_cancelled"] and uow.events == []


async def test_a_correction_supersedes_and_the_same_answers_again_change_nothing(uow):
    await consulted(uow)
    await record(uow)
    corrected = await record(uow, given=answers(date(2026, 11, 23), plan_status="revised"))
    assert corrected.completed.revision == 2 and corrected.record is not None
    assert [(e.revision, e.plan_status) for e in uow.of_type(FollowUpCompleted)] == [(1, "partly"), (2, "revised")]
    drain(uow)
    same = await record(uow, given=answers(date(2026, 11, 23), plan_status="revised"))
    assert same.record is None and same.completed.revision == 2 and same.completed.plan_status == "revised"
    assert uow.events == []
    assert [(r.revision, r.plan_status) for r in await uow.records.of_followup("C1.plan_check")] == [
        (1, "partly"),
        (2, "revised"),
    ]
    assert (await uow.followups.get("C1.plan_check")).revision == 2


async def test_not_reached_is_recorded_without_answers(uow):
    await consulted(uow)
    decision = await record(uow, given=answers(reached=False))
    assert decision.problems == () and decision.completed.reached is False
    assert decision.completed.plan_status is None
    assert (await uow.records.latest("C1.plan_check")).reached is False


async def test_the_last_follow_up_first_recorded_closes_the_case_and_cancels_what_is_left(uow):
    await consulted(uow)
    await record(uow, "C1.six_months", OUTCOME_ANSWERS)  # the plan check never recorded
    assert [type(e) for e in uow.events] == [FollowUpCompleted, FollowUpCancelled, CaseClosed]
    cancelled, closed = uow.events[1], uow.events[2]
    assert (cancelled.followup_id, cancelled.reason) == ("C1.plan_check", ExitReason.PLAN_COMPLETED)
    assert closed.reason == ExitReason.PLAN_COMPLETED
    assert (closed.closed_by, closed.closed_by_party) == ("af-17", Party.AF)  # whose record ended it
    assert (await uow.followups.get("C1.plan_check")).status == "cancelled"
    drain(uow)
    await record(uow, "C1.six_months", answers(income_source="LON", readiness="more"))  # a correction
    assert [type(e) for e in uow.events] == [FollowUpCompleted]  # closed once


async def test_the_last_follow_up_not_reached_closes_the_case_too(uow):
    await consulted(uow)
    await record(uow)
    await record(uow, "C1.six_months", answers(reached=False))
    [closed] = uow.of_type(CaseClosed)
    assert closed.reason == ExitReason.PLAN_COMPLETED and uow.of_type(FollowUpCancelled) == []


# --------------------------------------------------------------------------- closure


async def test_closing_a_case_cancels_its_pending_follow_ups_and_announces_the_closure_once(uow):
    await consulted(uow, party=Party.FK)
    decision = await followups.close_by_hand(
        uow, "C1", ExitReason.MOVED, by=principal(Role.COORDINATOR, Party.REGION, "T-ONE")
    )
    assert decision.refusal is None
    assert [type(e) for e in uow.events] == [FollowUpCancelled, FollowUpCancelled, CaseClosed]
    assert {e.kind for e in uow.of_type(FollowUpCancelled)} == {FollowUpKind.PLAN_CHECK, FollowUpKind.SIX_MONTHS}
    [closed] = uow.of_type(CaseClosed)
    assert (closed.reason, closed.closed_by, closed.closed_by_party) == (ExitReason.MOVED, "u-1", Party.REGION)
    case = await uow.cases.lock("C1")
    assert (case.status, case.exit_reason, case.closed_at) == ("closed", ExitReason.MOVED, NOW)
    assert case.closed_by == ClosedBy("u-1", Party.REGION)
    drain(uow)
    again = await followups.close_by_hand(uow, "C1", ExitReason.MOVED, by=principal(Role.OFFICER, Party.FK, "T-ONE"))
    assert again.refusal == "case_closed" and uow.events == []
    uow.clock.set(due_at(OUTCOME_DUE) + timedelta(days=1))
    assert await followups.tick(uow, 10) == 0  # cancelled: no reminders


@pytest.mark.parametrize(
    "by,refusal",
    [
        (principal(Role.OFFICER, Party.FK, "T-ONE"), None),  # of the referring party, on the case's team
        (principal(Role.OFFICER, Party.FK, "T-TWO"), "not_in_team"),  # of the referring party, another team
        (principal(Role.OFFICER, Party.FK), "not_in_team"),
        (principal(Role.COORDINATOR, Party.REGION, "T-ONE"), None),  # of the case's team
        (principal(Role.OFFICER, Party.AF), "not_allowed"),
        (principal(Role.COORDINATOR, Party.REGION, "T-TWO"), "not_allowed"),
        (principal(Role.MEMBER, Party.FK, "T-ONE"), "not_allowed"),
    ],
)
async def test_who_may_close_a_case_by_hand(uow, by, refusal):
    await consulted(uow, party=Party.FK)
    decision = await followups.close_by_hand(uow, "C1", ExitReason.DECEASED, by=by)
    assert decision.refusal == refusal
    assert len(uow.of_type(CaseClosed)) == (0 if refusal else 1)


async def test_an_unknown_case_is_not_closed(uow):
    decision = await followups.close_by_hand(uow, "C9", ExitReason.MOVED, by=principal(Role.OFFICER, Party.FK))
    assert decision.refusal == "case_not_found" and uow.events == []


# --------------------------------------------------------------------------- consent


def withdrawal(case_ref: str, party: Party, at: datetime = NOW) -> ConsentWithdrawn:
    return ConsentWithdrawn(
        case_ref=case_ref,
        party=party,
        withdrawn_on=at.date(),
        on_behalf_of_individual=True,
        recorded_by=Party.AF,
        recorded_at=at,
    )


async def test_the_case_is_closed_when_every_consent_is_withdrawn(uow):
    await followups.cases_referred(
        uow,
        [
            CaseReferred(
                case_ref="W1",
                team_id="T-ONE",
                municipality="Gävle",
                referring_party=Party.AF,
                gender="MAN",
                age_band="35-44",
                income_source="FORSORJNINGSSTOD",
                consented_parties=(Party.AF, Party.FK),
                wishes_to_attend=None,
                violence_question_asked=True,
                reason_codes=(),
                referred_at=datetime(2026, 10, 1, 8, tzinfo=UTC),
            )
        ],
    )
    assert (await uow.cases.lock("W1")).income_source_at_referral == "FORSORJNINGSSTOD"
    await consulted(uow, "W1")
    await followups.consent_withdrawn(uow, withdrawal("W1", Party.AF))
    assert uow.events == []  # FK's consent remains
    await followups.consent_withdrawn(uow, withdrawal("W1", Party.FK))
    assert [type(e) for e in uow.events] == [FollowUpCancelled, FollowUpCancelled, CaseClosed]
    [closed] = uow.of_type(CaseClosed)
    assert (closed.reason, closed.closed_by) == (ExitReason.CONSENT_WITHDRAWN, "system:consent_withdrawn")


async def test_consent_given_again_keeps_the_case_open_whatever_arrives_late(uow):
    await consulted(uow, "W1")
    await followups.consent_recorded(
        uow,
        ConsentRecorded(
            case_ref="W1",
            party=Party.AF,
            given_on=NOW.date(),
            recorded_by=Party.AF,
            recorded_at=NOW + timedelta(minutes=5),
        ),
    )
    await followups.consent_withdrawn(uow, withdrawal("W1", Party.AF, NOW))  # older: does not count
    assert await uow.consents.of("W1") == {"AF": "given"}
    assert uow.events == []


async def test_every_consent_withdrawn_before_the_consultation_closes_the_case_instead(uow):
    await followups.consent_withdrawn(uow, withdrawal("E1", Party.KOMMUN))  # the case not known yet
    assert uow.events == []
    await followups.schedule(uow, consultation("E1"))
    assert [type(e) for e in uow.events] == [CaseClosed]
    assert uow.events[0].reason == ExitReason.CONSENT_WITHDRAWN and await uow.followups.of_case("E1") == []


# --------------------------------------------------------------------------- the agency's command, what a party sees


def command_message(command: RecordFollowUp, user: str = "trisam-af", party: str = "AF") -> Message:
    return Message(
        envelope=envelope_for(command, producer="agency"), routing_key=f"{party}.RecordFollowUp", user_id=user
    )


async def test_an_agency_records_over_amqp_and_is_answered_alone():
    command = RecordFollowUp(
        case_ref="C1", kind=FollowUpKind.PLAN_CHECK, recorded_on=date(2026, 11, 23), reached=True, plan_status="partly"
    )
    uow = FakeFollowUpUnitOfWork(clock=SettableClock(NOW), message=command_message(command))
    await consulted(uow)
    await handlers.get(RecordFollowUp)(command, uow)
    completed, accepted = uow.events
    assert isinstance(completed, FollowUpCompleted) and isinstance(accepted, CommandAccepted)
    assert (accepted.recipient, accepted.case_ref) == (Party.AF, "C1")
    assert (await uow.records.latest("C1.plan_check")).channel == "amqp"

    six_months = RecordFollowUp(
        case_ref="C1", kind=FollowUpKind.SIX_MONTHS, recorded_on=date(2026, 11, 23), reached=True, plan_status="done"
    )
    uow.message = command_message(six_months)
    drain(uow)
    await handlers.get(RecordFollowUp)(six_months, uow)
    [rejected] = uow.events
    assert isinstance(rejected, CommandRejected)
    assert {r.code for r in rejected.reasons} == {"income_source_missing", "readiness_missing"}


async def test_a_follow_up_is_shown_to_its_responsible_party_alone(uow):
    await consulted(uow)
    await record(uow)
    followup, history = await followups.followup_with_records(uow, "C1.plan_check", Party.AF)
    assert followup.state == "completed" and [r.revision for r in history] == [1]
    assert await followups.followup_with_records(uow, "C1.plan_check", Party.FK) is None
    assert await followups.followup_with_records(uow, "C9.plan_check", Party.AF) is None
    assert [f.followup_id for f in await followups.party_followups(uow, Party.AF, "open", 10)] == ["C1.six_months"]
