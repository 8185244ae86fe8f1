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

The use cases (``followups.py``) load the facts and ask one decision here what to do:
``schedule``, ``tick``, ``record``, ``close``, ``close_by_hand``, ``close_without_consent``. A
decision is the new state of what changes and the events to announce; the use case applies it
in one unit of work. Nothing here reads or writes anything, so every rule is tested in memory.
"""

from __future__ import annotations

from calendar import monthrange
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, TypeVar

from shared.contracts import (
    CaseClosed,
    ConsultationHeld,
    FollowUpCancelled,
    FollowUpCompleted,
    FollowUpDue,
    FollowUpEscalated,
    FollowUpOverdue,
    FollowUpScheduled,
)
from shared.contracts.vocabulary import (
    ExitReason,
    FollowUpKind,
    IncomeSource,
    NotConsultedReason,
    Party,
    PlanStatus,
    Readiness,
)
from shared.platform.clock import STOCKHOLM, stockholm_date
from shared.platform.problems import Problem, add_messages

if TYPE_CHECKING:
    from shared.platform.config import Settings

DUE_TIME = time(8, 0)  # reminders arrive at the start of a working day

add_messages(
    {
        "followup_not_found": ("Uppföljningen finns inte.", "No such follow-up."),
        "not_responsible": (
            "Er part ansvarar inte för uppföljningen.",
            "Your party is not responsible for this follow-up.",
        ),
        "followup_cancelled": (
            "Uppföljningen är avbruten: ärendet är avslutat.",
            "The follow-up is cancelled: the case is closed.",
        ),
        "recorded_before_consultation": (
            "Uppföljningen är daterad före konsultationen.",
            "The follow-up is dated before the consultation.",
        ),
        "plan_status_missing": ("Planens status saknas.", "The plan's status is missing."),
        "income_source_missing": ("Huvudsaklig försörjning saknas.", "The main income source is missing."),
        "readiness_missing": (
            "Svar om arbets- eller studieberedskap saknas (eller 'not_answered').",
            "The readiness answer is missing (or 'not_answered').",
        ),
        "answers_when_not_reached": (
            "Personen nåddes inte: inga svar ska anges.",
            "The person was not reached: no answers may be given.",
        ),
        "not_asked": ("Frågan ställs inte vid den här uppföljningen.", "This question is not asked at this follow-up."),
        "followup_not_in_team": (
            "Du får bara registrera uppföljningar i ärenden hos de team du tillhör.",
            "You may record follow-ups only on cases of the teams you belong to.",
        ),
    }
)


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
    def from_settings(cls, s: Settings) -> Rules:
        return cls(
            s.followup_plan_check_weeks,
            s.followup_outcome_months,
            s.followup_twelve_months,
            s.followup_overdue_days,
            s.followup_reminder_interval_days,
            s.followup_reminder_limit,
            s.followup_long_months,
        )


# --------------------------------------------------------------------------- what the service knows


@dataclass(frozen=True)
class ClosedBy:
    """Who ended a case: a person (their user id, or the agency system's broker user, and their
    party), or ``system:<why>`` when no person did (then no party)."""

    user: str
    party: Party | None = None


# Closures no person made: every consent withdrawn; the meeting did not consult the case.
BY_CONSENT_WITHDRAWN = ClosedBy("system:consent_withdrawn")
BY_NOT_CONSULTED = ClosedBy("system:not_consulted")


@dataclass(frozen=True)
class TrackedCase:
    """A case as the follow-up service knows it: from CaseReferred (what the six-month comparison
    needs) and from ConsultationHeld or CaseNotConsulted (its team), whichever comes first."""

    case_ref: str
    referring_party: Party
    team_id: str | None = None
    municipality: str | None = None
    income_source_at_referral: str | None = None  # unknown while only the consultation is known
    referred_at: datetime | None = None
    status: str = "open"  # open | closed
    exit_reason: ExitReason | None = None
    closed_at: datetime | None = None
    closed_by: ClosedBy | None = None  # None: open, or closed before it was kept

    @property
    def closed(self) -> bool:
        return self.status == "closed"


@dataclass(frozen=True)
class FollowUp:
    """A plan check or outcome follow-up of a consulted case, with when the scheduler acts next."""

    followup_id: str  # <case_ref>.<kind>
    case_ref: str
    kind: FollowUpKind
    team_id: str
    municipality: str
    referring_party: Party
    responsible_party: Party
    consultation_held_on: date
    due_on: date
    # pending: not yet due; due: reminded, not recorded; completed; cancelled (the case closed)
    status: str = "pending"
    next_action_at: datetime | None = None  # the next reminder or the escalation; None: never
    reminders_sent: int = 0  # overdue reminders
    due_sent_at: datetime | None = None
    escalated_at: datetime | None = None
    revision: int = 0  # of the latest record

    @property
    def open(self) -> bool:
        """Neither recorded nor cancelled: the case's closure cancels it."""
        return self.status in ("pending", "due")

    @property
    def state(self) -> str:
        """As the responsible party sees it: a due follow-up is ``overdue`` from its first
        overdue reminder."""
        if self.status == "due":
            return "overdue" if self.reminders_sent else "due"
        return self.status


