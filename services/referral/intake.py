"""Referral intake and consent: one set of rules for both ways in (AMQP and HTTP).

Each function runs inside the caller's transaction and emits its events through the given
emitter (the AMQP handler's context or the HTTP route's outbox emitter). Replies to an agency
over AMQP are the handlers' business; these functions return the outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import asyncpg
import structlog

from shared.contracts import (CaseReferred, ConsentRecorded, ConsentWithdrawn, RecordConsent,
                           SubmitReferral, WithdrawConsent)
from shared.platform.teams import Team
from shared.contracts.vocabulary import AgeBand, Gender, Party

from . import domain, store
from .domain import ConsentGiven, Problem
from .vault import Keyring, associated_data

log = structlog.get_logger("intake")


class Emits(Protocol):
    async def emit(self, event: Any, *, ordering_key: str) -> Any: ...


@dataclass(frozen=True)
class Accepted:
    case_ref: str
    agency_ref: str
    accepted_at: datetime
    replay: bool = False  # the same agency reference was accepted before: same answer


@dataclass(frozen=True)
class Rejected:
    agency_ref: str | None
    problems: tuple[Problem, ...]
    rejected_at: datetime

    def reasons(self) -> list[dict]:
        return [{"code": p.code, "field": p.field, "message_sv": p.message_sv,
                 "message_en": p.message_en} for p in self.problems]


@dataclass
class Intake:
    teams: dict[str, Team]
    keyring: Keyring
    pseudonym_key: bytes

    async def municipality_of(self, conn: asyncpg.Connection, team_id: str) -> str | None:
        """The team's municipality: as the meeting service's registry last announced it
        (TeamUpdated), else from the registry file; None for an unknown team."""
        registered = await store.registered_municipality(conn, team_id)
        if registered is not None:
            return registered
        team = self.teams.get(team_id)
        return team.municipality if team else None

    async def submit(self, conn: asyncpg.Connection, emitter: Emits, *, party: Party,
                     command: SubmitReferral | None, raw: dict, schema_errors: list[dict],
                     channel: str, now: datetime) -> Accepted | Rejected:
        """Validate (every problem at once) and accept or reject one referral.

        ``command`` is None when the payload broke the contract; then ``schema_errors`` say how
        and ``raw`` is the payload as sent, used only to check what still can be checked."""
        agency_ref = command.agency_ref if command else _text(raw.get("agency_ref"), limit=64)
        today = domain.stockholm_date(now)
        if command is not None:
            earlier = await store.accepted_case_for(conn, party.value, command.agency_ref)
            if earlier:
                return await self._replay(conn, party, command, earlier, channel, now, today)
        problems = domain.problems_from_schema(schema_errors)
        bad_fields = {p.field.split(".")[0] for p in problems if p.field}
        if command is not None:
            pnr_text, protected = command.personnummer, command.protected_identity
            team_id, question = command.team_id, command.question
            consents = [ConsentGiven(c.party.value, c.given_on) for c in command.consents]
        else:  # check what still can be checked, field by field
            pnr_text = _text(raw.get("personnummer")) if "personnummer" not in bad_fields else None
            protected = raw.get("protected_identity") is True
            team_id = _text(raw.get("team_id")) if "team_id" not in bad_fields else None
            question = _text(raw.get("question")) if "question" not in bad_fields else None
            consents = None
        identity_checkable = "personnummer" not in bad_fields and "protected_identity" not in bad_fields
        pnr = None
        if identity_checkable:
            identity, pnr = domain.identity_problems(pnr_text, protected, today)
            problems += identity
        municipality = await self.municipality_of(conn, team_id) if team_id else None
        problems += domain.referral_problems(team_id=team_id,
                                             known_teams={team_id} if municipality else set(),
                                             question=question, consents=consents, today=today)
        pseudonym = domain.pseudonym(self.pseudonym_key, pnr) if pnr else None
        if not problems and pseudonym and await store.has_open_case(conn, pseudonym):
            # perhaps a concurrent submission of this very referral has just committed
            earlier = await store.accepted_case_for(conn, party.value, command.agency_ref)
            if earlier:
                return await self._replay(conn, party, command, earlier, channel, now, today)
            problems.append(Problem("duplicate_open_case", "personnummer"))
        if problems or command is None:
            return await self._reject(conn, party, agency_ref, problems, channel, now)

        case_ref = domain.new_case_ref()
        gender, band = Gender.UNKNOWN, AgeBand.UNKNOWN
        if pnr is not None:
            gender, band = pnr.gender, domain.age_band(domain.age_on(pnr.birth_date, today))
        consented = sorted({c.party.value for c in command.consents})
        refused = await store.insert_case(
            conn, case_ref=case_ref, referring_party=party.value, agency_ref=command.agency_ref,
            team_id=command.team_id, municipality=municipality, person_pseudonym=pseudonym,
            protected_identity=command.protected_identity, gender=gender.value,
            age_band=band.value, income_source=command.income_source.value,
            consented_parties=consented, officer_id=command.officer_id, referred_at=now)
        if refused:
            # A concurrent submission got there first: of the same agency reference (then the
            # same answer), or of the same person under another reference.
            earlier = await store.accepted_case_for(conn, party.value, command.agency_ref)
            if earlier:
                return await self._replay(conn, party, command, earlier, channel, now, today)
            return await self._reject(conn, party, agency_ref,
                                      [Problem("duplicate_open_case", "personnummer")], channel, now)
        await store.store_sealed(conn, case_ref, self._seal(case_ref, command, pnr))
        for consent in command.consents:
            await store.add_consent(conn, case_ref=case_ref, party=consent.party.value,
                                    action="given", on_date=consent.given_on,
                                    form_ref=consent.form_ref, on_behalf_of_individual=False,
                                    recorded_by=party.value, recorded_at=now)
        await emitter.emit(CaseReferred(
            case_ref=case_ref, team_id=command.team_id, municipality=municipality,
            referring_party=party, gender=gender, age_band=band,
            income_source=command.income_source, consented_parties=tuple(Party(p) for p in consented),
            wishes_to_attend=command.wishes_to_attend,
            violence_question_asked=command.violence_question_asked,
            reason_codes=command.reason_codes, referred_at=now), ordering_key=case_ref)
        log.info("referral accepted", case_ref=case_ref, referring_party=party.value,
                 channel=channel)
        return Accepted(case_ref, command.agency_ref, now)

    async def _replay(self, conn, party: Party, command: SubmitReferral, earlier, channel: str,
                      now: datetime, today) -> Accepted | Rejected:
        """The same agency reference again: the same answer, if it is the same referral (same
        person and team); another referral under a used reference is refused, not merged."""
        pseudonym = None
        if command.personnummer and not command.protected_identity:
            _problems, pnr = domain.identity_problems(command.personnummer, False, today)
            pseudonym = domain.pseudonym(self.pseudonym_key, pnr) if pnr else None
        if pseudonym == earlier["person_pseudonym"] and command.team_id == earlier["team_id"]:
            return Accepted(earlier["case_ref"], command.agency_ref, earlier["referred_at"],
                            replay=True)
        return await self._reject(conn, party, command.agency_ref,
                                  [Problem("agency_ref_reused", "agency_ref")], channel, now)

    def _seal(self, case_ref: str, command: SubmitReferral, pnr) -> dict:
        values = {"personnummer": pnr.digits if pnr else None, "question": command.question,
                  "purpose": command.purpose}
        return {name: self.keyring.encrypt(value.encode(),
                                           associated_data=associated_data(case_ref, name))
                for name, value in values.items() if value is not None}

    async def _reject(self, conn, party: Party, agency_ref: str | None, problems: list[Problem],
                      channel: str, now: datetime) -> Rejected:
        rejected = Rejected(agency_ref, tuple(problems), now)
        await store.store_rejection(conn, party=party.value, agency_ref=agency_ref,
                                    channel=channel, reasons=rejected.reasons(), rejected_at=now)
        log.info("referral rejected", referring_party=party.value, channel=channel,
                 codes=[p.code for p in problems])
        return rejected

    def reveal(self, case_ref: str, sealed: dict) -> dict[str, str]:
        """Decrypt a case's vault fields (call only after the access rules allowed it)."""
        return {name: self.keyring.decrypt(value, associated_data=associated_data(case_ref, name)).decode()
                for name, value in sealed.items()}


