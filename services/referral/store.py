"""Referral storage (asyncpg). Personal data is only written here encrypted (see vault.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime

import asyncpg

from .vault import Sealed


@dataclass(frozen=True)
class Case:
    case_ref: str
    referring_party: str
    agency_ref: str
    team_id: str
    municipality: str
    protected_identity: bool
    referred_at: datetime
    closed_at: datetime | None


async def insert_case(conn: asyncpg.Connection, *, case_ref: str, referring_party: str,
                      agency_ref: str, team_id: str, municipality: str,
                      person_pseudonym: bytes | None, protected_identity: bool, gender: str,
                      age_band: str, income_source: str, consented_parties: list[str],
                      officer_id: str, referred_at: datetime) -> str | None:
    """Insert a new case. Returns None when it was created, else the unique index that refused
    it (this agency's reference, or this person's one open case)."""
    try:
        async with conn.transaction():  # a savepoint: a unique violation leaves the caller's tx usable
            await conn.execute(
                """INSERT INTO referrals (case_ref, referring_party, agency_ref, team_id,
                       municipality, person_pseudonym, protected_identity, gender, age_band,
                       income_source, consented_parties, officer_id, referred_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)""",
                case_ref, referring_party, agency_ref, team_id, municipality, person_pseudonym,
                protected_identity, gender, age_band, income_source, consented_parties,
                officer_id, referred_at)
    except asyncpg.UniqueViolationError as exc:
        return exc.constraint_name or "unique"
    return None


async def accepted_case_for(conn: asyncpg.Connection, party: str, agency_ref: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """SELECT case_ref, referred_at, person_pseudonym, team_id FROM referrals
           WHERE referring_party = $1 AND agency_ref = $2""", party, agency_ref)


async def has_open_case(conn: asyncpg.Connection, pseudonym: bytes) -> bool:
    return bool(await conn.fetchval(
        "SELECT true FROM referrals WHERE person_pseudonym = $1 AND closed_at IS NULL",
        pseudonym))


async def lock_case(conn: asyncpg.Connection, case_ref: str) -> Case | None:
    """The case, locked for the rest of the transaction (one case's writers serialise here)."""
    row = await conn.fetchrow(
        """SELECT case_ref, referring_party, agency_ref, team_id, municipality,
                  protected_identity, referred_at, closed_at
           FROM referrals WHERE case_ref = $1 FOR UPDATE""", case_ref)
    return Case(**dict(row)) if row else None


async def get_case(conn: asyncpg.Connection, case_ref: str) -> Case | None:
    row = await conn.fetchrow(
        """SELECT case_ref, referring_party, agency_ref, team_id, municipality,
                  protected_identity, referred_at, closed_at
           FROM referrals WHERE case_ref = $1""", case_ref)
    return Case(**dict(row)) if row else None


async def store_sealed(conn: asyncpg.Connection, case_ref: str, fields: dict[str, Sealed | None]) -> None:
    """Write the vault row: field -> sealed value (personnummer, question, purpose)."""
    values = []
    for name in ("personnummer", "question", "purpose"):
        sealed = fields.get(name)
        values += [sealed.blob if sealed else None, sealed.key_id if sealed else None]
    await conn.execute(
        """INSERT INTO vault (case_ref, personnummer, personnummer_key, question, question_key,
                              purpose, purpose_key)
           VALUES ($1, $2, $3, $4, $5, $6, $7)""", case_ref, *values)


async def sealed_fields(conn: asyncpg.Connection, case_ref: str) -> tuple[dict[str, Sealed], datetime | None]:
    row = await conn.fetchrow("SELECT * FROM vault WHERE case_ref = $1", case_ref)
    if row is None:
        return {}, None
    fields = {name: Sealed(row[f"{name}_key"], row[name])
              for name in ("personnummer", "question", "purpose") if row[name] is not None}
    return fields, row["erased_at"]


async def add_consent(conn: asyncpg.Connection, *, case_ref: str, party: str, action: str,
                      on_date: date, form_ref: str | None, on_behalf_of_individual: bool,
                      recorded_by: str, recorded_at: datetime) -> None:
    await conn.execute(
        """INSERT INTO consent_history (case_ref, party, action, on_date, form_ref,
                                        on_behalf_of_individual, recorded_by, recorded_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
        case_ref, party, action, on_date, form_ref, on_behalf_of_individual, recorded_by,
        recorded_at)


async def consent_in_force(conn: asyncpg.Connection, case_ref: str, party: str) -> bool:
    action = await conn.fetchval(
        """SELECT action FROM consent_history WHERE case_ref = $1 AND party = $2
           ORDER BY id DESC LIMIT 1""", case_ref, party)
    return action == "given"


async def last_withdrawal(conn: asyncpg.Connection, case_ref: str, party: str) -> date | None:
    return await conn.fetchval(
        """SELECT max(on_date) FROM consent_history
           WHERE case_ref = $1 AND party = $2 AND action = 'withdrawn'""", case_ref, party)


async def consent_history(conn: asyncpg.Connection, case_ref: str) -> list[dict]:
    rows = await conn.fetch(
        """SELECT party, action, on_date, form_ref, on_behalf_of_individual, recorded_by,
                  recorded_at FROM consent_history WHERE case_ref = $1 ORDER BY id""", case_ref)
    return [dict(r) for r in rows]


async def store_rejection(conn: asyncpg.Connection, *, party: str, agency_ref: str | None,
                          channel: str, reasons: list[dict], rejected_at: datetime) -> None:
    await conn.execute(
        """INSERT INTO rejections (party, agency_ref, channel, codes, reasons, rejected_at)
           VALUES ($1, $2, $3, $4, $5::jsonb, $6)""",
        party, agency_ref, channel, [r["code"] for r in reasons], json.dumps(reasons),
        rejected_at)


async def rejections_of(conn: asyncpg.Connection, party: str, limit: int = 100) -> list[dict]:
    rows = await conn.fetch(
        """SELECT agency_ref, channel, reasons, rejected_at FROM rejections WHERE party = $1
           ORDER BY id DESC LIMIT $2""", party, limit)
    return [{**dict(r), "reasons": json.loads(r["reasons"])} for r in rows]


async def log_access(conn: asyncpg.Connection, *, case_ref: str, user_id: str, party: str,
                     role: str, purpose: str, outcome: str, reason: str | None) -> None:
    await conn.execute(
        """INSERT INTO access_log (case_ref, user_id, party, role, purpose, outcome, reason)
           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        case_ref, user_id, party, role, purpose, outcome, reason)


async def access_log(conn: asyncpg.Connection, case_ref: str) -> list[dict]:
    rows = await conn.fetch(
        """SELECT user_id, party, role, purpose, outcome, reason, read_at FROM access_log
           WHERE case_ref = $1 ORDER BY id""", case_ref)
    return [dict(r) for r in rows]


async def close_case(conn: asyncpg.Connection, case_ref: str, reason: str,
                     closed_at: datetime) -> bool:
    status = await conn.execute(
        """UPDATE referrals SET closed_at = $2, exit_reason = $3
           WHERE case_ref = $1 AND closed_at IS NULL""", case_ref, closed_at, reason)
    return status.endswith(" 1")


async def erase_expired(conn: asyncpg.Connection, closed_before: datetime) -> list[str]:
    """Destroy the ciphertexts, and the pseudonym that could be matched to a number by whoever
    holds the key, of cases closed before the given time; returns their case refs."""
    rows = await conn.fetch(
        """UPDATE vault v SET personnummer = NULL, personnummer_key = NULL, question = NULL,
                  question_key = NULL, purpose = NULL, purpose_key = NULL, erased_at = now()
           FROM referrals r
           WHERE r.case_ref = v.case_ref AND r.closed_at < $1 AND v.erased_at IS NULL
           RETURNING v.case_ref""", closed_before)
    erased = [r["case_ref"] for r in rows]
    await conn.execute("UPDATE referrals SET person_pseudonym = NULL WHERE case_ref = ANY($1)",
                       erased)
    return erased


async def register_team(conn: asyncpg.Connection, team_id: str, municipality: str, revision: int,
                        updated_at) -> None:
    """Keep the newest revision of a team's entry (an older one arriving late changes nothing)."""
    await conn.execute(
        """INSERT INTO registered_teams (team_id, municipality, revision, updated_at)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (team_id) DO UPDATE SET municipality = EXCLUDED.municipality,
               revision = EXCLUDED.revision, updated_at = EXCLUDED.updated_at
           WHERE registered_teams.revision < EXCLUDED.revision""",
        team_id, municipality, revision, updated_at)


async def registered_municipality(conn: asyncpg.Connection, team_id: str) -> str | None:
    return await conn.fetchval("SELECT municipality FROM registered_teams WHERE team_id = $1", team_id)
