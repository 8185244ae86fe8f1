"""Benchmark: the follow-up scheduler's tick with few and with many pending follow-ups.

    make bench-followup          (or: .venv/bin/python -m bench.followup_scheduler)

On the configured PostgreSQL (TRISAM_DATABASE_URL), in a database of its own that it drops at
the end. For each number of pending (not yet due) follow-ups it adds a fixed number of due
ones and times ``followups.tick`` (claim with SKIP LOCKED, update, write the reminders to the
outbox, commit), several rounds, and prints the median. The tick should cost the same whether
1,000 or 100,000 follow-ups are pending: it reads only the due rows through the partial index
on ``next_action_at``. Writes bench/followup_scheduler.json.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from services.followup import followups
from services.followup.domain import Rules
from services.followup.uow import FollowUpUnitOfWork
from shared.platform.clock import SettableClock
from shared.platform.config import Settings, with_database
from shared.platform.db import drop_database, prepare_database

MIGRATIONS = Path(__file__).resolve().parents[1] / "services" / "followup" / "migrations"
OUT = Path(__file__).resolve().parent / "followup_scheduler.json"
DUE_PER_TICK = 200
ROUNDS = 7
NOW = datetime(2027, 1, 1, 12, tzinfo=UTC)


async def add_rows(conn, prefix: str, count: int, next_action_at: str) -> None:
    await conn.execute(f"""
        INSERT INTO tracked_cases (case_ref, referring_party, referred_at, team_id, municipality)
        SELECT '{prefix}' || g, 'FK', now(), 'T', 'M' FROM generate_series(1, {count}) g""")
    await conn.execute(f"""
        INSERT INTO followups (followup_id, case_ref, kind, team_id, municipality, referring_party,
                               responsible_party, consultation_held_on, due_on, next_action_at)
        SELECT '{prefix}' || g || '.six_months', '{prefix}' || g, 'six_months', 'T', 'M', 'FK', 'FK',
               DATE '2026-06-01', DATE '2026-12-01', {next_action_at}
        FROM generate_series(1, {count}) g""")


async def measure(pool, clock: SettableClock, pending: int) -> dict:
    async with pool.acquire() as conn:
        await conn.execute("TRUNCATE followup_records, followups, tracked_cases, outbox CASCADE")
        # pending: due between one and three hundred days from now
        await add_rows(conn, "P", pending, "TIMESTAMPTZ '2027-01-01 12:00+00' + make_interval(days => 1 + g % 300)")
        await conn.execute("ANALYZE followups")
    times = []
    for round_ in range(ROUNDS):
        async with pool.acquire() as conn:
            await add_rows(conn, f"D{round_}-", DUE_PER_TICK, "TIMESTAMPTZ '2026-12-31 12:00+00'")
        started = time.perf_counter()
        async with pool.acquire() as conn, conn.transaction():
            uow = FollowUpUnitOfWork(conn, rules=Rules(), clock=clock, agency_users={})
            acted = await followups.tick(uow, DUE_PER_TICK * 2)
        times.append((time.perf_counter() - started) * 1000)
        assert acted == DUE_PER_TICK, acted
    async with pool.acquire() as conn:
        plan = "\n".join(
            r[0]
            for r in await conn.fetch(
                "EXPLAIN (FORMAT TEXT) SELECT * FROM followups WHERE next_action_at <= $1 "
                "ORDER BY next_action_at LIMIT 400 FOR UPDATE SKIP LOCKED",
                NOW,
            )
        )
    return {
        "pending": pending,
        "due_per_tick": DUE_PER_TICK,
        "tick_ms_median": statistics.median(times),
        "tick_ms_all": [round(t, 2) for t in times],
        "plan": plan,
    }


PENDING = (1_000, 100_000)


async def run() -> dict:
    """Measure the tick with few and with many pending; print; return the figures."""
    settings = Settings()
    name = f"bench_{secrets.token_hex(3)}_followup"
    await prepare_database(settings.database_url, name, MIGRATIONS)
    pool = await asyncpg.create_pool(with_database(settings.database_url, name), min_size=1, max_size=2)
    clock = SettableClock(NOW)
    try:
        results = [await measure(pool, clock, pending) for pending in PENDING]
    finally:
        await pool.close()
        admin = await asyncpg.connect(settings.database_url)
        await drop_database(admin, name)
        await admin.close()
    baseline, many = results[0], results[-1]
    ratio = many["tick_ms_median"] / baseline["tick_ms_median"]
    print(f"{'pending':>10} {'due/tick':>9} {'tick median ms':>15}")
    for r in results:
        print(f"{r['pending']:>10} {r['due_per_tick']:>9} {r['tick_ms_median']:>15.1f}")
    print(
        f"ratio {many['pending']:,} / {baseline['pending']:,} pending: {ratio:.2f} (flat means close "
        f"to 1; index: {'yes' if 'followups_next_action' in many['plan'] else 'NO'})"
    )
    return {"measured_at": datetime.now(UTC).isoformat(), "results": results, "ratio": ratio}


async def main() -> None:
    OUT.write_text(json.dumps(await run(), indent=2) + "\n")
    print(f"written to {OUT}")


if __name__ == "__main__":
    asyncio.run(main())