# A party's listing of its follow-ups: the statuses each state covers, and whether an overdue
# reminder was sent (None: either).
LISTED_STATES: dict[str, tuple[tuple[str, ...], bool | None]] = {
    "open": (("pending", "due"), None),
    "due": (("due",), False),
    "overdue": (("due",), True),
    "pending": (("pending",), None),
    "completed": (("completed",), None),
    "cancelled": (("cancelled",), None),
}


def visible_to(followup: FollowUp, party: Party | None) -> bool:
    """Only the responsible party sees (and records) a follow-up; to any other it is as if
    absent, so that it learns nothing, not even whether the case exists."""
    return followup.responsible_party == party


@dataclass(frozen=True)
class Answers:
    recorded_on: date
    reached: bool
    income_source: str | None
    readiness: str | None
    plan_status: str | None


@dataclass(frozen=True)
class FollowUpRecord:
    """One record of a follow-up; a correction is a new revision, the highest counts."""

    followup_id: str
    revision: int
    recorded_on: date
    reached: bool
    income_source: str | None
    readiness: str | None
    plan_status: str | None
    recorded_by: Party
    recorded_by_user: str  # the broker user or HTTP user
    channel: str  # amqp | http
    recorded_at: datetime

    @property
    def answers(self) -> Answers:
        return Answers(
            recorded_on=self.recorded_on,
            reached=self.reached,
            income_source=self.income_source,
            readiness=self.readiness,
            plan_status=self.plan_status,
        )


# Every event the follow-up service announces; each belongs to one case (its ordering key).
Event = (
    FollowUpScheduled
    | FollowUpDue
    | FollowUpOverdue
    | FollowUpEscalated
    | FollowUpCompleted
    | FollowUpCancelled
    | CaseClosed
)


# --------------------------------------------------------------------------- scheduling


def add_months(day: date, months: int) -> date:
    """The same day ``months`` later (the month's last day where it is shorter)."""
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    return date(year, month, min(day.day, monthrange(year, month)[1]))


def followups_for(held_on: date, rules: Rules) -> list[tuple[FollowUpKind, date]]:
    """The follow-ups of a consultation and their due dates."""
    plan = [
        (FollowUpKind.PLAN_CHECK, held_on + timedelta(weeks=rules.plan_check_weeks)),
        (FollowUpKind.SIX_MONTHS, add_months(held_on, rules.outcome_months)),
    ]
    if rules.twelve_months:
        plan.append((FollowUpKind.TWELVE_MONTHS, add_months(held_on, rules.long_months)))
    return plan


def due_at(due_on: date) -> datetime:
    return datetime.combine(due_on, DUE_TIME, tzinfo=STOCKHOLM)


def followup_id(case_ref: str, kind: FollowUpKind | str) -> str:
    return f"{case_ref}.{FollowUpKind(kind).value}"


@dataclass(frozen=True)
class ScheduleDecision:
    """The follow-ups a consultation adds and their FollowUpScheduled; or, when every consent
    was withdrawn before the consultation came, the case's closure instead."""

    followups: tuple[FollowUp, ...] = ()
    events: tuple[Event, ...] = ()
    closure: ClosureDecision | None = None