async def record_consent(conn: asyncpg.Connection, emitter: Emits, *, by: Party,
                         command: RecordConsent, now: datetime,
                         coordinator_of: frozenset[str] = frozenset()) -> list[Problem]:
    """Record the individual's consent for a party; returns the problems if refused."""
    case = await store.lock_case(conn, command.case_ref)
    problems = _consent_problems(case, by, command.party, command.given_on, now, "given_on",
                                 coordinator_of)
    if case is not None and case.closed_at is not None:
        problems.append(Problem("case_closed", "case_ref"))
    if not problems:
        withdrawn_on = await store.last_withdrawal(conn, case.case_ref, command.party.value)
        if withdrawn_on is not None and command.given_on < withdrawn_on:
            problems.append(Problem("consent_before_withdrawal", "given_on"))
    if problems:
        return problems
    await store.add_consent(conn, case_ref=case.case_ref, party=command.party.value,
                            action="given", on_date=command.given_on, form_ref=command.form_ref,
                            on_behalf_of_individual=False, recorded_by=by.value, recorded_at=now)
    await emitter.emit(ConsentRecorded(case_ref=case.case_ref, party=command.party,
                                       given_on=command.given_on, recorded_by=by,
                                       recorded_at=now), ordering_key=case.case_ref)
    return []


