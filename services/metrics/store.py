"""Metrics storage (asyncpg)."""

from __future__ import annotations

import json

import asyncpg


async def count_referral(conn: asyncpg.Connection, party: str) -> None:
    await conn.execute(
        """INSERT INTO referrals_by_party (party, count) VALUES ($1, 1)
           ON CONFLICT (party) DO UPDATE SET count = referrals_by_party.count + 1""",
        party)


async def referral_counts(conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch("SELECT party, count FROM referrals_by_party")
    return {r["party"]: r["count"] for r in rows}


async def log_event(conn: asyncpg.Connection, envelope) -> None:
    """Keep the event as received (the inbox already made it unique)."""
    await conn.execute(
        """INSERT INTO event_log (event_id, event_type, version, occurred_at, payload)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING""",
        envelope.event_id, envelope.event_type, envelope.version, envelope.occurred_at,
        json.dumps(envelope.payload))
