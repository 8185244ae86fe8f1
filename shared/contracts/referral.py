"""Contracts the referral service owns: the agencies' referral and consent commands, their
replies, and the case's referral and consent events."""

from __future__ import annotations

from datetime import date
from typing import ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.contracts.envelope import AgencyReply, Command, Contract, RejectionReason, contract
from shared.contracts.vocabulary import AgeBand, ConsentSource, Gender, IncomeSource, Party, ReasonCode


class Witness(BaseModel):
    """The staff member who witnessed a verbal consent: their name and role (never the
    individual's data)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    role: str = Field(min_length=1, max_length=100)


class Consent(BaseModel):
    """A consent given with the referral. Its source: a signed form (``form_ref``; ``source``
    may be left out, as before it existed) or ``source: verbal`` with a ``witness``. Which
    combinations are accepted is the referral service's rule (``consent_source_problems``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    party: Party
    given_on: date
    source: ConsentSource | None = None
    form_ref: str | None = Field(default=None, min_length=1, max_length=64)
    witness: Witness | None = None


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
    """An agency records the individual's consent for one party, given after the referral: on a
    signed form (``form_ref``) or verbally with a ``witness`` (``source: verbal``), as in
    ``Consent``."""

    case_ref: str = Field(min_length=1, max_length=32)
    party: Party
    given_on: date
    source: ConsentSource | None = None
    form_ref: str | None = Field(default=None, min_length=1, max_length=64)
    witness: Witness | None = None


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