async def withdraw_consent(conn: asyncpg.Connection, emitter: Emits, *, by: Party,
                           command: WithdrawConsent, now: datetime,
                           coordinator_of: frozenset[str] = frozenset()) -> list[Problem]:
    """Withdraw the consent for a party; every service is told (ConsentWithdrawn). Allowed on
    a closed case too: its personal data stays until the retention period ends."""
    case = await store.lock_case(conn, command.case_ref)
    problems = _consent_problems(case, by, command.party, command.withdrawn_on, now,
                                 "withdrawn_on", coordinator_of)
    if problems:
        return problems
    await store.add_consent(conn, case_ref=case.case_ref, party=command.party.value,
                            action="withdrawn", on_date=command.withdrawn_on, form_ref=None,
                            on_behalf_of_individual=command.on_behalf_of_individual,
                            recorded_by=by.value, recorded_at=now)
    await emitter.emit(ConsentWithdrawn(
        case_ref=case.case_ref, party=command.party, withdrawn_on=command.withdrawn_on,
        on_behalf_of_individual=command.on_behalf_of_individual, recorded_by=by,
        recorded_at=now), ordering_key=case.case_ref)
    log.info("consent withdrawn", case_ref=case.case_ref, party=command.party.value)
    return []


def _consent_problems(case, by: Party, party: Party, on_date, now: datetime, field: str,
                      coordinator_of: frozenset[str]) -> list[Problem]:
    if case is None:
        return [Problem("case_not_found", "case_ref")]
    if not domain.may_change_consent(by_party=by.value, consent_party=party.value,
                                     referring_party=case.referring_party,
                                     coordinator_of_team=case.team_id in coordinator_of):
        return [Problem("not_allowed", "party")]
    if on_date > domain.stockholm_date(now):
        return [Problem("date_in_future", field)]
    return []


def _text(value: Any, limit: int = 4000) -> str | None:
    """A raw value to echo or check: only a storable string within the contract's length."""
    if not isinstance(value, str) or len(value) > limit:
        return None
    return None if any(ord(c) < 32 and c not in "\n\r\t" for c in value) else value
