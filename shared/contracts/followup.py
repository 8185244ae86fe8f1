"""Contracts the followup service owns: follow-ups, their reminders, and the case's closure."""

from __future__ import annotations

from datetime import date

from pydantic import AwareDatetime, Field

from shared.contracts.envelope import AgencyReply, Command, Contract, contract
from shared.contracts.vocabulary import ExitReason, FollowUpKind, IncomeSource, Party, PlanStatus, Readiness


@contract("CaseClosed", 1)
class CaseClosed(Contract):
    """The case is closed (avslut), with its exit reason. Starts the retention period of the
    personal data held by the referral service."""

    case_ref: str
    reason: ExitReason
    closed_at: AwareDatetime
    # Who closed it: a person's user id (or an agency system's broker user) with their party,
    # or "system:<why>" (no party). Absent from events of before it was carried.
    closed_by: str | None = None
    closed_by_party: Party | None = None


# --------------------------------------------------------------------------- follow-up (followup service)


@contract("RecordFollowUp", 1)
class RecordFollowUp(Command):
    """The responsible agency records a follow-up of a case (again: a correction that
    supersedes the earlier record). ``reached`` false: the person could not be reached, and
    nothing else is recorded. Answered with CommandAccepted or CommandRejected."""

    case_ref: str = Field(min_length=1, max_length=32)
    kind: FollowUpKind
    recorded_on: date
    reached: bool
    income_source: IncomeSource | None = None  # main income source now
    readiness: Readiness | None = None  # more ready to work or study? (or not_answered)
    plan_status: PlanStatus | None = None


class FollowUpFacts(Contract):
    """What the follow-up events say of the follow-up itself."""

    followup_id: str
    case_ref: str
    team_id: str
    municipality: str
    kind: FollowUpKind
    referring_party: Party
    responsible_party: Party
    consultation_held_on: date
    due_on: date


@contract("FollowUpScheduled", 1)
class FollowUpScheduled(FollowUpFacts):
    """A follow-up of a consulted case is due on ``due_on``, by the responsible party."""

    scheduled_at: AwareDatetime


class FollowUpReminder(AgencyReply):
    """What every reminder to one agency says about the follow-up."""

    followup_id: str
    case_ref: str
    team_id: str
    kind: FollowUpKind
    due_on: date


@contract("FollowUpDue", 1)
class FollowUpDue(FollowUpReminder):
    """To the responsible agency alone: the follow-up is due now."""

    sent_at: AwareDatetime


@contract("FollowUpOverdue", 1)
class FollowUpOverdue(FollowUpReminder):
    """To the responsible agency alone: the follow-up is still not recorded (reminder n of m)."""

    reminder: int = Field(ge=1)
    of: int = Field(ge=1)
    sent_at: AwareDatetime


@contract("FollowUpEscalated", 1)
class FollowUpEscalated(FollowUpReminder):
    """To the team's rehab coordinator (REGION): the responsible party has not recorded the
    follow-up after every reminder."""

    responsible_party: Party
    reminders_sent: int
    sent_at: AwareDatetime


@contract("FollowUpCompleted", 1)
class FollowUpCompleted(FollowUpFacts):
    """A follow-up was recorded. ``revision`` > 1: a correction; the highest revision of a
    follow-up counts. No personal data, no free text."""

    recorded_on: date
    reached: bool
    income_source: IncomeSource | None
    readiness: Readiness | None
    plan_status: PlanStatus | None
    revision: int = Field(ge=1)
    recorded_by: Party
    recorded_at: AwareDatetime


@contract("FollowUpCancelled", 1)
class FollowUpCancelled(Contract):
    """A pending follow-up will not happen: its case was closed."""

    followup_id: str
    case_ref: str
    kind: FollowUpKind
    reason: ExitReason
    cancelled_at: AwareDatetime
