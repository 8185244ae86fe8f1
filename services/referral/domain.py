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

from shared.vocabulary import AgeBand, Gender, Party

MIN_AGE, MAX_AGE = 16, 65
_PNR = re.compile(r"^(\d{8})[-+]?(\d{4})$")


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
