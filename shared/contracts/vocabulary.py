"""The domain's fixed vocabularies, shared by every event contract (see ../docs/events.md)."""

from enum import StrEnum


class Party(StrEnum):
    AF = "AF"  # Arbetsförmedlingen, public employment service
    FK = "FK"  # Försäkringskassan, social insurance agency
    KOMMUN = "KOMMUN"  # municipal social services (other municipal units count here too)
    REGION = "REGION"  # regional health care; the rehab coordinator


class ConsentSource(StrEnum):
    """How the individual gave a consent: on a signed form (its reference), or verbally to the
    recording officer with a witness (a staff member, named with their role)."""

    SIGNED_FORM = "signed_form"
    VERBAL = "verbal"


class IncomeSource(StrEnum):
    LON = "LON"
    SJUKPENNING = "SJUKPENNING"
    SJUKERSATTNING = "SJUKERSATTNING"
    AKTIVITETSERSATTNING = "AKTIVITETSERSATTNING"
    AKTIVITETSSTOD = "AKTIVITETSSTOD"
    A_KASSA = "A_KASSA"
    FORSORJNINGSSTOD = "FORSORJNINGSSTOD"
    STUDIEMEDEL = "STUDIEMEDEL"
    PENSION = "PENSION"
    INGEN = "INGEN"
    OKAND = "OKAND"


class Gender(StrEnum):
    """Legal gender as derived from the personnummer; UNKNOWN for protected identity."""

    MAN = "MAN"
    WOMAN = "WOMAN"
    UNKNOWN = "UNKNOWN"


class AgeBand(StrEnum):
    A16_24 = "16-24"
    A25_34 = "25-34"
    A35_44 = "35-44"
    A45_54 = "45-54"
    A55_65 = "55-65"
    UNKNOWN = "UNKNOWN"


class ReasonCode(StrEnum):
    """Why the individual is referred (several may apply)."""

    SJUKSKRIVEN_MED_INTYG = "SJUKSKRIVEN_MED_INTYG"  # sick-listed with a doctor's certificate
    SJUKSKRIVEN_OVER_180_DAGAR = "SJUKSKRIVEN_OVER_180_DAGAR"  # sick leave over 180 days
    SOCIALA_HINDER = "SOCIALA_HINDER"  # social obstacles to work
    OKLAR_ARBETSFORMAGA = "OKLAR_ARBETSFORMAGA"  # unclear work capacity
    ARBETSLOS_MED_OHALSA = "ARBETSLOS_MED_OHALSA"  # unemployed with ill health
    LANG_TID_MED_FORSORJNINGSSTOD = "LANG_TID_MED_FORSORJNINGSSTOD"  # long on income support
    OVRIGT = "OVRIGT"  # other


class ExitReason(StrEnum):
    """Why a case was closed (avslut)."""

    PLAN_COMPLETED = "PLAN_COMPLETED"
    CONSENT_WITHDRAWN = "CONSENT_WITHDRAWN"
    MOVED = "MOVED"
    REGISTERED_BY_MISTAKE = "REGISTERED_BY_MISTAKE"
    DECEASED = "DECEASED"
    OTHER = "OTHER"


# --------------------------------------------------------------------------- meetings
# Codes named as the coordinators' forms name them (lower case).


class HostUnit(StrEnum):
    HEALTH_CENTRE = "health_centre"  # vårdcentral / hälsocentral
    PSYCHIATRY = "psychiatry"  # outpatient psychiatry unit


class CancellationReason(StrEnum):
    """Why a meeting was cancelled."""

    NO_CASES = "no_cases"  # nothing on the agenda at its cut-off (automatic)
    STAFF_ABSENT = "staff_absent"  # a fixed member cannot attend (e.g. the coordinator is ill)
    HOLIDAY = "holiday"  # its date became a skip date
    RESCHEDULED = "rescheduled"  # the team's weekday or cadence changed
    OTHER = "other"  # with a text kept by the meeting service (never published)


class PostponementReason(StrEnum):
    """Why a case moved to a later meeting."""

    CONSENT_MISSING = "consent_missing"  # a fixed party's consent missing at the cut-off
    CONSENT_WITHDRAWN = "consent_withdrawn"  # withdrawn after scheduling, for a party that postpones
    MEETING_CANCELLED = "meeting_cancelled"
    DISPLACED = "displaced"  # an earlier-referred case moved ahead of it (the meeting was full)


class Invitee(StrEnum):
    """Others invited to a single meeting besides the four parties."""

    PHYSICIAN = "physician"
    EMPLOYER = "employer"
    MUNICIPAL_UNIT = "municipal_unit"  # another municipal unit: AME, adult unit, addiction care
    SAMHALL = "samhall"
    PRISON_AND_PROBATION = "prison_and_probation"  # Kriminalvården
    OTHER = "other"


class ActionType(StrEnum):
    """The kinds of action a plan holds."""

    MULTI_PARTY_MEETING = "multi_party_meeting"  # avstämningsmöte
    JOINT_MAPPING = "joint_mapping"  # gemensam kartläggning (GK)
    SIP = "sip"  # samordnad individuell plan
    RETURN_TO_WORK_PLAN = "return_to_work_plan"
    WORK_ABILITY_ASSESSMENT = "work_ability_assessment"
    WORK_TRAINING = "work_training"
    MEDICAL_CERTIFICATE = "medical_certificate"
    OTHER = "other"


class NotConsultedReason(StrEnum):
    """Why a case on the agenda was not consulted; the case leaves the queue."""

    INDIVIDUAL_WITHDREW = "individual_withdrew"  # the individual no longer wants it
    NOT_IN_TARGET_GROUP = "not_in_target_group"  # the team judged Trisam not the right forum
    HANDLED_ELSEWHERE = "handled_elsewhere"  # already handled in an agency's ordinary work
    OTHER = "other"


# --------------------------------------------------------------------------- follow-up


class FollowUpKind(StrEnum):
    PLAN_CHECK = "plan_check"  # is the plan being carried out? (about 8 weeks after)
    SIX_MONTHS = "six_months"  # the outcome, six months after the consultation
    TWELVE_MONTHS = "twelve_months"  # optional, when switched on


class Readiness(StrEnum):
    """Does the person feel more ready to work or study than before the consultation?"""

    MUCH_MORE = "much_more"
    MORE = "more"
    UNCHANGED = "unchanged"
    LESS = "less"
    NOT_ANSWERED = "not_answered"


class PlanStatus(StrEnum):
    DONE = "done"
    PARTLY = "partly"
    NOT_DONE = "not_done"
    REVISED = "revised"
