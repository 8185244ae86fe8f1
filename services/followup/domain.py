"""Follow-up rules, pure (no I/O): when follow-ups are due, what the scheduler does next, what a
record must hold, and how a case's follow-up ends.

- On a consultation: a plan check ``plan_check_weeks`` after it, the outcome follow-up
  ``outcome_months`` after it, and (when switched on) one at twelve months. Each is the
  responsibility of the referring party and due at 08:00 Swedish time on its date.
- The scheduler acts on a follow-up when its ``next_action_at`` has come:
  due → ``FollowUpDue``; not recorded ``overdue_days`` after that → ``FollowUpOverdue``, repeated
  every ``reminder_interval_days`` up to ``reminder_limit`` reminders; then ``FollowUpEscalated`` to
  the team's coordinator, and nothing more. Late (after downtime or for backfilled history),
  each step happens once, and the next is counted from when it happened: no burst of reminders.
- Recording: the responsible party, once reached: the plan's status at the plan check; income
  source and readiness at the outcome follow-ups. Not reached: nothing else. A new record of the
  same follow-up is a correction; the latest counts.
- The case is closed after its last follow-up (the latest due) is first recorded, reached or not
  (PLAN_COMPLETED: the follow-up programme is through), when it was
  not consulted, when every party's consent is withdrawn, or by hand with an exit reason.
"""

from __future__ import annotations

from calendar import monthrange
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from shared.platform.clock import STOCKHOLM
from shared.platform.problems import Problem, add_messages
from shared.contracts.vocabulary import ExitReason, FollowUpKind, NotConsultedReason

DUE_TIME = time(8, 0)  # reminders arrive at the start of a working day

add_messages({
    "followup_not_found": ("Uppföljningen finns inte.", "No such follow-up."),
    "not_responsible": ("Er part ansvarar inte för uppföljningen.",
                        "Your party is not responsible for this follow-up."),
    "followup_cancelled": ("Uppföljningen är avbruten: ärendet är avslutat.",
                           "The follow-up is cancelled: the case is closed."),
    "recorded_before_consultation": ("Uppföljningen är daterad före konsultationen.",
                                     "The follow-up is dated before the consultation."),
    "plan_status_missing": ("Planens status saknas.", "The plan's status is missing."),
    "income_source_missing": ("Huvudsaklig försörjning saknas.", "The main income source is missing."),
    "readiness_missing": ("Svar om arbets- eller studieberedskap saknas (eller 'not_answered').",
                          "The readiness answer is missing (or 'not_answered')."),
    "answers_when_not_reached": ("Personen nåddes inte: inga svar ska anges.",
                                 "The person was not reached: no answers may be given."),
    "not_asked": ("Frågan ställs inte vid den här uppföljningen.",
                  "This question is not asked at this follow-up."),
})


@dataclass(frozen=True)
class Rules:
    plan_check_weeks: int = 8
    outcome_months: int = 6
    twelve_months: bool = False
    overdue_days: int = 14
    reminder_interval_days: int = 7
    reminder_limit: int = 3
    long_months: int = 12  # the optional long follow-up ("twelve months")

    @classmethod
    def from_settings(cls, s) -> "Rules":
        return cls(s.followup_plan_check_weeks, s.followup_outcome_months, s.followup_twelve_months,
                   s.followup_overdue_days, s.followup_reminder_interval_days,
                   s.followup_reminder_limit, s.followup_long_months)


def add_months(day: date, months: int) -> date:
    """The same day ``months`` later (the month's last day where it is shorter)."""
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    return date(year, month, min(day.day, monthrange(year, month)[1]))


def followups_for(held_on: date, rules: Rules) -> list[tuple[FollowUpKind, date]]:
    """The follow-ups of a consultation and their due dates."""
    plan = [(FollowUpKind.PLAN_CHECK, held_on + timedelta(weeks=rules.plan_check_weeks)),
            (FollowUpKind.SIX_MONTHS, add_months(held_on, rules.outcome_months))]
    if rules.twelve_months:
        plan.append((FollowUpKind.TWELVE_MONTHS, add_months(held_on, rules.long_months)))
    return plan


def due_at(due_on: date) -> datetime:
    return datetime.combine(due_on, DUE_TIME, tzinfo=STOCKHOLM)


def followup_id(case_ref: str, kind: FollowUpKind | str) -> str:
    return f"{case_ref}.{FollowUpKind(kind).value}"


@dataclass(frozen=True)
class Step:
    """What the scheduler does now with a follow-up whose time has come."""

    send: str  # "due" | "overdue" | "escalate"
    status: str
    reminders_sent: int
    next_action_at: datetime | None


def next_step(*, status: str, reminders_sent: int, now: datetime, rules: Rules) -> Step | None:
    if status == "pending":
        return Step("due", "due", 0, now + timedelta(days=rules.overdue_days))
    if status != "due":
        return None  # completed or cancelled: nothing to do
    if reminders_sent < rules.reminder_limit:
        sent = reminders_sent + 1
        return Step("overdue", "due", sent, now + timedelta(days=rules.reminder_interval_days))
    return Step("escalate", "due", reminders_sent, None)


@dataclass(frozen=True)
class Answers:
    recorded_on: date
    reached: bool
    income_source: str | None
    readiness: str | None
    plan_status: str | None


def record_problems(*, kind: FollowUpKind, status: str, responsible: str, by_party: str,
                    answers: Answers, held_on: date, today: date) -> list[Problem]:
    if by_party != responsible:
        return [Problem("not_responsible")]
    if status == "cancelled":
        return [Problem("followup_cancelled")]
    problems = []
    if answers.recorded_on > today:
        problems.append(Problem("date_in_future", "recorded_on"))
    if answers.recorded_on < held_on:
        problems.append(Problem("recorded_before_consultation", "recorded_on"))
    given = {"income_source": answers.income_source, "readiness": answers.readiness,
             "plan_status": answers.plan_status}
    if not answers.reached:
        problems += [Problem("answers_when_not_reached", name) for name, v in given.items() if v]
        return problems
    if kind == FollowUpKind.PLAN_CHECK:
        if not answers.plan_status:
            problems.append(Problem("plan_status_missing", "plan_status"))
        problems += [Problem("not_asked", name) for name in ("income_source", "readiness")
                     if given[name]]
    else:
        if not answers.income_source:
            problems.append(Problem("income_source_missing", "income_source"))
        if not answers.readiness:
            problems.append(Problem("readiness_missing", "readiness"))
    return problems


def exit_reason_when_not_consulted(reason: NotConsultedReason) -> ExitReason:
    return (ExitReason.CONSENT_WITHDRAWN if reason == NotConsultedReason.INDIVIDUAL_WITHDREW
            else ExitReason.OTHER)


def every_consent_withdrawn(consents: dict[str, str]) -> bool:
    return bool(consents) and all(status == "withdrawn" for status in consents.values())


@dataclass(frozen=True)
class TrackedCase:
    case_ref: str
    referring_party: str
    income_source_at_referral: str
    referred_at: datetime
    team_id: str
    municipality: str
