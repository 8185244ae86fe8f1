"""Referral rules, pure (no I/O): personnummer, derived gender and age band, case references,
and the decisions of the use cases (``use_cases.py``): whether a referral is accepted, a consent
change recorded, a case's personal data shown, a case closed, personal data erased.

A use case loads the facts through its unit of work's repositories, asks a function here what
to do, and applies the answer: a decision (what to store, the events to emit) or the problems
and refusals to answer with. Nothing here reads or writes anything, or knows of SQL.

A personnummer is ``YYYYMMDD-NNNC`` (stored as 12 digits). ``C`` is a Luhn check digit over the
10-digit form ``YYMMDDNNN``; the third birth digit (the last N) is odd for men, even for women;
a samordningsnummer has 60 added to the day.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any, Literal

from shared.contracts import (
    CaseReferred,
    Consent,
    ConsentRecorded,
    ConsentWithdrawn,
    RecordConsent,
    SubmitReferral,
    WithdrawConsent,
    Witness,
)
from shared.contracts.vocabulary import AgeBand, ConsentSource, Gender, IncomeSource, Party
from shared.platform.clock import stockholm_date
from shared.platform.problems import ENUM_CODES, Problem, add_messages
from shared.platform.problems import problems_from_schema as shared_problems_from_schema

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
    for band, upper in (
        (AgeBand.A16_24, 24),
        (AgeBand.A25_34, 34),
        (AgeBand.A35_44, 44),
        (AgeBand.A45_54, 54),
        (AgeBand.A55_65, 65),
    ):
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
add_messages(
    {
        "personnummer_format": (
            "Personnumret har fel format (ÅÅÅÅMMDD-NNNN).",
            "The personal identity number has the wrong format (YYYYMMDD-NNNN).",
        ),
        "personnummer_check_digit": (
            "Personnumrets kontrollsiffra stämmer inte.",
            "The check digit of the personal identity number is wrong.",
        ),
        "personnummer_birth_date": (
            "Personnumret innehåller inget giltigt födelsedatum.",
            "The personal identity number holds no valid birth date.",
        ),
        "age_out_of_range": (
            "Personen ska vara 16–65 år när remissen skickas.",
            "The person must be aged 16–65 when referred.",
        ),
        "identity_missing": (
            "Personnummer eller samordningsnummer saknas och skyddad identitet är inte angiven.",
            "No personal identity or coordination number, and protected identity is not indicated.",
        ),
        "identity_with_protected_flag": (
            "Vid skyddad identitet ska inget personnummer skickas.",
            "With protected identity no identity number may be sent.",
        ),
        "unknown_team": ("Okänt Trisam-team.", "Unknown Trisam team."),
        "question_empty": ("Frågeställningen är tom.", "The question (frågeställning) is empty."),
        "unknown_reason_code": ("Okänd orsakskod.", "Unknown reason code."),
        "consent_missing": ("Samtycke saknas.", "No consent is given."),
        "consent_in_future": ("Samtycket är daterat i framtiden.", "The consent is dated in the future."),
        "consent_duplicate_party": (
            "Samtycke för samma part anges mer än en gång.",
            "Consent for the same party is given more than once.",
        ),
        "duplicate_open_case": (
            "Personen har redan ett öppet Trisam-ärende.",
            "The person already has an open Trisam case.",
        ),
        "not_allowed": (
            "Du får inte ändra samtycket för den parten i detta ärende.",
            "You may not change the consent of that party in this case.",
        ),
        "not_in_team": (
            "Du får bara registrera samtycke i ärenden hos de team du tillhör.",
            "You may record consent only on cases of the teams you belong to.",
        ),
        "consent_before_withdrawal": (
            "Samtycket är daterat före ett senare återkallande.",
            "The consent is dated before a later withdrawal.",
        ),
        "agency_ref_reused": (
            "Remissreferensen är redan använd för en annan remiss.",
            "The agency reference is already used for another referral.",
        ),
        "identity_erased": ("Personuppgifterna är gallrade.", "The personal data has been erased."),
        "consent_source_missing": (
            "Samtyckets källa saknas: ange blankettens referens, eller muntligt samtycke med vittne.",
            "The consent's source is missing: the signed form's reference, or a verbal consent with a witness.",
        ),
        "form_ref_missing": (
            "Ett skriftligt samtycke kräver blankettens referens.",
            "A consent on a signed form needs the form's reference.",
        ),
        "form_ref_with_verbal": (
            "Ett muntligt samtycke har ingen blankettreferens (registrera blanketten som skriftligt samtycke).",
            "A verbal consent has no form reference (record the form as a signed-form consent).",
        ),
        "witness_missing": (
            "Ett muntligt samtycke kräver ett vittne: namn och roll.",
            "A verbal consent needs a witness: name and role.",
        ),
        "witness_with_signed_form": (
            "Ett skriftligt samtycke anges utan vittne (vittne gäller muntligt samtycke).",
            "A consent on a signed form takes no witness (a witness is for a verbal consent).",
        ),
        "witness_holds_identity": (
            "Vittnesuppgiften får inte innehålla ett personnummer.",
            "The witness may not contain an identity number.",
        ),
        "not_your_team": (
            "Du får bara remittera till de team du tillhör.",
            "You may refer only to the teams you belong to.",
        ),
    }
)

_ENUM_FIELDS = {**ENUM_CODES, "reason_codes": "unknown_reason_code"}


def problems_from_schema(errors: Sequence[dict[str, Any]]) -> list[Problem]:
    """Map contract (pydantic) errors, without their input values, to stable problem codes."""
    return shared_problems_from_schema(list(errors), _ENUM_FIELDS)


def reasons_of(problems: Sequence[Problem]) -> list[dict[str, str | None]]:
    """The problems as an answer gives them and a kept rejection stores them: code, where, and
    the texts (never a value sent)."""
    return [
        {"code": p.code, "field": p.field, "message_sv": p.message_sv, "message_en": p.message_en} for p in problems
    ]


@dataclass(frozen=True)
class ConsentGiven:
    party: str
    given_on: date
    source: ConsentSource | None = None  # None: a signed form if there is a form reference
    form_ref: str | None = None
    witness: Witness | None = None

    @classmethod
    def of(cls, consent: Consent) -> ConsentGiven:
        return cls(consent.party.value, consent.given_on, consent.source, consent.form_ref, consent.witness)


def source_of(source: ConsentSource | None, form_ref: str | None) -> ConsentSource | None:
    """A consent's source: as given, or (left out, as before it existed) a signed form when it
    has a form reference."""
    if source is None and form_ref is not None:
        return ConsentSource.SIGNED_FORM
    return source


def consent_source_problems(
    source: ConsentSource | None, form_ref: str | None, witness: Witness | None, where: str = ""
) -> list[Problem]:
    """A consent is given on a signed form (its reference, no witness) or verbally to the
    recording officer with a witness (a staff member's name and role, no form reference).
    The witness is free text about staff: an identity number in it is refused (it could be
    the individual's). ``where``: the dotted path of the consent ("" at the top level)."""
    given = source_of(source, form_ref)
    if given is None:
        return [Problem("consent_source_missing", f"{where}source")]
    problems = []
    if given == ConsentSource.SIGNED_FORM:
        if form_ref is None:
            problems.append(Problem("form_ref_missing", f"{where}form_ref"))
        if witness is not None:
            problems.append(Problem("witness_with_signed_form", f"{where}witness"))
        return problems
    if form_ref is not None:
        problems.append(Problem("form_ref_with_verbal", f"{where}form_ref"))
    if witness is None:
        return [*problems, Problem("witness_missing", f"{where}witness")]
    for name, text in (("name", witness.name), ("role", witness.role)):
        if not text.strip():
            problems.append(Problem("witness_missing", f"{where}witness.{name}"))
        elif holds_identity_number(text):
            problems.append(Problem("witness_holds_identity", f"{where}witness.{name}"))
    return problems


def identity_problems(
    personnummer: str | None, protected: bool, today: date
) -> tuple[list[Problem], Personnummer | None]:
    if protected:
        return ([Problem("identity_with_protected_flag", "personnummer")] if personnummer else []), None
    if not personnummer:
        return [Problem("identity_missing", "personnummer")], None
    try:
        pnr = parse_personnummer(personnummer)
    except InvalidPersonnummer as exc:
        return [Problem(exc.code, "personnummer")], None
    if not MIN_AGE <= age_on(pnr.birth_date, today) <= MAX_AGE:
        return [Problem("age_out_of_range", "personnummer")], pnr
    return [], pnr


def referral_problems(
    *,
    team_id: str | None,
    known_teams: Collection[str],
    question: str | None,
    consents: Sequence[ConsentGiven] | None,
    today: date,
) -> list[Problem]:
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
            problems += consent_source_problems(consent.source, consent.form_ref, consent.witness, f"consents.{i}.")
    return problems


# --------------------------------------------------------------------------- what the service keeps


@dataclass(frozen=True)
class Case:
    """An accepted referral. Its personal data is not here but sealed in the vault; the person is
    known only by a keyed pseudonym (None with protected identity, and once erased)."""

    case_ref: str
    referring_party: Party
    agency_ref: str
    team_id: str
    municipality: str
    protected_identity: bool
    referred_at: datetime
    person_pseudonym: bytes | None = field(default=None, repr=False)
    gender: Gender = Gender.UNKNOWN
    age_band: AgeBand = AgeBand.UNKNOWN
    income_source: IncomeSource = IncomeSource.OKAND
    consented_parties: tuple[Party, ...] = ()
    officer_id: str = ""
    closed_at: datetime | None = None
    exit_reason: str | None = None
    # who closed it: a person's user id (or an agency system) with their party, or "system:<why>"
    closed_by: str | None = None
    closed_by_party: Party | None = None


@dataclass(frozen=True)
class PersonalData:
    """A case's personal data in clear: sealed (vault.py) before it is stored, never logged (the
    repr says nothing)."""

    personnummer: str | None  # 12 digits; None with protected identity
    question: str
    purpose: str | None = None

    def fields(self) -> dict[str, str]:
        """The vault's fields that have a value: name -> value."""
        values = {"personnummer": self.personnummer, "question": self.question, "purpose": self.purpose}
        return {name: value for name, value in values.items() if value is not None}

    def __repr__(self) -> str:
        return "PersonalData(<redacted>)"

    __str__ = __repr__


@dataclass(frozen=True)
class ConsentChange:
    """One entry of a case's consent history (append-only): the latest per party is in force."""

    case_ref: str
    party: Party
    action: Literal["given", "withdrawn"]
    on_date: date
    recorded_by: Party
    recorded_at: datetime
    form_ref: str | None = None
    on_behalf_of_individual: bool = False
    recorded_by_user: str | None = None  # the person (HTTP) or agency system (AMQP); None: before it was kept
    # a consent given: on a signed form (form_ref) or verbally before a witness (staff: name, role)
    source: ConsentSource | None = None
    witness: Witness | None = None


def consent_in_force(history: Sequence[ConsentChange], party: str) -> bool:
    """Whether the party has the individual's consent: its latest change is a consent given."""
    changes = [change for change in history if change.party == party]
    return bool(changes) and changes[-1].action == "given"


def last_withdrawal(history: Sequence[ConsentChange], party: str) -> date | None:
    return max((c.on_date for c in history if c.party == party and c.action == "withdrawn"), default=None)


@dataclass(frozen=True)
class AccessEntry:
    """One attempt to read a case's personal data, granted or denied (the access log keeps every
    one, for the individual's right to know who read what and why)."""

    case_ref: str
    user_id: str
    party: Party
    role: str
    purpose: str
    outcome: Literal["granted", "denied"]
    reason: str | None = None
    read_at: datetime | None = None  # when the log wrote it


@dataclass(frozen=True)
class RejectionRecord:
    """A rejected submission as kept for the agency's follow-up and for counting: codes, fields
    and texts, never a value sent."""

    party: Party
    agency_ref: str | None
    channel: str  # amqp | http
    reasons: tuple[dict[str, str | None], ...]
    rejected_at: datetime


# --------------------------------------------------------------------------- referral intake


@dataclass(frozen=True)
class Submission:
    """A SubmitReferral as it arrived, over AMQP or HTTP: ``command`` if it kept its contract;
    else ``schema_errors`` say how it broke it, and ``raw`` is the payload as sent, used only to
    check what still can be checked. ``raw`` is None when the payload was not read at all (an
    HTTP body over the size limit): then only the schema errors are reported."""

    command: SubmitReferral | None = field(repr=False)  # reprs hold no personal data
    raw: Mapping[str, Any] | None = field(default=None, repr=False)
    schema_errors: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class Referral:
    """What could be read of a submission, with the problems it has on its own (its shape and the
    identity); those that need the service's facts (team, consents, open case) come later."""

    command: SubmitReferral | None = field(repr=False)  # reprs hold no personal data
    agency_ref: str | None
    team_id: str | None
    question: str | None = field(repr=False)
    consents: list[ConsentGiven] | None
    personnummer: Personnummer | None
    pseudonym: bytes | None = field(repr=False)
    problems: tuple[Problem, ...]


@dataclass(frozen=True)
class IntakeFacts:
    """What the service knows that decides a referral besides the referral itself."""

    earlier: Case | None = None  # the case this agency's reference was accepted as before
    municipality: str | None = None  # the team's; None: no such team
    person_has_open_case: bool = False


@dataclass(frozen=True)
class Accepted:
    """The referral is accepted: a new case, its personal data to seal, the consents given with it
    and CaseReferred to announce. Or (``replay``) it was accepted before under this agency
    reference: the same answer again, and nothing to store."""

    case_ref: str
    agency_ref: str
    accepted_at: datetime
    replay: bool = False
    case: Case | None = None
    personal_data: PersonalData | None = None
    consents: tuple[ConsentChange, ...] = ()
    events: tuple[CaseReferred, ...] = ()


@dataclass(frozen=True)
class Rejected:
    """The referral is refused, with every problem found at once."""

    agency_ref: str | None
    problems: tuple[Problem, ...]
    rejected_at: datetime

    def record(self, party: Party, channel: str) -> RejectionRecord:
        return RejectionRecord(party, self.agency_ref, channel, tuple(reasons_of(self.problems)), self.rejected_at)


def read_referral(submission: Submission, *, now: datetime, pseudonym_key: bytes) -> Referral:
    """Read a submission: every problem it has on its own, and the person's pseudonym (which finds
    an open case, or an earlier submission of the same referral)."""
    command, raw = submission.command, submission.raw
    problems = problems_from_schema(submission.schema_errors)
    bad_fields = {p.field.split(".")[0] for p in problems if p.field}
    agency_ref: str | None
    pnr_text: str | None
    team_id: str | None
    question: str | None
    consents: list[ConsentGiven] | None = None
    if command is not None:
        agency_ref, pnr_text, protected = command.agency_ref, command.personnummer, command.protected_identity
        team_id, question = command.team_id, command.question
        consents = [ConsentGiven.of(c) for c in command.consents]
    else:  # check what still can be checked, field by field
        given = raw or {}
        agency_ref = _text(given.get("agency_ref"), limit=64)
        pnr_text = _text(given.get("personnummer")) if "personnummer" not in bad_fields else None
        protected = given.get("protected_identity") is True
        team_id = _text(given.get("team_id")) if "team_id" not in bad_fields else None
        question = _text(given.get("question")) if "question" not in bad_fields else None
    pnr = None
    read_at_all = command is not None or raw is not None  # an unread payload has no identity to check
    if read_at_all and not bad_fields & {"personnummer", "protected_identity"}:
        identity, pnr = identity_problems(pnr_text, protected, stockholm_date(now))
        problems += identity
    return Referral(
        command=command,
        agency_ref=agency_ref,
        team_id=team_id,
        question=question,
        consents=consents,
        personnummer=pnr,
        pseudonym=pseudonym(pseudonym_key, pnr) if pnr else None,
        problems=tuple(problems),
    )


def decide_referral(
    referral: Referral,
    facts: IntakeFacts,
    *,
    party: Party,
    now: datetime,
    case_ref: str,
    by_user: str | None = None,
    person_teams: frozenset[str] | None = None,
) -> Accepted | Rejected:
    """Accept a referral as a new case (``case_ref``), or reject it with every problem at once.

    The same agency reference again gets the same answer if it is the same referral (same person
    and team); another referral under a used reference is refused, not merged. A person has one
    open case at a time. ``by_user`` submits it (kept as the recorder of its consents); a
    person (``person_teams``: the teams they are assigned to) refers only to their own teams,
    an agency's system (None) to any."""
    command = referral.command
    if command is not None and facts.earlier is not None:
        return _resubmission(referral, command, facts.earlier, now)
    known_teams = {referral.team_id} if referral.team_id and facts.municipality else set()
    problems = [
        *referral.problems,
        *referral_problems(
            team_id=referral.team_id,
            known_teams=known_teams,
            question=referral.question,
            consents=referral.consents,
            today=stockholm_date(now),
        ),
    ]
    if person_teams is not None and referral.team_id in known_teams and referral.team_id not in person_teams:
        problems.append(Problem("not_your_team", "team_id"))
    if not problems and facts.person_has_open_case:
        problems.append(Problem("duplicate_open_case", "personnummer"))
    if problems or command is None or not facts.municipality:
        return Rejected(referral.agency_ref, tuple(problems), now)
    return _new_case(
        command, referral, municipality=facts.municipality, party=party, now=now, case_ref=case_ref, by_user=by_user
    )


def _resubmission(referral: Referral, command: SubmitReferral, earlier: Case, now: datetime) -> Accepted | Rejected:
    if referral.pseudonym == earlier.person_pseudonym and command.team_id == earlier.team_id:
        return Accepted(earlier.case_ref, command.agency_ref, earlier.referred_at, replay=True)
    return Rejected(command.agency_ref, (Problem("agency_ref_reused", "agency_ref"),), now)


def _new_case(
    command: SubmitReferral,
    referral: Referral,
    *,
    municipality: str,
    party: Party,
    now: datetime,
    case_ref: str,
    by_user: str | None,
) -> Accepted:
    pnr = referral.personnummer
    gender, band = Gender.UNKNOWN, AgeBand.UNKNOWN
    if pnr is not None:
        gender, band = pnr.gender, age_band(age_on(pnr.birth_date, stockholm_date(now)))
    consented = tuple(sorted({c.party for c in command.consents}))
    case = Case(
        case_ref=case_ref,
        referring_party=party,
        agency_ref=command.agency_ref,
        team_id=command.team_id,
        municipality=municipality,
        protected_identity=command.protected_identity,
        referred_at=now,
        person_pseudonym=referral.pseudonym,
        gender=gender,
        age_band=band,
        income_source=command.income_source,
        consented_parties=consented,
        officer_id=command.officer_id,
    )
    consents = tuple(
        ConsentChange(
            case_ref=case_ref,
            party=c.party,
            action="given",
            on_date=c.given_on,
            recorded_by=party,
            recorded_by_user=by_user,
            recorded_at=now,
            form_ref=c.form_ref,
            source=source_of(c.source, c.form_ref),
            witness=c.witness,
        )
        for c in command.consents
    )
    referred = CaseReferred(
        case_ref=case_ref,
        team_id=command.team_id,
        municipality=municipality,
        referring_party=party,
        gender=gender,
        age_band=band,
        income_source=command.income_source,
        consented_parties=consented,
        wishes_to_attend=command.wishes_to_attend,
        violence_question_asked=command.violence_question_asked,
        reason_codes=command.reason_codes,
        referred_at=now,
    )
    personal = PersonalData(pnr.digits if pnr else None, command.question, command.purpose)
    return Accepted(
        case_ref, command.agency_ref, now, case=case, personal_data=personal, consents=consents, events=(referred,)
    )


def _text(value: Any, limit: int = 4000) -> str | None:
    """A raw value to echo or check: only a storable string within the contract's length."""
    if not isinstance(value, str) or len(value) > limit:
        return None
    return None if any(ord(c) < 32 and c not in "\n\r\t" for c in value) else value


# --------------------------------------------------------------------------- consent


@dataclass(frozen=True)
class ConsentDecision:
    """A consent change to record and announce, or the problems it is refused for."""

    problems: tuple[Problem, ...] = ()
    change: ConsentChange | None = None
    events: tuple[ConsentRecorded | ConsentWithdrawn, ...] = ()


def may_change_consent(
    *, by_party: str, consent_party: str, referring_party: str, coordinator_of_team: bool = False
) -> bool:
    """The referring party and the team's coordinator record the individual's decisions for any
    party; another party only for its own consent."""
    return by_party == referring_party or consent_party == by_party or coordinator_of_team


def decide_consent_given(
    case: Case | None,
    history: Sequence[ConsentChange],
    *,
    by: Party,
    by_user: str,
    command: RecordConsent,
    now: datetime,
    coordinator_of: frozenset[str] = frozenset(),
    person_teams: frozenset[str] | None = None,
) -> ConsentDecision:
    """Record the individual's consent for a party (given after the referral, or again): not on a
    closed case, and not dated before a later withdrawal of that party's consent. A person
    (``person_teams``: the teams they are assigned to) records it only on their teams' cases;
    an agency's system (None) for its party on any case. A withdrawal is not scoped so: it
    never opens access, and the individual may ask any officer of the party."""
    problems = _consent_problems(case, by, command.party, command.given_on, now, "given_on", coordinator_of)
    if not problems and case is not None and person_teams is not None and case.team_id not in person_teams:
        problems.append(Problem("not_in_team", "case_ref"))
    if case is not None and case.closed_at is not None:
        problems.append(Problem("case_closed", "case_ref"))
    withdrawn_on = last_withdrawal(history, command.party)
    if not problems and withdrawn_on is not None and command.given_on < withdrawn_on:
        problems.append(Problem("consent_before_withdrawal", "given_on"))
    problems += consent_source_problems(command.source, command.form_ref, command.witness)
    if problems or case is None:
        return ConsentDecision(problems=tuple(problems))
    change = ConsentChange(
        case_ref=case.case_ref,
        party=command.party,
        action="given",
        on_date=command.given_on,
        recorded_by=by,
        recorded_by_user=by_user,
        recorded_at=now,
        form_ref=command.form_ref,
        source=source_of(command.source, command.form_ref),
        witness=command.witness,
    )
    recorded = ConsentRecorded(
        case_ref=case.case_ref, party=command.party, given_on=command.given_on, recorded_by=by, recorded_at=now
    )
    return ConsentDecision(change=change, events=(recorded,))


def decide_consent_withdrawn(
    case: Case | None,
    *,
    by: Party,
    by_user: str,
    command: WithdrawConsent,
    now: datetime,
    coordinator_of: frozenset[str] = frozenset(),
) -> ConsentDecision:
    """Withdraw the consent for a party; every service is told (ConsentWithdrawn). Allowed on a
    closed case too: its personal data stays until the retention period ends."""
    problems = _consent_problems(case, by, command.party, command.withdrawn_on, now, "withdrawn_on", coordinator_of)
    if problems or case is None:
        return ConsentDecision(problems=tuple(problems))
    change = ConsentChange(
        case_ref=case.case_ref,
        party=command.party,
        action="withdrawn",
        on_date=command.withdrawn_on,
        recorded_by=by,
        recorded_by_user=by_user,
        recorded_at=now,
        on_behalf_of_individual=command.on_behalf_of_individual,
    )
    withdrawn = ConsentWithdrawn(
        case_ref=case.case_ref,
        party=command.party,
        withdrawn_on=command.withdrawn_on,
        on_behalf_of_individual=command.on_behalf_of_individual,
        recorded_by=by,
        recorded_at=now,
    )
    return ConsentDecision(change=change, events=(withdrawn,))


def _consent_problems(
    case: Case | None, by: Party, party: Party, on_date: date, now: datetime, field: str, coordinator_of: frozenset[str]
) -> list[Problem]:
    if case is None:
        return [Problem("case_not_found", "case_ref")]
    if not may_change_consent(
        by_party=by,
        consent_party=party,
        referring_party=case.referring_party,
        coordinator_of_team=case.team_id in coordinator_of,
    ):
        return [Problem("not_allowed", "party")]
    if on_date > stockholm_date(now):
        return [Problem("date_in_future", field)]
    return []


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


def may_read_details(*, role: str, teams: frozenset[str], case_team: str, party_has_consent: bool) -> str | None:
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


@dataclass(frozen=True)
class Reader:
    """Who asks to read a case (from the bearer token)."""

    user_id: str
    party: Party
    role: str
    teams: frozenset[str]


@dataclass(frozen=True)
class Refusal:
    """Why a read is refused: a stable code, and a text that holds no value sent."""

    code: str
    message: str


CASE_NOT_FOUND = Refusal("case_not_found", "no such case")
PURPOSE_HOLDS_IDENTITY = Refusal("purpose_holds_identity", "the purpose may not contain an identity number")
READ_REFUSALS = {
    "role_not_allowed": "your role may not read case details",
    "not_in_team": "you are not a member of the case's team",
    "no_consent": "the individual has not consented to sharing with your party",
}


@dataclass(frozen=True)
class DetailsDecision:
    """Whether the reader sees the case's personal data (no refusal), and the access-log entry of
    the attempt."""

    refusal: Refusal | None
    entry: AccessEntry | None = None


def decide_details_read(
    reader: Reader, case: Case | None, history: Sequence[ConsentChange], *, purpose: str
) -> DetailsDecision:
    """Every read of a case's personal data, granted or denied, goes into the access log with its
    purpose. A purpose that holds an identity number is refused before (the log would keep the
    number), and so is a case that does not exist (there is nothing to log it under)."""
    if holds_identity_number(purpose):
        return DetailsDecision(PURPOSE_HOLDS_IDENTITY)
    if case is None:
        return DetailsDecision(CASE_NOT_FOUND)
    reason = may_read_details(
        role=reader.role,
        teams=reader.teams,
        case_team=case.team_id,
        party_has_consent=consent_in_force(history, reader.party),
    )
    entry = AccessEntry(
        case_ref=case.case_ref,
        user_id=reader.user_id,
        party=reader.party,
        role=reader.role,
        purpose=purpose,
        outcome="denied" if reason else "granted",
        reason=reason,
    )
    return DetailsDecision(Refusal(reason, READ_REFUSALS[reason]) if reason else None, entry)


def may_see_consents(reader: Reader, case: Case | None) -> Refusal | None:
    """A case's consent history (no personal data): auditors of any case, others of their own
    teams' cases."""
    if case is None:
        return CASE_NOT_FOUND
    if reader.role != "auditor" and case.team_id not in reader.teams:
        return Refusal("not_in_team", "not a member of the case's team")
    return None


# --------------------------------------------------------------------------- closure and retention


def decide_closure(
    case: Case | None,
    *,
    reason: str,
    closed_at: datetime,
    closed_by: str | None = None,
    closed_by_party: Party | None = None,
) -> Case | None:
    """The case as closed, and by whom (None in a CaseClosed of before it was carried), or None
    when there is nothing to close: the case is not known here, or was closed before (a
    repeated CaseClosed changes nothing)."""
    if case is None or case.closed_at is not None:
        return None
    return replace(case, closed_at=closed_at, exit_reason=reason, closed_by=closed_by, closed_by_party=closed_by_party)


def due_for_erasure(closed: Sequence[Case], *, cutoff: datetime) -> list[str]:
    """The cases whose personal data is to be destroyed: closed before ``cutoff``, longer ago
    than the retention period (``shared.platform.retention``). What identifies nobody (team,
    gender, age band, dates) stays for the figures."""
    return [case.case_ref for case in closed if case.closed_at is not None and case.closed_at < cutoff]
