"""Referral storage: the repositories of the unit of work (``uow.py``), small classes over the
transaction's connection that take and give the domain's records (``domain.py``), never
database rows. Personal data is only written here sealed (see vault.py)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime

import asyncpg

from shared.contracts import Witness
from shared.contracts.vocabulary import AgeBand, ConsentSource, Gender, IncomeSource, Party
from shared.platform.db import Conn
from shared.platform.teams import Team

from .domain import AccessEntry, Case, ConsentChange, IntakeFacts, RejectionRecord, source_of
from .vault import Sealed, SealedCase

_CASE_COLUMNS = """case_ref, referring_party, agency_ref, team_id, municipality, protected_identity,
                   referred_at, person_pseudonym, gender, age_band, income_source, consented_parties,
                   officer_id, closed_at, exit_reason, closed_by, closed_by_party"""
_VAULT_FIELDS = ("personnummer", "question", "purpose")

# The statements' shared parts: a case's row, its vault row and consent rows are written alone
# (Vault.put on a re-seal, ConsentHistory.add) or together when a case is opened (Cases.open);
# each statement is made once, here.
_REFERRAL_COLUMNS = (
    "case_ref, referring_party, agency_ref, team_id, municipality, person_pseudonym, protected_identity, "
    "gender, age_band, income_source, consented_parties, officer_id, referred_at"
).split(", ")
_REFERRAL_INSERT = (
    f"({', '.join(_REFERRAL_COLUMNS)}) VALUES ({', '.join(f'${i}' for i in range(1, len(_REFERRAL_COLUMNS) + 1))})"
)
_VAULT_COLUMNS = (
    "case_ref, personnummer, personnummer_key, question, question_key, purpose, purpose_key, data_key, data_key_id"
)
# the columns after case_ref: each field (sealed) and its key's id, then the data key and its id
_VAULT_TYPES = ("bytea", "text") * (len(_VAULT_FIELDS) + 1)
_CONSENT_COLUMNS = (
    "case_ref, party, action, on_date, form_ref, on_behalf_of_individual, recorded_by, recorded_at, "
    "recorded_by_user, source, witness_name, witness_role"
)


def _referral_values(case: Case) -> list[object]:
    return [
        case.case_ref,
        case.referring_party.value,
        case.agency_ref,
        case.team_id,
        case.municipality,
        case.person_pseudonym,
        case.protected_identity,
        case.gender.value,
        case.age_band.value,
        case.income_source.value,
        [p.value for p in case.consented_parties],
        case.officer_id,
        case.referred_at,
    ]


def _vault_values(sealed: SealedCase) -> list[object]:
    """The vault row's values after its case_ref: each field and its key, then the data key."""
    values: list[object] = []
    for name in _VAULT_FIELDS:
        value = sealed.fields.get(name)
        values += [value.blob if value else None, value.key_id if value else None]
    key = sealed.data_key
    return [*values, key.blob if key else None, key.key_id if key else None]


def _consent_select(first: int) -> str:
    """The consent rows from their arrays, parameters ``$first`` on, with their order ``c.n``."""
    p = [f"${i}" for i in range(first, first + 12)]
    return f"""SELECT c.case_ref, c.party, c.action, c.on_date, c.form_ref, c.on_behalf, c.recorded_by,
                      c.recorded_at, c.recorded_by_user, c.source, c.witness_name, c.witness_role
               FROM unnest({p[0]}::text[], {p[1]}::text[], {p[2]}::text[], {p[3]}::date[], {p[4]}::text[],
                           {p[5]}::boolean[], {p[6]}::text[], {p[7]}::timestamptz[], {p[8]}::text[],
                           {p[9]}::text[], {p[10]}::text[], {p[11]}::text[])
                    WITH ORDINALITY AS c(case_ref, party, action, on_date, form_ref, on_behalf, recorded_by,
                                         recorded_at, recorded_by_user, source, witness_name, witness_role, n)"""


def _consent_arrays(changes: Sequence[ConsentChange]) -> list[list[object]]:
    return [
        [c.case_ref for c in changes],
        [c.party.value for c in changes],
        [c.action for c in changes],
        [c.on_date for c in changes],
        [c.form_ref for c in changes],
        [c.on_behalf_of_individual for c in changes],
        [c.recorded_by.value for c in changes],
        [c.recorded_at for c in changes],
        [c.recorded_by_user for c in changes],
        [c.source.value if c.source else None for c in changes],
        [c.witness.name if c.witness else None for c in changes],
        [c.witness.role if c.witness else None for c in changes],
    ]


