"""The set-based rebuild (services/metrics/rebuild.py) on the real PostgreSQL and broker:

- it gives exactly the rows that applying the events one by one through the projections gives,
  over randomized histories with corrections, withdrawals, cancellations, closures and events
  out of order (its SQL restates the projections' rules: this is what keeps the two together);
- swapped in under a running service, the metrics API answers the same figures;
- events consumed while it builds are not lost.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import date

import asyncpg
import pytest

from services.metrics import app as metrics_app
from services.metrics import projections, rebuild, store
from shared.contracts import Contract, envelope_for
from shared.platform.db import prepare_database, with_database
from tests.support import broker as amqp
from tests.support.http import client_for, token
from tests.support.metrics_history import history, rebuilt_as_owner

pytestmark = pytest.mark.infra

# the order rows are compared in: every table's key
KEYS = {
    "team_facts": "team_id",
    "case_facts": "case_ref",
    "action_facts": "case_ref, position",
    "meeting_facts": "meeting_id",
    "postponement_facts": "event_id",
    "followup_facts": "followup_id",
    "figure_cells": "day, measure, detail, team_id, municipality, referring_party, gender, age_band, income",
}


async def _database(settings, name: str) -> asyncpg.Pool:
    database = f"{settings.namespace}_{name}"
    await prepare_database(settings.database_url, database, metrics_app.spec(settings).migrations)
    return await asyncpg.create_pool(with_database(settings.database_url, database), min_size=1, max_size=2)


async def _tables(conn: asyncpg.Connection) -> dict[str, list[tuple]]:
    return {t: [tuple(r) for r in await conn.fetch(f"SELECT * FROM {t} ORDER BY {k}")] for t, k in KEYS.items()}


async def _schema(conn: asyncpg.Connection) -> list[tuple]:
    """The projection tables' indexes and constraints, by name and definition."""
    rows = await conn.fetch(
        """SELECT tablename, indexname, indexdef FROM pg_indexes WHERE tablename = ANY($1)
           UNION ALL
           SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
           WHERE conrelid::regclass::text = ANY($1) ORDER BY 1, 2, 3""",
        list(KEYS),
    )
    return [tuple(r) for r in rows]


async def _one_by_one(pool: asyncpg.Pool, events: list[tuple[uuid.UUID, Contract]], batch: int = 50) -> None:
    """Log and apply each event as the handlers do (``handlers._project``), in transactions of
    ``batch`` events under the projections' lock, as the consumer's group commit does."""
    async with pool.acquire() as conn:
        for start in range(0, len(events), batch):
            async with conn.transaction():
                await projections.lock_projections(conn)
                for event_id, event in events[start : start + batch]:
                    envelope = envelope_for(event, producer="test")
                    envelope = envelope.model_copy(update={"event_id": event_id})
                    if await store.EventLog(conn).add(envelope):
                        await projections.apply(conn, event, event_id)
        # what the rebuild adds: a team known only from a consultation (never referred) gets its
        # row, as the rebuild always gave it (the live projections name teams from referrals)
        await store.know_teams_of_cases(conn)


def _differences(expected: dict[str, list[tuple]], actual: dict[str, list[tuple]]) -> dict[str, list]:
    result = {}
    for table in KEYS:
        if expected[table] != actual[table]:
            missing = sorted(set(expected[table]) - set(actual[table]))[:3]
            extra = sorted(set(actual[table]) - set(expected[table]))[:3]
            result[table] = [("expected", missing), ("rebuilt", extra)]
    return result


@pytest.mark.parametrize(
    "seed, cases, teams",
    [(1, 150, 6), (2, 150, 2), (3, 200, 9), (4, 120, 1)],
)
async def test_the_set_based_rebuild_gives_the_rows_of_the_events_applied_one_by_one(settings, seed, cases, teams):
    events = [(uuid.uuid4(), e) for e in history(seed, cases, teams=teams)]
    pool = await _database(settings, "metrics")
    try:
        await _one_by_one(pool, events)
        async with pool.acquire() as conn:
            expected, schema = await _tables(conn), await _schema(conn)
            # an event whose contract version is gone is left out, not fatal
            await conn.execute(
                """INSERT INTO event_log (event_id, event_type, version, occurred_at, payload)
                   VALUES (gen_random_uuid(), 'CaseReferred', 99, now(), '{}')"""
            )
            await conn.execute("UPDATE figure_cells SET n = n + 1")  # the rebuild does not keep them
        rebuilt = await rebuild.rebuild(pool)
        async with pool.acquire() as conn:
            actual, schema_after = await _tables(conn), await _schema(conn)
            left = await conn.fetchval("SELECT count(*) FROM pg_class WHERE relname LIKE '%_rebuild'")
    finally:
        await pool.close()
    assert _differences(expected, actual) == {}
    projected = sum(1 for _, e in events if type(e) in projections.PROJECTIONS)
    assert rebuilt.events == projected and rebuilt.applied_after == 0
    assert schema_after == schema and len(schema) > 2 * len(KEYS)  # the live tables' indexes, as migrated
    assert left == 0  # nothing of the shadow tables is left
    assert all(expected[t] for t in KEYS), {t: len(rows) for t, rows in expected.items()}  # every table has rows


