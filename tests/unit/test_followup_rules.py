"""The follow-up rules, pure: due dates, the scheduler's steps, what a record must hold."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from services.followup import domain
from services.followup.domain import Answers, Rules
from shared.contracts.vocabulary import ExitReason, FollowUpKind, NotConsultedReason

NOW = datetime(2027, 1, 12, 9, tzinfo=UTC)


def test_due_dates_eight_weeks_and_six_months_after_the_consultation():
    assert domain.followups_for(date(2026, 8, 31), Rules()) == [
        (FollowUpKind.PLAN_CHECK, date(2026, 10, 26)),
        (FollowUpKind.SIX_MONTHS, date(2027, 2, 28)),
    ]
    assert domain.followups_for(date(2026, 1, 31), Rules(twelve_months=True))[1:] == [
        (FollowUpKind.SIX_MONTHS, date(2026, 7, 31)),
        (FollowUpKind.TWELVE_MONTHS, date(2027, 1, 31)),
    ]
    assert domain.add_months(date(2024, 8, 31), 6) == date(2025, 2, 28)
    assert domain.add_months(date(2023, 8, 31), 6) == date(2024, 2, 29)
    assert domain.due_at(date(2027, 1, 12)).astimezone(UTC).hour == 7  # 08:00 in winter


def test_scheduler_steps_due_then_overdue_up_to_the_limit_then_escalation():
    rules = Rules(overdue_days=14, reminder_interval_days=7, reminder_limit=2)
    due = domain.next_step(status="pending", reminders_sent=0, now=NOW, rules=rules)
    assert (due.send, due.status, due.next_action_at) == ("due", "due", NOW + timedelta(days=14))
    first = domain.next_step(status="due", reminders_sent=0, now=NOW, rules=rules)
    assert (first.send, first.reminders_sent, first.next_action_at) == ("overdue", 1, NOW + timedelta(days=7))
    second = domain.next_step(status="due", reminders_sent=1, now=NOW, rules=rules)
    assert (second.send, second.reminders_sent) == ("overdue", 2)
    last = domain.next_step(status="due", reminders_sent=2, now=NOW, rules=rules)
    assert (last.send, last.next_action_at) == ("escalate", None)
    assert domain.next_step(status="completed", reminders_sent=0, now=NOW, rules=rules) is None
    assert domain.next_step(status="cancelled", reminders_sent=0, now=NOW, rules=rules) is None


def check(kind=FollowUpKind.SIX_MONTHS, status="due", by="AF", **answers):
    values = (
        dict(recorded_on=date(2027, 1, 10), reached=True, income_source="LON", readiness="more", plan_status=None)
        | answers
    )
    return [
        (p.code, p.field)
        for p in domain.record_problems(
            kind=kind,
            status=status,
            responsible="AF",
            by_party=by,
            answers=Answers(**values),
            held_on=date(2026, 11, 17),
            today=date(2027, 1, 12),
        )
    ]


def test_what_a_record_must_hold():
    assert check() == []
    assert check(readiness="not_answered") == []
    assert check(income_source=None, readiness=None) == [
        ("income_source_missing", "income_source"),
        ("readiness_missing", "readiness"),
    ]
    assert check(kind=FollowUpKind.PLAN_CHECK, income_source=None, readiness=None) == [
        ("plan_status_missing", "plan_status")
    ]
    assert check(reached=False, income_source=None, readiness=None) == []
    assert check(reached=False) == [
        ("answers_when_not_reached", "income_source"),
        ("answers_when_not_reached", "readiness"),
    ]
    assert check(recorded_on=date(2027, 1, 13)) == [("date_in_future", "recorded_on")]
    assert check(recorded_on=date(2026, 11, 1)) == [("recorded_before_consultation", "recorded_on")]
    assert check(by="FK") == [("not_responsible", None)]
    assert check(status="cancelled") == [("followup_cancelled", None)]
    assert check(status="completed") == []  # a correction
    assert check(by="FK", status="cancelled") == [("not_responsible", None)]  # nothing learnt
    assert check(kind=FollowUpKind.PLAN_CHECK, plan_status="done") == [
        ("not_asked", "income_source"),
        ("not_asked", "readiness"),
    ]


def test_exits():
    assert domain.exit_reason_when_not_consulted(NotConsultedReason.INDIVIDUAL_WITHDREW) == ExitReason.CONSENT_WITHDRAWN
    assert domain.exit_reason_when_not_consulted(NotConsultedReason.HANDLED_ELSEWHERE) == ExitReason.OTHER
    assert domain.every_consent_withdrawn({"AF": "withdrawn", "FK": "withdrawn"})
    assert not domain.every_consent_withdrawn({"AF": "withdrawn", "FK": "given"})
    assert not domain.every_consent_withdrawn({})
    assert domain.followups_for(date(2026, 1, 31), Rules(twelve_months=True, long_months=9))[2] == (
        FollowUpKind.TWELVE_MONTHS,
        date(2026, 10, 31),
    )