def schedule(
    consultation: ConsultationHeld,
    case: TrackedCase,
    existing: Sequence[FollowUp],
    consents: Mapping[str, str],
    rules: Rules,
    now: datetime,
) -> ScheduleDecision:
    """The plan check and the outcome follow-up(s) of a consultation, once per case whatever
    arrives twice (``existing``: the case's follow-ups so far). A closed case gets none."""
    if case.closed:
        return ScheduleDecision()
    if every_consent_withdrawn(consents):
        return ScheduleDecision(closure=close(case, existing, ExitReason.CONSENT_WITHDRAWN, now, BY_CONSENT_WITHDRAWN))
    scheduled = {f.kind for f in existing}
    responsible = consultation.referring_party  # by default the referring party follows up
    new = tuple(
        FollowUp(
            followup_id=followup_id(case.case_ref, kind),
            case_ref=case.case_ref,
            kind=kind,
            team_id=consultation.team_id,
            municipality=consultation.municipality,
            referring_party=consultation.referring_party,
            responsible_party=responsible,
            consultation_held_on=consultation.held_on,
            due_on=due_on,
            next_action_at=due_at(due_on),
        )
        for kind, due_on in followups_for(consultation.held_on, rules)
        if kind not in scheduled
    )
    return ScheduleDecision(
        followups=new,
        events=tuple(
            FollowUpScheduled(
                followup_id=f.followup_id,
                case_ref=f.case_ref,
                team_id=f.team_id,
                municipality=f.municipality,
                kind=f.kind,
                referring_party=f.referring_party,
                responsible_party=f.responsible_party,
                consultation_held_on=f.consultation_held_on,
                due_on=f.due_on,
                scheduled_at=now,
            )
            for f in new
        ),
    )


# --------------------------------------------------------------------------- the scheduler


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
class TickDecision:
    """One scheduler round: each claimed follow-up in its new state, and the reminders and
    escalations to send."""

    followups: tuple[FollowUp, ...] = ()
    events: tuple[Event, ...] = ()


def tick(claimed: Sequence[FollowUp], now: datetime, rules: Rules) -> TickDecision:
    """Each follow-up whose time has come takes its next step. One recorded or cancelled since
    its next action was set only has that next action cleared."""
    followups: list[FollowUp] = []
    events: list[Event] = []
    for followup in claimed:
        step = next_step(status=followup.status, reminders_sent=followup.reminders_sent, now=now, rules=rules)
        if step is None:
            followups.append(replace(followup, next_action_at=None))
            continue
        followups.append(
            replace(
                followup,
                status=step.status,
                reminders_sent=step.reminders_sent,
                next_action_at=step.next_action_at,
                due_sent_at=followup.due_sent_at or (now if step.send == "due" else None),
                escalated_at=followup.escalated_at or (now if step.send == "escalate" else None),
            )
        )
        events.append(reminder(followup, step, now, rules))
    return TickDecision(tuple(followups), tuple(events))


def reminder(
    followup: FollowUp, step: Step, now: datetime, rules: Rules
) -> FollowUpDue | FollowUpOverdue | FollowUpEscalated:
    """To the responsible party alone (due, overdue n of m), or to the team's rehab coordinator
    (REGION) once every reminder went unanswered."""
    f = followup
    if step.send == "due":
        return FollowUpDue(
            recipient=f.responsible_party,
            followup_id=f.followup_id,
            case_ref=f.case_ref,
            team_id=f.team_id,
            kind=f.kind,
            due_on=f.due_on,
            sent_at=now,
        )
    if step.send == "overdue":
        return FollowUpOverdue(
            recipient=f.responsible_party,
            followup_id=f.followup_id,
            case_ref=f.case_ref,
            team_id=f.team_id,
            kind=f.kind,
            due_on=f.due_on,
            sent_at=now,
            reminder=step.reminders_sent,
            of=rules.reminder_limit,
        )
    return FollowUpEscalated(
        recipient=Party.REGION,
        followup_id=f.followup_id,
        case_ref=f.case_ref,
        team_id=f.team_id,
        kind=f.kind,
        due_on=f.due_on,
        sent_at=now,
        responsible_party=f.responsible_party,
        reminders_sent=step.reminders_sent,
    )


# --------------------------------------------------------------------------- recording


