"""Metrics storage (asyncpg): the event log and reads of the projections."""

from __future__ import annotations

import json

import asyncpg


async def log_event(conn: asyncpg.Connection, envelope) -> bool:
    """Keep the event as received (the inbox already made it unique). False if it was there."""
    status = await conn.execute(
        """INSERT INTO event_log (event_id, event_type, version, occurred_at, payload)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING""",
        envelope.event_id, envelope.event_type, envelope.version, envelope.occurred_at,
        json.dumps(envelope.payload))
    return status != "INSERT 0 0"


async def referral_counts(conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch("""SELECT referring_party, count(*) AS n FROM case_facts
                               WHERE referred_on IS NOT NULL GROUP BY 1""")
    return {r["referring_party"]: r["n"] for r in rows}


async def teams(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT team_id, team_name, municipality FROM team_facts "
                            "ORDER BY municipality, team_id")


async def lock_snapshot_state(conn: asyncpg.Connection):
    return await conn.fetchrow("SELECT * FROM snapshot_state WHERE id = 1 FOR UPDATE SKIP LOCKED")


async def last_seq(conn: asyncpg.Connection) -> int:
    return await conn.fetchval("SELECT coalesce(max(seq), 0) FROM event_log")


async def snapshot_published(conn: asyncpg.Connection, seq: int, at) -> None:
    await conn.execute("UPDATE snapshot_state SET seq = $1, published_at = $2 WHERE id = 1", seq, at)
