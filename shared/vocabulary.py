"""The domain's fixed vocabularies, shared by every event contract (see ../docs/events.md)."""

from enum import StrEnum


class Party(StrEnum):
    AF = "AF"  # Arbetsförmedlingen, public employment service
    FK = "FK"  # Försäkringskassan, social insurance agency
    KOMMUN = "KOMMUN"  # municipal social services (other municipal units count here too)
    REGION = "REGION"  # regional health care; the rehab coordinator


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