async def test_a_cell_that_comes_back_to_zero_from_either_side_is_removed_as_the_rebuild_leaves_it(settings):
    """A case's facts can arrive out of step (its closure before the meeting that took it off the
    queue): a cell then sits below zero for a while and comes back to zero when raised. The live
    cells must not keep it, or they differ from what a rebuild gives (which writes no zeros)."""
    dims = ("T-1", "Gävle", "AF", "WOMAN", "25-34", "SJUKPENNING")
    low, high, kept = (
        ("queue", "", date(2026, 12, 17), *dims),
        ("queue", "", date(2026, 12, 18), *dims),
        ("referred", "", date(2026, 12, 17), *dims),
    )
    pool = await _database(settings, "cells")
    try:
        async with pool.acquire() as conn:
            cells = store.Cells(conn)
            await cells.add({low: -1, high: 1, kept: 1})
            await cells.add({low: 1, high: -1})  # back to zero: one raised, one lowered
            left = await cells.all()
    finally:
        await pool.close()
    assert left == {kept: 1}


async def _publish(settings, events: list[Contract]) -> None:
    messages = []
    for event in events:
        envelope = envelope_for(event, producer="test")
        messages.append((event.name, envelope.model_dump(mode="json")))
    await amqp.publish_many(settings.amqp_url, f"{settings.namespace}.events", messages)


async def _logged(runtime, n: int) -> bool:
    async with runtime.pool.acquire() as conn:
        return await conn.fetchval("SELECT count(*) FROM event_log") >= n


async def test_swapped_in_under_a_running_service_the_api_answers_the_same_figures(settings, runtimes):
    patient = settings.model_copy(update={"metrics_edition_grace_days": 100_000})
    runtime = await runtimes(metrics_app.spec(patient), patient)
    events = history(5, 150, teams=4)
    await _publish(patient, events)
    await amqp.eventually(lambda: _logged(runtime, len(events)), timeout=90, what="every event logged")
    board = token(patient, party=None, role="board", user="board-chair")
    questions = [{"period": p} for p in ("2025Q1", "2025Q2", "2025Q3", "2025", "2026")]
    questions += [{"period": "2025", "team_id": "T01"}, {"from": "2025-02-10", "to": "2025-09-30", "outcomes": "due"}]

    async def answers() -> list:
        result = []
        async with client_for(runtime) as api:
            for params in questions:
                answer = await api.get("/api/v1/figures", params=params, headers=board)
                assert answer.status_code == 200, answer.text
                result.append(answer.json())
        return result

    before = await answers()
    async with runtime.pool.acquire() as conn:
        cells_before = await _tables(conn)
    rebuilt = await rebuilt_as_owner(settings)
    after = await answers()
    async with runtime.pool.acquire() as conn:
        cells_after = await _tables(conn)
    assert rebuilt.events > 0
    assert _differences(cells_before, cells_after) == {}
    assert [_figures(a) for a in after] == [_figures(b) for b in before]
    assert any(_figures(b) for b in before)
    # the service goes on consuming: an event after the swap is applied as ever
    more = history(6, 10, teams=4)
    await _publish(patient, more)
    await amqp.eventually(lambda: _logged(runtime, len(events) + len(more)), timeout=60, what="the new events")


def _figures(answer: dict) -> dict:
    """An answer without when it was made."""
    return {k: v for k, v in answer.items() if k not in ("generated_at", "read_at", "as_of")}


async def test_events_consumed_while_it_rebuilds_are_not_lost(settings, runtimes):
    runtime = await runtimes(metrics_app.spec(settings), settings)
    events = history(7, 400, teams=5)
    first, rest = events[: len(events) // 3], events[len(events) // 3 :]
    await _publish(settings, first)
    await amqp.eventually(lambda: _logged(runtime, len(first)), timeout=60, what="the first third logged")

    async def publish_the_rest() -> None:
        for start in range(0, len(rest), 100):
            await _publish(settings, rest[start : start + 100])
            await asyncio.sleep(0.05)

    publishing = asyncio.create_task(publish_the_rest())
    rebuilds = []
    while not publishing.done() or not await _logged(runtime, len(events)):
        rebuilds.append(await rebuilt_as_owner(settings))
    await publishing
    await amqp.eventually(lambda: _logged(runtime, len(events)), timeout=60, what="every event logged")
    await asyncio.sleep(0.5)  # the last delivery's transaction has committed (it logs and applies in one)
    async with runtime.pool.acquire() as conn:
        live = await _tables(conn)
        logged = await store.EventLog(conn).after(0, len(events) + 10, [e.name for e in projections.PROJECTIONS])
    assert len(rebuilds) >= 2 and sum(r.applied_after for r in rebuilds) > 0, rebuilds
    reference = await _database(settings, "reference")
    try:
        await _one_by_one(reference, [(e.event_id, e.event) for e in logged if e.event is not None])
        async with reference.acquire() as conn:
            expected = await _tables(conn)
    finally:
        await reference.close()
    assert _differences(expected, live) == {}
    assert len(live["case_facts"]) >= 390
