"""Referral rules, pure (no I/O): personnummer, derived gender and age band, case references.

A personnummer is ``YYYYMMDD-NNNC`` (stored as 12 digits). ``C`` is a Luhn check digit over the
10-digit form ``YYMMDDNNN``; the third birth digit (the last N) is odd for men, even for women;
a samordningsnummer has 60 added to the day.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import date

from shared.platform.clock import stockholm_date  # noqa: F401  (rules judge dates in Sweden)
from shared.platform.problems import ENUM_CODES, Problem, add_messages  # noqa: F401  (Problem: used by intake)
from shared.platform.problems import problems_from_schema as shared_problems_from_schema
from shared.contracts.vocabulary import AgeBand, Gender, Party

MIN_AGE, MAX_AGE = 16, 65
_PNR = re.compile(r"^([0-9]{8})[-+]?([0-9]{4})$")  # ASCII digits only


class InvalidPersonnummer(ValueError):
    def __init__(self, code: str):
        super().__init__(code)
        self.code = code  # stable code; never the number itself


@dataclass(frozen=True)
class Personnummer:
    digits: str  # 12 digits, YYYYMMDDNNNC
    birth_date: date
    coordination_number: bool  # samordningsnummer

    @property
    def gender(self) -> Gender:
        return Gender.MAN if int(self.digits[10]) % 2 == 1 else Gender.WOMAN

    def __repr__(self) -> str:  # never leak the number through a repr in a log or traceback
        return "Personnummer(<redacted>)"

    __str__ = __repr__


def luhn_ok(ten_digits: str) -> bool:
    total = 0
    for i, ch in enumerate(ten_digits):
        n = int(ch) * (2 if i % 2 == 0 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def parse_personnummer(text: str) -> Personnummer:
    match = _PNR.match(text.strip())
    if not match:
        raise InvalidPersonnummer("personnummer_format")
    digits = match.group(1) + match.group(2)
    year, month, day = int(digits[0:4]), int(digits[4:6]), int(digits[6:8])
    coordination = day > 60
    if coordination:
        day -= 60
    try:
        born = date(year, month, day)
    except ValueError:
        raise InvalidPersonnummer("personnummer_birth_date") from None
    if not luhn_ok(digits[2:]):
        raise InvalidPersonnummer("personnummer_check_digit")
    return Personnummer(digits=digits, birth_date=born, coordination_number=coordination)


def age_on(born: date, day: date) -> int:
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def age_band(age: int | None) -> AgeBand:
    if age is None:
        return AgeBand.UNKNOWN
    for band, upper in ((AgeBand.A16_24, 24), (AgeBand.A25_34, 34), (AgeBand.A35_44, 44),
                        (AgeBand.A45_54, 54), (AgeBand.A55_65, 65)):
        if age <= upper:
            return band
    return AgeBand.UNKNOWN


def pseudonym(key: bytes, pnr: Personnummer) -> bytes:
    """Keyed HMAC of the 12 digits: a stable reference that cannot be reversed without the key."""
    return hmac.new(key, pnr.digits.encode(), hashlib.sha256).digest()


def new_case_ref() -> str:
    """Random and not guessable: 'TS-' and 16 characters of base32 (80 bits)."""
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "TS-" + "".join(secrets.choice(alphabet) for _ in range(16))


def party_from_routing_key(routing_key: str) -> Party | None:
    """Intake routing keys are '<PARTY>.SubmitReferral'; broker permissions bind each agency user
    to its own prefix, so the key identifies the submitting party (never the payload)."""
    prefix = routing_key.split(".", 1)[0]
    try:
        return Party(prefix)
    except ValueError:
        return None


# --------------------------------------------------------------------------- referral validation


# Texts never contain the submitted values (they may be personal data).
add_messages({
    "personnummer_format": ("Personnumret har fel format (ÅÅÅÅMMDD-NNNN).",
                            "The personal identity number has the wrong format (YYYYMMDD-NNNN)."),
    "personnummer_check_digit": ("Personnumrets kontrollsiffra stämmer inte.",
                                 "The check digit of the personal identity number is wrong."),
    "personnummer_birth_date": ("Personnumret innehåller inget giltigt födelsedatum.",
                                "The personal identity number holds no valid birth date."),
    "age_out_of_range": ("Personen ska vara 16–65 år när remissen skickas.",
                         "The person must be aged 16–65 when referred."),
    "identity_missing": ("Personnummer eller samordningsnummer saknas och skyddad identitet är "
                         "inte angiven.",
                         "No personal identity or coordination number, and protected identity "
                         "is not indicated."),
    "identity_with_protected_flag": ("Vid skyddad identitet ska inget personnummer skickas.",
                                     "With protected identity no identity number may be sent."),
    "unknown_team": ("Okänt Trisam-team.", "Unknown Trisam team."),
    "question_empty": ("Frågeställningen är tom.", "The question (frågeställning) is empty."),
    "unknown_reason_code": ("Okänd orsakskod.", "Unknown reason code."),
    "consent_missing": ("Samtycke saknas.", "No consent is given."),
    "consent_in_future": ("Samtycket är daterat i framtiden.", "The consent is dated in the future."),
    "consent_duplicate_party": ("Samtycke för samma part anges mer än en gång.",
                                "Consent for the same party is given more than once."),
    "duplicate_open_case": ("Personen har redan ett öppet Trisam-ärende.",
                            "The person already has an open Trisam case."),
    "not_allowed": ("Du får inte ändra samtycket för den parten i detta ärende.",
                    "You may not change the consent of that party in this case."),
    "consent_before_withdrawal": ("Samtycket är daterat före ett senare återkallande.",
                                  "The consent is dated before a later withdrawal."),
    "agency_ref_reused": ("Remissreferensen är redan använd för en annan remiss.",
                          "The agency reference is already used for another referral."),
    "identity_erased": ("Personuppgifterna är gallrade.", "The personal data has been erased."),
})

_ENUM_FIELDS = {**ENUM_CODES, "reason_codes": "unknown_reason_code"}


def problems_from_schema(errors: list[dict]) -> list[Problem]:
    """Map contract (pydantic) errors, without their input values, to stable problem codes."""
    return shared_problems_from_schema(errors, _ENUM_FIELDS)


@dataclass(frozen=True)
class ConsentGiven:
    party: str
    given_on: date


def identity_problems(personnummer: str | None, protected: bool, today: date
                      ) -> tuple[list[Problem], Personnummer | None]:
    if protected:
        return ([Problem("identity_with_protected_flag", "personnummer")] if personnummer
                else []), None
    if not personnummer:
        return [Problem("identity_missing", "personnummer")], None
    try:
        pnr = parse_personnummer(personnummer)
    except InvalidPersonnummer as exc:
        return [Problem(exc.code, "personnummer")], None
    if not MIN_AGE <= age_on(pnr.birth_date, today) <= MAX_AGE:
        return [Problem("age_out_of_range", "personnummer")], pnr
    return [], pnr


def referral_problems(*, team_id: str | None, known_teams, question: str | None,
                      consents: list[ConsentGiven] | None, today: date) -> list[Problem]:
    """The rules beyond the contract's shape (identity is checked by identity_problems).
    A None argument was already reported as a schema problem and is not checked again."""
    problems = []
    if team_id is not None and team_id not in known_teams:
        problems.append(Problem("unknown_team", "team_id"))
    if question is not None and not question.strip():
        problems.append(Problem("question_empty", "question"))
    if consents is not None:
        if not consents:
            problems.append(Problem("consent_missing", "consents"))
        seen = set()
        for i, consent in enumerate(consents):
            if consent.given_on > today:
                problems.append(Problem("consent_in_future", f"consents.{i}.given_on"))
            if consent.party in seen:
                problems.append(Problem("consent_duplicate_party", f"consents.{i}.party"))
            seen.add(consent.party)
    return problems


# --------------------------------------------------------------------------- who may read what

_NUMBER_LIKE = re.compile(r"(?<!\d)(?:19|20)?\d{6}[-+]?\d{4}(?!\d)")


def holds_identity_number(text: str) -> bool:
    """Free text that looks like it holds a personnummer (checked before we store it)."""
    for match in _NUMBER_LIKE.finditer(text):
        digits = re.sub(r"\D", "", match.group(0))[-10:]
        if luhn_ok(digits):
            return True
    return False



READ_ROLES = frozenset({"member", "coordinator"})


def may_read_details(*, role: str, teams: frozenset[str], case_team: str,
                     party_has_consent: bool) -> str | None:
    """None if the reader may see the case's identity and question; else the reason code.

    Only members and coordinators of the case's own team, and only while their party has the
    individual's consent."""
    if role not in READ_ROLES:
        return "role_not_allowed"
    if case_team not in teams:
        return "not_in_team"
    if not party_has_consent:
        return "no_consent"
    return None


def may_change_consent(*, by_party: str, consent_party: str, referring_party: str,
                       coordinator_of_team: bool = False) -> bool:
    """The referring party and the team's coordinator record the individual's decisions for any
    party; another party only for its own consent."""
    return by_party == referring_party or consent_party == by_party or coordinator_of_team

