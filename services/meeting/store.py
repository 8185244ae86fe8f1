"""Meeting storage (asyncpg)."""

from __future__ import annotations

import asyncpg

from .domain import QueuedCase


async def enqueue(conn: asyncpg.Connection, case: QueuedCase) -> None:
    await conn.execute(
        """INSERT INTO case_queue (case_ref, team_id, referring_party, consented_parties,
                                   queued_since)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT (case_ref) DO NOTHING""",
        case.case_ref, case.team_id, case.referring_party, list(case.consented_parties),
        case.queued_since)


async def queue_length(conn: asyncpg.Connection, team_id: str) -> int:
    return await conn.fetchval("SELECT count(*) FROM case_queue WHERE team_id = $1", team_id)
