"""Metrics storage (asyncpg)."""

from __future__ import annotations

import asyncpg


async def count_referral(conn: asyncpg.Connection, party: str) -> None:
    await conn.execute(
        """INSERT INTO referrals_by_party (party, count) VALUES ($1, 1)
           ON CONFLICT (party) DO UPDATE SET count = referrals_by_party.count + 1""",
        party)


async def referral_counts(conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch("SELECT party, count FROM referrals_by_party")
    return {r["party"]: r["count"] for r in rows}
