"""Referral storage (asyncpg)."""

from __future__ import annotations

from datetime import datetime

import asyncpg


async def insert_referral(conn: asyncpg.Connection, *, case_ref: str, referring_party: str,
                          agency_ref: str, team_id: str, person_pseudonym: bytes | None,
                          gender: str, age_band: str, income_source: str,
                          consented_parties: list[str], referred_at: datetime) -> bool:
    """Insert a new case; False if this agency already submitted this reference."""
    inserted = await conn.fetchval(
        """INSERT INTO referrals (case_ref, referring_party, agency_ref, team_id,
                                  person_pseudonym, gender, age_band, income_source,
                                  consented_parties, referred_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
           ON CONFLICT (referring_party, agency_ref) DO NOTHING
           RETURNING true""",
        case_ref, referring_party, agency_ref, team_id, person_pseudonym, gender, age_band,
        income_source, consented_parties, referred_at)
    return bool(inserted)