def record_problems(
    *, kind: FollowUpKind, status: str, responsible: str, by_party: str, answers: Answers, held_on: date, today: date
) -> list[Problem]:
    if by_party != responsible:
        return [Problem("not_responsible")]
    if status == "cancelled":
        return [Problem("followup_cancelled")]
    problems = []
    if answers.recorded_on > today:
        problems.append(Problem("date_in_future", "recorded_on"))
    if answers.recorded_on < held_on:
        problems.append(Problem("recorded_before_consultation", "recorded_on"))
    given = {"income_source": answers.income_source, "readiness": answers.readiness, "plan_status": answers.plan_status}
    if not answers.reached:
        problems += [Problem("answers_when_not_reached", name) for name, v in given.items() if v]
        return problems
    if kind == FollowUpKind.PLAN_CHECK:
        if not answers.plan_status:
            problems.append(Problem("plan_status_missing", "plan_status"))
        problems += [Problem("not_asked", name) for name in ("income_source", "readiness") if given[name]]
    else:
        if not answers.income_source:
            problems.append(Problem("income_source_missing", "income_source"))
        if not answers.readiness:
            problems.append(Problem("readiness_missing", "readiness"))
    return problems


@dataclass(frozen=True)
class RecordDecision:
    """A record refused (``problems``, every reason), the same answers again (nothing new:
    ``record`` None), or a new record (a correction from revision 2) with the follow-up as it
    becomes, its FollowUpCompleted and, after the case's last follow-up, the case's closure."""

    problems: tuple[Problem, ...] = ()
    record: FollowUpRecord | None = None
    followup: FollowUp | None = None
    completed: FollowUpCompleted | None = None  # as announced (the same answers: as announced before)
    events: tuple[Event, ...] = ()
    closure: ClosureDecision | None = None


def record(
    followup_id: str,
    answers: Answers,
    *,
    case: TrackedCase | None,
    followups: Sequence[FollowUp],
    latest: FollowUpRecord | None,
    by_party: Party,
    by_user: str,
    channel: str,
    now: datetime,
    person_teams: frozenset[str] | None = None,
) -> RecordDecision:
    """Record follow-up ``followup_id`` (one of ``followups``, its case's, with ``latest``, its
    latest record), or correct it: a new revision. The same answers as the latest change nothing.
    A person (``person_teams``: the teams they are assigned to) records only on their teams'
    cases; the responsible agency's system (None) on any of its party's."""
    followup = next((f for f in followups if f.followup_id == followup_id), None)
    if followup is None or not visible_to(followup, by_party):
        return RecordDecision(problems=(Problem("followup_not_found"),))
    if person_teams is not None and followup.team_id not in person_teams:
        return RecordDecision(problems=(Problem("followup_not_in_team"),))
    problems = record_problems(
        kind=followup.kind,
        status=followup.status,
        responsible=followup.responsible_party,
        by_party=by_party,
        answers=answers,
        held_on=followup.consultation_held_on,
        today=stockholm_date(now),
    )
    if problems:
        return RecordDecision(problems=tuple(problems))
    if latest is not None and latest.answers == answers:
        return RecordDecision(completed=completed(followup, latest))
    new = FollowUpRecord(
        followup_id=followup_id,
        revision=followup.revision + 1,
        recorded_on=answers.recorded_on,
        reached=answers.reached,
        income_source=answers.income_source,
        readiness=answers.readiness,
        plan_status=answers.plan_status,
        recorded_by=by_party,
        recorded_by_user=by_user,
        channel=channel,
        recorded_at=now,
    )
    recorded = replace(followup, status="completed", next_action_at=None, revision=new.revision)
    event = completed(followup, new)
    closure = None
    if new.revision == 1 and is_last(recorded, followups):  # the follow-up programme is through
        closure = close(
            case,
            [recorded if f.followup_id == followup_id else f for f in followups],
            ExitReason.PLAN_COMPLETED,
            now,
            ClosedBy(by_user, by_party),  # whose record ended the programme
        )
    return RecordDecision(record=new, followup=recorded, completed=event, events=(event,), closure=closure)


def is_last(followup: FollowUp, followups: Sequence[FollowUp]) -> bool:
    """Is this its case's last follow-up: the latest due of those not cancelled?"""
    kept = [f for f in followups if f.status != "cancelled"]
    return bool(kept) and max(kept, key=lambda f: (f.due_on, f.followup_id)).followup_id == followup.followup_id


E = TypeVar("E", bound=StrEnum)


def _maybe(vocabulary: type[E], value: str | None) -> E | None:
    return vocabulary(value) if value is not None else None


