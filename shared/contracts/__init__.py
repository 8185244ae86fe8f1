"""The message contracts: the envelope and its base classes (``envelope``), and each owning
service's commands and events (``referral``, ``meeting``, ``followup``, ``metrics``).

Importing this package registers every contract; import names from here.
"""

from shared.contracts.envelope import (
    AGENCY,
    AGGREGATES,
    DEAD_LETTERS,
    EVENTS,
    INTAKE,
    MAX_MESSAGE_BYTES,
    AgencyReply,
    Command,
    CommandAccepted,
    CommandRejected,
    Contract,
    Envelope,
    InvalidPayload,
    PoisonMessage,
    RejectionReason,
    contract,
    decode,
    envelope_for,
    registered,
    safe_errors,
    wire_model,
)
from shared.contracts.followup import (
    CaseClosed,
    FollowUpCancelled,
    FollowUpCompleted,
    FollowUpDue,
    FollowUpEscalated,
    FollowUpFacts,
    FollowUpOverdue,
    FollowUpReminder,
    FollowUpScheduled,
    RecordFollowUp,
)
from shared.contracts.meeting import (
    CaseNotConsulted,
    CasePostponed,
    CaseScheduled,
    ConsentReminder,
    ConsultationHeld,
    MeetingCancelled,
    MeetingScheduled,
    PlanAction,
    PreMeetingHeld,
    TeamUpdated,
)
from shared.contracts.metrics import FiguresPublished
from shared.contracts.referral import (
    CaseReferred,
    Consent,
    ConsentRecorded,
    ConsentWithdrawn,
    RecordConsent,
    ReferralAccepted,
    ReferralRejected,
    SubmitReferral,
    WithdrawConsent,
)

__all__ = [
    "AGENCY", "AGGREGATES", "DEAD_LETTERS", "EVENTS", "INTAKE", "MAX_MESSAGE_BYTES",
    "AgencyReply", "CaseClosed", "CaseNotConsulted", "CasePostponed", "CaseReferred",
    "CaseScheduled", "Command", "CommandAccepted", "CommandRejected", "Consent",
    "ConsentRecorded", "ConsentReminder", "ConsentWithdrawn", "ConsultationHeld", "Contract",
    "Envelope", "FiguresPublished", "FollowUpCancelled", "FollowUpCompleted", "FollowUpDue",
    "FollowUpEscalated", "FollowUpFacts", "FollowUpOverdue", "FollowUpReminder",
    "FollowUpScheduled", "InvalidPayload", "MeetingCancelled", "MeetingScheduled", "PlanAction",
    "PoisonMessage", "PreMeetingHeld", "RecordConsent", "RecordFollowUp", "ReferralAccepted",
    "ReferralRejected", "RejectionReason", "SubmitReferral", "TeamUpdated", "WithdrawConsent",
    "contract", "decode", "envelope_for", "registered", "safe_errors", "wire_model",
]