_N = len(_REFERRAL_COLUMNS)
_OPEN_CASE = f"""
    WITH opened AS (
        INSERT INTO referrals {_REFERRAL_INSERT} ON CONFLICT DO NOTHING RETURNING case_ref),
     sealed AS (
        INSERT INTO vault ({_VAULT_COLUMNS})
        SELECT case_ref, {", ".join(f"${_N + 1 + i}::{t}" for i, t in enumerate(_VAULT_TYPES))} FROM opened),
     consents AS (
        INSERT INTO consent_history ({_CONSENT_COLUMNS})
        {_consent_select(_N + 1 + len(_VAULT_TYPES))} WHERE EXISTS (SELECT FROM opened) ORDER BY c.n)
    SELECT count(*) FROM opened"""
_PUT_VAULT = f"""
    INSERT INTO vault ({_VAULT_COLUMNS}) VALUES ({", ".join(f"${i}" for i in range(1, len(_VAULT_TYPES) + 2))})
    ON CONFLICT (case_ref) DO UPDATE SET
        personnummer = EXCLUDED.personnummer, personnummer_key = EXCLUDED.personnummer_key,
        question = EXCLUDED.question, question_key = EXCLUDED.question_key,
        purpose = EXCLUDED.purpose, purpose_key = EXCLUDED.purpose_key,
        data_key = EXCLUDED.data_key, data_key_id = EXCLUDED.data_key_id
    WHERE vault.erased_at IS NULL"""
_ADD_CONSENTS = f"INSERT INTO consent_history ({_CONSENT_COLUMNS}) {_consent_select(1)} ORDER BY c.n"


def _case(row: asyncpg.Record | None) -> Case | None:
    if row is None:
        return None
    return Case(
        case_ref=row["case_ref"],
        referring_party=Party(row["referring_party"]),
        agency_ref=row["agency_ref"],
        team_id=row["team_id"],
        municipality=row["municipality"],
        protected_identity=row["protected_identity"],
        referred_at=row["referred_at"],
        person_pseudonym=row["person_pseudonym"],
        gender=Gender(row["gender"]),
        age_band=AgeBand(row["age_band"]),
        income_source=IncomeSource(row["income_source"]),
        consented_parties=tuple(Party(p) for p in row["consented_parties"]),
        officer_id=row["officer_id"],
        closed_at=row["closed_at"],
        exit_reason=row["exit_reason"],
        closed_by=row["closed_by"],
        closed_by_party=Party(row["closed_by_party"]) if row["closed_by_party"] else None,
    )


