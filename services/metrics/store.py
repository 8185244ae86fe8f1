"""Metrics storage (asyncpg): the event log, the published figures and the snapshot state."""

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


async def teams(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT team_id, team_name, municipality FROM team_facts "
                            "ORDER BY municipality, team_id")


async def lock_snapshot_state(conn: asyncpg.Connection):
    return await conn.fetchrow("SELECT * FROM snapshot_state WHERE id = 1 FOR UPDATE SKIP LOCKED")


async def last_seq(conn: asyncpg.Connection) -> int:
    return await conn.fetchval("SELECT coalesce(max(seq), 0) FROM event_log")


async def snapshot_published(conn: asyncpg.Connection, seq: int, at) -> None:
    await conn.execute("UPDATE snapshot_state SET seq = $1, published_at = $2 WHERE id = 1", seq, at)


async def save_publication(conn: asyncpg.Connection, year: int, published, at, source: str) -> None:
    """Replace the year's published figures (one row per period and scope), and keep every
    count with its mark for the next publication (``publication.Publication``), and the digest
    of what it was worked out from (``publication.source_digest``)."""
    await conn.execute("DELETE FROM published_figures WHERE year = $1", year)
    await conn.copy_records_to_table(
        "published_figures", columns=["period", "scope", "year", "figures", "published_at"],
        records=[(period, scope, year, json.dumps(figures), at)
                 for (period, scope), figures in published.figures.items()])
    counts = {"\t".join(key): [value, mark] for key, (value, mark) in published.counts.items()}
    await conn.execute(
        """INSERT INTO published_years (year, published_at, counts, source) VALUES ($1, $2, $3, $4)
           ON CONFLICT (year) DO UPDATE SET published_at = EXCLUDED.published_at, counts = EXCLUDED.counts,
                                            source = EXCLUDED.source""",
        year, at, json.dumps(counts), source)


async def published_source(conn: asyncpg.Connection, year: int) -> str | None:
    return await conn.fetchval("SELECT source FROM published_years WHERE year = $1", year)


async def published_counts(conn: asyncpg.Connection, year: int) -> dict[tuple, tuple] | None:
    """Every count of the year as last published, with its mark (None: never published)."""
    value = await conn.fetchval("SELECT counts FROM published_years WHERE year = $1", year)
    if value is None:
        return None
    counts = json.loads(value) if isinstance(value, str) else value
    return {tuple(key.split("\t")): (v, mark) for key, (v, mark) in counts.items()}


async def published_figures(conn: asyncpg.Connection, period: str, scope: str) -> dict | None:
    value = await conn.fetchval("SELECT figures FROM published_figures WHERE period = $1 AND scope = $2",
                                period, scope)
    return json.loads(value) if isinstance(value, str) else value


async def published_years(conn: asyncpg.Connection) -> set[int]:
    return {r["year"] for r in await conn.fetch("SELECT year FROM published_years")}
