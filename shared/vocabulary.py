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
