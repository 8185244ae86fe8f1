"""Contracts the meeting service owns: the team registry, meetings, agendas, consultations and
the consent reminder."""

from __future__ import annotations

from datetime import date

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.contracts.envelope import AgencyReply, Contract, contract
from shared.contracts.vocabulary import (
    ActionType,
    CancellationReason,
    HostUnit,
    Invitee,
    NotConsultedReason,
    Party,
    PostponementReason,
)

# --------------------------------------------------------------------------- meetings (meeting service)
# Meeting events carry no personal data and no free text: case references, codes and dates.


@contract("TeamUpdated", 1)
class TeamUpdated(Contract):
    """A team's registry entry was created or changed (from the registry file or by an
    administrator). The whole entry: a consumer keeps the one with the highest revision."""

    team_id: str
    team_name: str
    municipality: str
    host_unit_type: HostUnit
    host_unit_name: str
    cadence_weeks: int = Field(ge=2, le=4)
    weekday: int = Field(ge=0, le=6)  # Monday = 0
    meeting_time: str  # HH:MM, Swedish time
    capacity: int = Field(ge=1)
    cutoff_days: int = Field(ge=0)
    fixed_parties: tuple[Party, ...]
    revision: int = Field(ge=1)
    updated_at: AwareDatetime


@contract("MeetingScheduled", 1)
class MeetingScheduled(Contract):
    """A Trisam meeting is on a team's calendar. Published again with the same id when its
    time, cut-off or capacity changes: consumers keep the latest per meeting_id."""

    meeting_id: str
    team_id: str
    municipality: str
    meeting_date: date
    starts_at: AwareDatetime
    cutoff_at: AwareDatetime
    capacity: int


@contract("MeetingCancelled", 1)
class MeetingCancelled(Contract):
    """A meeting will not be held; its cases move to the next meeting ahead of newer cases."""

    meeting_id: str
    team_id: str
    municipality: str
    meeting_date: date
    reason: CancellationReason
    cases_moved: int
    cancelled_at: AwareDatetime


@contract("PreMeetingHeld", 1)
class PreMeetingHeld(Contract):
    """The short digital pre-meeting (förmöte) of a meeting was held."""

    meeting_id: str
    team_id: str
    municipality: str
    meeting_date: date
    held_on: date
    recorded_at: AwareDatetime


@contract("CaseScheduled", 1)
class CaseScheduled(Contract):
    """A case is on the agenda of a meeting (again, after any move)."""

    case_ref: str
    team_id: str
    meeting_id: str
    meeting_date: date
    starts_at: AwareDatetime
    scheduled_at: AwareDatetime


@contract("CasePostponed", 1)
class CasePostponed(Contract):
    """A case moved from a meeting to a later one (to_meeting_id None: no meeting has room on
    the calendar yet, or the case waits for consent)."""

    case_ref: str
    team_id: str
    from_meeting_id: str
    from_meeting_date: date
    to_meeting_id: str | None
    to_meeting_date: date | None
    reason: PostponementReason
    missing_parties: tuple[Party, ...] = ()  # whose consent is missing or withdrawn
    postponed_at: AwareDatetime


class PlanAction(BaseModel):
    """One step of the plan the team proposes, with the party responsible for it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: ActionType
    responsible_party: Party
    due_on: date


@contract("ConsultationHeld", 1)
class ConsultationHeld(Contract):
    """A case was consulted at a Trisam meeting and the team proposed a plan. No personal data,
    no free text. Follow-up and metrics count on it."""

    case_ref: str
    team_id: str
    municipality: str
    meeting_id: str
    meeting_date: date
    held_on: date
    referring_party: Party
    referred_at: AwareDatetime
    parties_present: tuple[Party, ...]
    others_invited: tuple[Invitee, ...]
    individual_attended: bool
    actions: tuple[PlanAction, ...]
    recorded_at: AwareDatetime


@contract("CaseNotConsulted", 1)
class CaseNotConsulted(Contract):
    """A case on a meeting's agenda was not consulted, with the reason; it leaves the queue."""

    case_ref: str
    team_id: str
    municipality: str
    meeting_id: str
    meeting_date: date
    referring_party: Party
    reason: NotConsultedReason
    recorded_at: AwareDatetime


@contract("ConsentReminder", 1)
class ConsentReminder(AgencyReply):
    """To the referring agency alone: a case was postponed at the cut-off because the consent
    of these parties is missing. Recording it makes the case eligible again."""

    case_ref: str
    team_id: str
    missing_parties: tuple[Party, ...]
    next_meeting_id: str | None
    next_meeting_date: date | None
    reminded_at: AwareDatetime
