"""Event and command contracts: one envelope for every message, immutable versioned payloads.

Every message on the broker is a JSON ``Envelope`` whose ``payload`` is validated against the
payload model registered for its (``event_type``, ``version``). Payload models are frozen and
forbid unknown fields. Events are named in the past tense, commands from agencies in the
imperative. Nothing here may carry a personnummer or free text about a person, except the
agency's intake command ``SubmitReferral``, which is the one way identity enters the platform.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timezone
from functools import cache
from typing import Any, ClassVar, Literal

from pydantic import (AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, create_model,
                      model_validator)

from shared.topology import AGENCY, AGGREGATES, EVENTS
from shared.vocabulary import (ActionType, AgeBand, CancellationReason, ExitReason, FollowUpKind,
                               Gender, HostUnit, IncomeSource, Invitee, NotConsultedReason, Party,
                               PlanStatus, PostponementReason, Readiness, ReasonCode)

MAX_MESSAGE_BYTES = 1024 * 1024  # above this a message is not even parsed: poison


class Contract(BaseModel):
    """Base of every payload: immutable, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: ClassVar[str]
    version: ClassVar[int]
    # A smaller size limit for this type; a larger body is an invalid payload, not poison.
    max_bytes: ClassVar[int | None] = None
    # The exchange (kind) it is published to.
    exchange: ClassVar[str] = EVENTS

    def routing_key(self) -> str:
        """Routing key on its exchange: the type name, qualified where consumers select by it."""
        return self.name


