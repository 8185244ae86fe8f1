"""Follow-up storage (asyncpg)."""

from __future__ import annotations

import asyncpg

from .domain import TrackedCase


async def track(conn: asyncpg.Connection, case: TrackedCase) -> None:
    await conn.execute(
        """INSERT INTO tracked_cases (case_ref, referring_party, income_source_at_referral,
                                      referred_at)
           VALUES ($1, $2, $3, $4) ON CONFLICT (case_ref) DO NOTHING""",
        case.case_ref, case.referring_party, case.income_source_at_referral, case.referred_at)