def completed(followup: FollowUp, record: FollowUpRecord) -> FollowUpCompleted:
    """A record as announced: the follow-up's facts and the answers, no personal data."""
    f, r = followup, record
    return FollowUpCompleted(
        followup_id=f.followup_id,
        case_ref=f.case_ref,
        team_id=f.team_id,
        municipality=f.municipality,
        kind=f.kind,
        referring_party=f.referring_party,
        responsible_party=f.responsible_party,
        consultation_held_on=f.consultation_held_on,
        due_on=f.due_on,
        recorded_on=r.recorded_on,
        reached=r.reached,
        income_source=_maybe(IncomeSource, r.income_source),
        readiness=_maybe(Readiness, r.readiness),
        plan_status=_maybe(PlanStatus, r.plan_status),
        revision=r.revision,
        recorded_by=r.recorded_by,
        recorded_at=r.recorded_at,
    )


# --------------------------------------------------------------------------- closure


@dataclass(frozen=True)
class ClosureDecision:
    """The case as closed and its open follow-ups as cancelled, with a FollowUpCancelled for
    each and then CaseClosed; or why the case is not closed (``refusal``: ``case_not_found``,
    ``case_closed``, ``not_allowed``, ``not_in_team``, ``consent_remains``), and then nothing
    changes."""

    refusal: str | None = None
    case: TrackedCase | None = None
    cancelled: tuple[FollowUp, ...] = ()
    events: tuple[Event, ...] = ()


def close(
    case: TrackedCase | None, followups: Sequence[FollowUp], reason: ExitReason, now: datetime, by: ClosedBy
) -> ClosureDecision:
    """Close the case with its exit reason, recording who closed it (``by``); its open
    follow-ups will not happen. A case closed already stays as it was: CaseClosed is announced
    once."""
    if case is None:
        return ClosureDecision(refusal="case_not_found")
    if case.closed:
        return ClosureDecision(refusal="case_closed")
    cancelled = tuple(
        replace(f, status="cancelled", next_action_at=None)
        for f in sorted(followups, key=lambda f: f.followup_id)
        if f.open
    )
    events: list[Event] = [
        FollowUpCancelled(
            followup_id=f.followup_id, case_ref=case.case_ref, kind=f.kind, reason=reason, cancelled_at=now
        )
        for f in cancelled
    ]
    events.append(
        CaseClosed(case_ref=case.case_ref, reason=reason, closed_at=now, closed_by=by.user, closed_by_party=by.party)
    )
    return ClosureDecision(
        case=replace(case, status="closed", exit_reason=reason, closed_at=now, closed_by=by),
        cancelled=cancelled,
        events=tuple(events),
    )


def may_close(case: TrackedCase, *, role: str, party: str | None, teams: frozenset[str]) -> str | None:
    """None if the person may close the case by hand, else why not: by an officer of its
    referring party assigned to its team, or by its team's coordinator."""
    if role == "officer" and party == case.referring_party:
        return None if (case.team_id or "") in teams else "not_in_team"
    if role == "coordinator" and (case.team_id or "") in teams:
        return None
    return "not_allowed"


def close_by_hand(
    case: TrackedCase | None,
    followups: Sequence[FollowUp],
    reason: ExitReason,
    now: datetime,
    *,
    role: str,
    party: Party | None,
    teams: frozenset[str],
    user: str,
) -> ClosureDecision:
    """Close a case with the exit reason a user gives (recorded as its closer); who may is
    checked before whether it is closed already."""
    refusal = may_close(case, role=role, party=party, teams=teams) if case is not None else None
    if refusal is not None:
        return ClosureDecision(refusal=refusal)
    return close(case, followups, reason, now, ClosedBy(user, party))


def exit_reason_when_not_consulted(reason: NotConsultedReason) -> ExitReason:
    return ExitReason.CONSENT_WITHDRAWN if reason == NotConsultedReason.INDIVIDUAL_WITHDREW else ExitReason.OTHER


def every_consent_withdrawn(consents: Mapping[str, str]) -> bool:
    return bool(consents) and all(status == "withdrawn" for status in consents.values())


def close_without_consent(
    case: TrackedCase | None, followups: Sequence[FollowUp], consents: Mapping[str, str], now: datetime
) -> ClosureDecision:
    """When no party has the individual's consent any more, the case is closed."""
    if not every_consent_withdrawn(consents):
        return ClosureDecision(refusal="consent_remains")
    return close(case, followups, ExitReason.CONSENT_WITHDRAWN, now, BY_CONSENT_WITHDRAWN)