class Cases:
    """The accepted referrals (table ``referrals``)."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    async def open(self, case: Case, sealed: SealedCase, consents: Sequence[ConsentChange]) -> bool:
        """A new case with its sealed personal data and its consents at referral, in one
        statement; False if a unique index (this agency's reference, or this person's one open
        case) refused the case, and then nothing is written (no savepoint: ON CONFLICT)."""
        added = await self.conn.fetchval(
            _OPEN_CASE, *_referral_values(case), *_vault_values(sealed), *_consent_arrays(consents)
        )
        return bool(added)

    async def get(self, case_ref: str) -> Case | None:
        return _case(await self.conn.fetchrow(f"SELECT {_CASE_COLUMNS} FROM referrals WHERE case_ref = $1", case_ref))

    async def lock(self, case_ref: str) -> Case | None:
        """The case, locked for the rest of the unit of work (one case's writers serialise here)."""
        return _case(
            await self.conn.fetchrow(f"SELECT {_CASE_COLUMNS} FROM referrals WHERE case_ref = $1 FOR UPDATE", case_ref)
        )

    async def accepted_for(self, party: Party, agency_ref: str) -> Case | None:
        """The case the party's agency reference was accepted as, if it was."""
        return _case(
            await self.conn.fetchrow(
                f"SELECT {_CASE_COLUMNS} FROM referrals WHERE referring_party = $1 AND agency_ref = $2",
                party.value,
                agency_ref,
            )
        )

    async def of_party(self, party: Party, limit: int) -> list[Case]:
        """The party's referrals, the latest first."""
        rows = await self.conn.fetch(
            f"SELECT {_CASE_COLUMNS} FROM referrals WHERE referring_party = $1 ORDER BY referred_at DESC LIMIT $2",
            party.value,
            limit,
        )
        return [case for case in map(_case, rows) if case is not None]

    async def close(self, case: Case) -> None:
        """Write the case's closure (closed_at and exit_reason of ``case``)."""
        await self.conn.execute(
            """UPDATE referrals SET closed_at = $2, exit_reason = $3, closed_by = $4, closed_by_party = $5
               WHERE case_ref = $1""",
            case.case_ref,
            case.closed_at,
            case.exit_reason,
            case.closed_by,
            case.closed_by_party.value if case.closed_by_party else None,
        )

    async def closed_holding_personal_data(self, closed_before: datetime) -> list[Case]:
        """The cases closed before ``closed_before`` whose personal data the vault still holds."""
        rows = await self.conn.fetch(
            f"""SELECT {_CASE_COLUMNS} FROM referrals r
                WHERE r.closed_at < $1
                  AND EXISTS (SELECT 1 FROM vault v WHERE v.case_ref = r.case_ref AND v.erased_at IS NULL)
                ORDER BY r.closed_at""",
            closed_before,
        )
        return [case for case in map(_case, rows) if case is not None]

    async def forget_pseudonyms(self, case_refs: Sequence[str]) -> None:
        """Drop the pseudonym, which whoever holds the key could match to a number."""
        await self.conn.execute(
            "UPDATE referrals SET person_pseudonym = NULL WHERE case_ref = ANY($1)", list(case_refs)
        )


class IntakeLookups:
    """What decides a referral besides the referral itself (``domain.IntakeFacts``), looked up in
    one statement, so from one snapshot: the person's open case, the agency reference's earlier
    case, and the team's municipality (as the registry announced it, else the registry file)."""

    def __init__(self, conn: Conn, teams_from_file: Mapping[str, Team]) -> None:
        self.conn = conn
        self.teams_from_file = teams_from_file

    async def facts(
        self, pseudonym: bytes | None, party: Party, agency_ref: str | None, team_id: str | None
    ) -> IntakeFacts:
        row = await self.conn.fetchrow(
            f"""SELECT EXISTS (SELECT 1 FROM referrals WHERE person_pseudonym = $1 AND closed_at IS NULL)
                           AS person_has_open_case,
                       (SELECT municipality FROM registered_teams WHERE team_id = $4) AS registered_municipality,
                       earlier.*
                FROM (SELECT 1) AS one
                LEFT JOIN LATERAL (SELECT {_CASE_COLUMNS} FROM referrals
                                   WHERE referring_party = $2 AND agency_ref = $3) AS earlier ON true""",
            pseudonym,
            party.value,
            agency_ref,
            team_id,
        )
        assert row is not None  # one row, always
        team = self.teams_from_file.get(team_id) if team_id else None
        return IntakeFacts(
            earlier=_case(row) if row["case_ref"] is not None else None,
            municipality=row["registered_municipality"] or (team.municipality if team else None),
            person_has_open_case=bool(row["person_has_open_case"]),
        )


class Vault:
    """The cases' personal data, sealed (table ``vault``; one row per case): the fields and the
    case's data key, wrapped by a master key (see vault.py)."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    async def put(self, case_ref: str, sealed: SealedCase) -> None:
        """Store a case's sealed personal data, or replace it (a re-wrap)."""
        await self.conn.execute(
            _PUT_VAULT,
            case_ref,
            *_vault_values(sealed),
        )

    async def get(self, case_ref: str) -> SealedCase:
        """The case's sealed fields (none for a case without a vault row)."""
        return _sealed(await self.conn.fetchrow("SELECT * FROM vault WHERE case_ref = $1", case_ref))

    async def not_under(self, master_key_id: str, limit: int) -> list[tuple[str, SealedCase]]:
        """Live (not erased) cases whose data key is wrapped by another master key, or that have
        none yet (sealed before data keys), locked for this unit of work (others skip them)."""
        rows = await self.conn.fetch(
            """SELECT * FROM vault
               WHERE erased_at IS NULL AND data_key_id IS DISTINCT FROM $1
               ORDER BY case_ref LIMIT $2 FOR UPDATE SKIP LOCKED""",
            master_key_id,
            limit,
        )
        return [(row["case_ref"], _sealed(row)) for row in rows]

    async def erase(self, case_refs: Sequence[str]) -> None:
        """Destroy the ciphertexts of these cases and their data keys: a copy of the row made
        before (a backup) opens only while its master key is still configured (see vault.py)."""
        await self.conn.execute(
            """UPDATE vault SET personnummer = NULL, personnummer_key = NULL, question = NULL,
                      question_key = NULL, purpose = NULL, purpose_key = NULL, data_key = NULL,
                      data_key_id = NULL, erased_at = now()
               WHERE case_ref = ANY($1) AND erased_at IS NULL""",
            list(case_refs),
        )


def _sealed(row: asyncpg.Record | None) -> SealedCase:
    if row is None:
        return SealedCase()
    return SealedCase(
        {name: Sealed(row[f"{name}_key"], row[name]) for name in _VAULT_FIELDS if row[name] is not None},
        row["erased_at"],
        Sealed(row["data_key_id"], row["data_key"]) if row["data_key"] is not None else None,
    )


def _consent_change(row: asyncpg.Record) -> ConsentChange:
    return ConsentChange(
        case_ref=row["case_ref"],
        party=Party(row["party"]),
        action=row["action"],
        on_date=row["on_date"],
        recorded_by=Party(row["recorded_by"]),
        recorded_at=row["recorded_at"],
        form_ref=row["form_ref"],
        on_behalf_of_individual=row["on_behalf_of_individual"],
        recorded_by_user=row["recorded_by_user"],
        source=source_of(ConsentSource(row["source"]) if row["source"] else None, row["form_ref"])
        if row["action"] == "given"
        else None,
        witness=Witness(name=row["witness_name"], role=row["witness_role"]) if row["witness_name"] else None,
    )


class ConsentHistory:
    """Every case's consent, given and withdrawn per party (table ``consent_history``, append-only)."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    async def add(self, *changes: ConsentChange) -> None:
        """Append changes, in this order, in one statement."""
        if not changes:
            return
        await self.conn.execute(
            _ADD_CONSENTS,
            *_consent_arrays(changes),
        )

    async def of(self, case_ref: str) -> list[ConsentChange]:
        """The case's history, oldest first."""
        rows = await self.conn.fetch(
            """SELECT case_ref, party, action, on_date, form_ref, on_behalf_of_individual, recorded_by,
                      recorded_at, recorded_by_user, source, witness_name, witness_role
               FROM consent_history WHERE case_ref = $1 ORDER BY id""",
            case_ref,
        )
        return [_consent_change(row) for row in rows]


class Rejections:
    """Rejected submissions, without personal data (table ``rejections``)."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    async def add(self, rejection: RejectionRecord) -> None:
        await self.conn.execute(
            """INSERT INTO rejections (party, agency_ref, channel, codes, reasons, rejected_at)
               VALUES ($1, $2, $3, $4, $5::jsonb, $6)""",
            rejection.party.value,
            rejection.agency_ref,
            rejection.channel,
            [r["code"] for r in rejection.reasons],
            json.dumps(list(rejection.reasons)),
            rejection.rejected_at,
        )

    async def of(self, party: Party, limit: int = 100) -> list[RejectionRecord]:
        """The party's latest rejections, newest first."""
        rows = await self.conn.fetch(
            """SELECT party, agency_ref, channel, reasons, rejected_at FROM rejections WHERE party = $1
               ORDER BY id DESC LIMIT $2""",
            party.value,
            limit,
        )
        return [
            RejectionRecord(
                Party(r["party"]), r["agency_ref"], r["channel"], tuple(json.loads(r["reasons"])), r["rejected_at"]
            )
            for r in rows
        ]


class AccessLog:
    """Every read of personal data, granted or denied (table ``access_log``, append-only)."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    async def add(self, entry: AccessEntry) -> None:
        await self.conn.execute(
            """INSERT INTO access_log (case_ref, user_id, party, role, purpose, outcome, reason)
               VALUES ($1, $2, $3, $4, $5, $6, $7)""",
            entry.case_ref,
            entry.user_id,
            entry.party.value,
            entry.role,
            entry.purpose,
            entry.outcome,
            entry.reason,
        )

    async def of(self, case_ref: str) -> list[AccessEntry]:
        """The case's entries, oldest first."""
        rows = await self.conn.fetch(
            """SELECT case_ref, user_id, party, role, purpose, outcome, reason, read_at FROM access_log
               WHERE case_ref = $1 ORDER BY id""",
            case_ref,
        )
        return [
            AccessEntry(
                case_ref=r["case_ref"],
                user_id=r["user_id"],
                party=Party(r["party"]),
                role=r["role"],
                purpose=r["purpose"],
                outcome=r["outcome"],
                reason=r["reason"],
                read_at=r["read_at"],
            )
            for r in rows
        ]


class TeamRegistry:
    """The Trisam teams as the meeting service's registry last announced them (TeamUpdated, table
    ``registered_teams``); read with the rest of a referral's facts (``IntakeLookups``)."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    async def register(self, team_id: str, municipality: str, revision: int, updated_at: datetime) -> None:
        """Keep the newest revision of a team's entry (an older one arriving late changes nothing:
        one statement, so that two instances applying two revisions at once cannot get it wrong)."""
        await self.conn.execute(
            """INSERT INTO registered_teams (team_id, municipality, revision, updated_at)
               VALUES ($1, $2, $3, $4)
               ON CONFLICT (team_id) DO UPDATE SET municipality = EXCLUDED.municipality,
                   revision = EXCLUDED.revision, updated_at = EXCLUDED.updated_at
               WHERE registered_teams.revision < EXCLUDED.revision""",
            team_id,
            municipality,
            revision,
            updated_at,
        )