class Envelope(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: uuid.UUID
    event_type: str
    version: int = Field(ge=1)
    occurred_at: AwareDatetime
    producer: str
    correlation_id: str = Field(min_length=1, max_length=128)
    causation_id: str | None = Field(default=None, max_length=128)
    payload: dict[str, Any]


_REGISTRY: dict[tuple[str, int], type[Contract]] = {}


def contract(name: str, version: int):
    """Register a payload model under its explicit name and version."""

    def register(cls: type[Contract]) -> type[Contract]:
        key = (name, version)
        if "name" in cls.model_fields or "version" in cls.model_fields:
            raise RuntimeError(f"{cls.__name__}: 'name' and 'version' are the contract's own")
        if key in _REGISTRY:
            raise RuntimeError(f"contract {name} v{version} registered twice")
        cls.name, cls.version = name, version
        _REGISTRY[key] = cls
        return cls

    return register


def registered() -> dict[tuple[str, int], type[Contract]]:
    return dict(_REGISTRY)


@cache
def wire_model(contract_cls: type[Contract]) -> type[Envelope]:
    """The envelope as it is on the wire for one contract (for the AsyncAPI document)."""
    return create_model(
        f"{contract_cls.name}V{contract_cls.version}Message",
        __base__=Envelope,
        __doc__=contract_cls.__doc__,
        event_type=(Literal[contract_cls.name], ...),  # type: ignore[valid-type]
        version=(Literal[contract_cls.version], ...),  # type: ignore[valid-type]
        payload=(contract_cls, ...),
    )


def envelope_for(
    payload: Contract,
    *,
    producer: str,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    occurred_at: datetime | None = None,
) -> Envelope:
    event_id = uuid.uuid4()
    return Envelope(
        event_id=event_id,
        event_type=payload.name,
        version=payload.version,
        occurred_at=occurred_at or datetime.now(timezone.utc),
        producer=producer,
        correlation_id=correlation_id or str(event_id),
        causation_id=causation_id,
        payload=payload.model_dump(mode="json"),
    )


class PoisonMessage(Exception):
    """A message that can never be processed: it goes to the dead-letter queue with its reason."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class InvalidPayload(PoisonMessage):
    """A well-formed envelope whose payload breaks its contract. Poison, unless the consumer
    answers such payloads itself (an agency command gets a rejection reply instead).

    ``errors`` are pydantic's error dicts without input values: (loc, type) only.
    """

    def __init__(self, envelope: Envelope, errors: list[dict[str, Any]]):
        super().__init__("schema_violation", _describe_errors(errors))
        self.envelope = envelope
        self.errors = errors
        self.raw = envelope.payload


def decode(body: bytes) -> tuple[Envelope, Contract]:
    """Parse and validate a message body, or raise PoisonMessage with a stable reason code."""
    if len(body) > MAX_MESSAGE_BYTES:
        raise PoisonMessage("too_large", f"{len(body)} bytes, limit {MAX_MESSAGE_BYTES}")
    try:
        envelope = Envelope.model_validate_json(body)
    except ValidationError as exc:
        raise PoisonMessage("bad_envelope", _describe(exc)) from None
    model = _REGISTRY.get((envelope.event_type, envelope.version))
    if model is None:
        known = sorted(v for (n, v) in _REGISTRY if n == envelope.event_type)
        reason = "unknown_version" if known else "unknown_type"
        raise PoisonMessage(reason, f"{envelope.event_type} v{envelope.version}")
    if model.max_bytes is not None and len(body) > model.max_bytes:
        raise InvalidPayload(envelope, [{"loc": (), "type": "payload_too_large"}])
    try:
        payload = model.model_validate(envelope.payload)
    except ValidationError as exc:
        raise InvalidPayload(envelope, safe_errors(exc)) from None
    return envelope, payload


def safe_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """Pydantic's errors reduced to where and what: never the input values (personal data)."""
    return [{"loc": tuple(err["loc"]), "type": err["type"]}
            for err in exc.errors(include_input=False, include_url=False)]


def _describe(exc: ValidationError) -> str:
    return _describe_errors(safe_errors(exc))


def _describe_errors(errors: list[dict[str, Any]]) -> str:
    parts = []
    for err in errors[:10]:
        loc = ".".join(str(p) for p in err["loc"]) or "<body>"
        parts.append(f"{loc}:{err['type']}")
    return "; ".join(parts)


# --------------------------------------------------------------------------- commands (agencies)


class Command(Contract):
    """A command from an agency system, published to the intake exchange with the routing key
    ``<PARTY>.<Command>``. The party is the broker user's (``user_id``), never the payload's."""

    @model_validator(mode="before")
    @classmethod
    def _no_control_characters(cls, data: Any) -> Any:
        """Text from outside may not hold NUL or other control characters (but line breaks)."""
        def check(value: Any) -> None:
            if isinstance(value, str) and any(ord(c) < 32 and c not in "\n\r\t" for c in value):
                raise ValueError("control characters are not allowed in text")
            if isinstance(value, dict):
                for item in value.values():
                    check(item)
            if isinstance(value, (list, tuple)):
                for item in value:
                    check(item)

        check(data)
        return data

    def routing_key(self) -> str:
        raise TypeError("commands are routed by the submitting agency's own key")


class Consent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    party: Party
    given_on: date
    form_ref: str = Field(min_length=1, max_length=64)


@contract("SubmitReferral", 1)
class SubmitReferral(Command):
    """An agency refers an individual to a Trisam team. The only message that carries identity.

    The referring party is never taken from here: it comes from the broker identity (or, for
    the walking skeleton, the routing key the agency's user may publish to).
    """

    max_bytes: ClassVar[int | None] = 64 * 1024

    agency_ref: str = Field(min_length=1, max_length=64)
    personnummer: str | None = Field(default=None, max_length=13)
    protected_identity: bool = False
    team_id: str = Field(min_length=1, max_length=32)
    question: str = Field(max_length=4000)
    purpose: str | None = Field(default=None, max_length=4000)
    consents: tuple[Consent, ...] = ()
    wishes_to_attend: bool | None = None
    income_source: IncomeSource = IncomeSource.OKAND
    reason_codes: tuple[ReasonCode, ...] = ()
    violence_question_asked: bool = False
    officer_id: str = Field(min_length=1, max_length=64)


@contract("RecordConsent", 1)
class RecordConsent(Command):
    """An agency records the individual's consent for one party, given after the referral."""

    case_ref: str = Field(min_length=1, max_length=32)
    party: Party
    given_on: date
    form_ref: str = Field(min_length=1, max_length=64)


@contract("WithdrawConsent", 1)
class WithdrawConsent(Command):
    """The individual's consent for one party is withdrawn (by the party or on their behalf)."""

    case_ref: str = Field(min_length=1, max_length=32)
    party: Party
    withdrawn_on: date
    on_behalf_of_individual: bool = False


# --------------------------------------------------------------------------- events


@contract("CaseReferred", 1)
class CaseReferred(Contract):
    """A referral was accepted: a new case exists. Carries no personal data."""

    case_ref: str
    team_id: str
    municipality: str
    referring_party: Party
    gender: Gender
    age_band: AgeBand
    income_source: IncomeSource
    consented_parties: tuple[Party, ...]
    wishes_to_attend: bool | None
    violence_question_asked: bool
    reason_codes: tuple[ReasonCode, ...]
    referred_at: AwareDatetime


# --------------------------------------------------------------------------- replies to one agency


class AgencyReply(Contract):
    """Routed on the agency exchange to the recipient's own queue only."""

    exchange: ClassVar[str] = AGENCY
    recipient: Party

    def routing_key(self) -> str:
        return f"{self.recipient.value}.{self.name}"


class RejectionReason(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str  # stable, machine-readable
    field: str | None = None  # where, as a dotted path in the payload
    message_sv: str
    message_en: str


@contract("ReferralAccepted", 1)
class ReferralAccepted(AgencyReply):
    """Reply to SubmitReferral: the case exists. The same reply again for a resubmission."""

    agency_ref: str
    case_ref: str
    accepted_at: AwareDatetime


@contract("ReferralRejected", 1)
class ReferralRejected(AgencyReply):
    """Reply to SubmitReferral: every problem found, each with a code and a text (sv, en).
    Never echoes the submitted values."""

    agency_ref: str | None
    reasons: tuple[RejectionReason, ...]
    rejected_at: AwareDatetime


@contract("CommandAccepted", 1)
class CommandAccepted(AgencyReply):
    """Reply to a consent command (RecordConsent, WithdrawConsent) that was applied."""

    command: str
    command_id: str
    case_ref: str


@contract("CommandRejected", 1)
class CommandRejected(AgencyReply):
    """Reply to a consent command that was refused, with every reason."""

    command: str
    command_id: str
    case_ref: str | None
    reasons: tuple[RejectionReason, ...]


# --------------------------------------------------------------------------- consent and closure


@contract("ConsentRecorded", 1)
class ConsentRecorded(Contract):
    """The individual's consent for `party` is in force (given after the referral, or again)."""

    case_ref: str
    party: Party
    given_on: date
    recorded_by: Party
    recorded_at: AwareDatetime


@contract("ConsentWithdrawn", 1)
class ConsentWithdrawn(Contract):
    """Consent for `party` is withdrawn: from now on that party gets no details of the case.
    Every service applies it and says so in its log and state."""

    case_ref: str
    party: Party
    withdrawn_on: date
    on_behalf_of_individual: bool
    recorded_by: Party
    recorded_at: AwareDatetime


@contract("CaseClosed", 1)
class CaseClosed(Contract):
    """The case is closed (avslut), with its exit reason. Starts the retention period of the
    personal data held by the referral service."""

    case_ref: str
    reason: ExitReason
    closed_at: AwareDatetime


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


# --------------------------------------------------------------------------- aggregates (metrics service)


@contract("FiguresPublished", 2)
class FiguresPublished(Contract):
    """A public edition of a quarter's or a year's figures, for the county or one
    municipality, exactly as the public API shows it: counts under the threshold as "<5", "x"
    where one more is hidden so that a small count cannot be worked out, shares only over at
    least 10. Sent once when the edition is made (after the period has closed); a correction
    is a later edition. No teams, no case data. (Version 1, live snapshots per team, is gone.)"""

    exchange: ClassVar[str] = AGGREGATES
    max_bytes: ClassVar[int | None] = 256 * 1024

    period: str
    period_start: date
    period_end: date
    edition: int = Field(ge=1)
    municipality: str | None  # None: the whole county
    suppression_threshold: int
    figures: dict[str, Any]
    reason: str
    made_at: AwareDatetime

    def routing_key(self) -> str:
        return f"{self.name}.{self.municipality or 'COUNTY'}"
