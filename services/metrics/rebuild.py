"""Rebuilding the projections from the event log, set-based, into shadow tables swapped in.

1. The position: the last event of the log, read under the projections' lock (so every event
   up to it is committed: live deliveries log and apply under that lock).
2. The shadow tables (``<table>_rebuild``, like the live ones, without their indexes) get the
   facts of every event up to it, one ``INSERT … SELECT`` per table over the log (``FACTS``
   below: the set-based form of the projections of ``projections``; the test of this module
   checks that both give the same rows), then every case's and meeting's cells, worked out by
   the domain's own rules (``domain.case_cells``, ``meeting_cells``) in Python and copied in;
   then the live tables' indexes are built on them, once each. Live consumption goes on
   meanwhile.
3. The swap, in the same transaction, with the projections' lock held: the live tables are
   dropped and the shadow ones renamed to their names (and their indexes to the live indexes'
   names), then the events logged after the position (those consumed while it built) are
   applied one by one as live (``projections.apply``). It commits at once: readers see the old
   tables until then, never a half-built one, and no event is lost. A failure rolls it all
   back (the shadow tables too).

Events of a contract version that is no longer registered are left out (the rebuild goes on
without them). The payloads are read as logged, in SQL: the consumer validated them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import asyncpg

from shared.contracts import (
    CaseClosed,
    CaseNotConsulted,
    CasePostponed,
    CaseReferred,
    ConsultationHeld,
    Contract,
    FollowUpCancelled,
    FollowUpCompleted,
    FollowUpScheduled,
    MeetingCancelled,
    MeetingScheduled,
    PreMeetingHeld,
    TeamUpdated,
)
from shared.platform import db

from . import domain, projections, store

SHADOW = "_rebuild"


def _log(*contracts: type[Contract]) -> str:
    """The logged events of these contracts up to the position ($1): seq, type (t), payload (p)."""
    kinds = " OR ".join(f"(event_type = '{c.name}' AND version = {c.version})" for c in contracts)
    return f"SELECT seq, event_id, event_type AS t, payload AS p FROM event_log WHERE seq <= $1 AND ({kinds})"


def _stockholm_date(value: str) -> str:
    """``clock.stockholm_date`` of a logged timestamp."""
    return f"(({value})::timestamptz AT TIME ZONE 'Europe/Stockholm')::date"


_REOPENED = ", ".join(f"'{reason}'" for reason in projections.REOPENED_BY_SCHEDULING)

# Each fact table from the log, in the order received (seq). Each says, per column, which event
# last set it in ``projections`` (an upsert sets some columns, and all of them when it creates
# the row: then the first event of the fact counts).
FACTS = {
    # TeamUpdated: the highest revision (the first of equals); else the team of its first case
    "team_facts": f"""
        INSERT INTO team_facts{SHADOW} (team_id, municipality, team_name, revision)
        SELECT DISTINCT ON (team_id) team_id, municipality, team_name, revision FROM (
            SELECT seq, p->>'team_id' AS team_id, p->>'municipality' AS municipality,
                   p->>'team_name' AS team_name, (p->>'revision')::int AS revision
            FROM ({_log(TeamUpdated)}) e
            UNION ALL
            SELECT seq, p->>'team_id', p->>'municipality', p->>'team_id', 0 FROM ({_log(CaseReferred)}) e
        ) t ORDER BY team_id, revision DESC, seq""",
    "case_facts": f"""
        INSERT INTO case_facts{SHADOW} (case_ref, team_id, municipality, referring_party, gender, age_band,
            income_at_referral, violence_question_asked, referred_at, referred_on, consulted_on, meeting_id,
            individual_attended, not_consulted_reason, not_consulted_on, closed_on, exit_reason)
        SELECT case_ref,
               -- the latest referral's team, municipality and party; else the first event's
               CASE WHEN ref IS NOT NULL THEN ref->>'team_id' ELSE first->>'team_id' END,
               CASE WHEN ref IS NOT NULL THEN ref->>'municipality' ELSE first->>'municipality' END,
               CASE WHEN ref IS NOT NULL THEN ref->>'referring_party' ELSE first->>'referring_party' END,
               ref->>'gender', ref->>'age_band', ref->>'income_source',
               (ref->>'violence_question_asked')::boolean, (ref->>'referred_at')::timestamptz,
               {_stockholm_date("ref->>'referred_at'")},
               (held->>'held_on')::date, meeting->>'meeting_id', (held->>'individual_attended')::boolean,
               not_consulted->>'reason', (not_consulted->>'meeting_date')::date,
               {_stockholm_date("closed->>'closed_at'")}, closed->>'reason'
        FROM (SELECT p->>'case_ref' AS case_ref,
                     (array_agg(p ORDER BY seq))[1] AS first,
                     (array_agg(p ORDER BY seq DESC) FILTER (WHERE t = 'CaseReferred'))[1] AS ref,
                     (array_agg(p ORDER BY seq DESC) FILTER (WHERE t = 'ConsultationHeld'))[1] AS held,
                     (array_agg(p ORDER BY seq DESC) FILTER (WHERE t = 'CaseNotConsulted'))[1] AS not_consulted,
                     (array_agg(p ORDER BY seq DESC)
                          FILTER (WHERE t IN ('ConsultationHeld', 'CaseNotConsulted')))[1] AS meeting,
                     (array_agg(p ORDER BY seq DESC) FILTER (WHERE t = 'CaseClosed'))[1] AS closed
              FROM ({_log(CaseReferred, ConsultationHeld, CaseNotConsulted, CaseClosed)}) e
              GROUP BY 1) c""",
    # each position of a plan from the first consultation that had it
    "action_facts": f"""
        INSERT INTO action_facts{SHADOW} (case_ref, position, type, responsible_party)
        SELECT DISTINCT ON (p->>'case_ref', a.position) p->>'case_ref', a.position - 1,
               a.action->>'type', a.action->>'responsible_party'
        FROM ({_log(ConsultationHeld)}) e, jsonb_array_elements(p->'actions') WITH ORDINALITY a(action, position)
        ORDER BY p->>'case_ref', a.position, seq""",
    # team, municipality and date from the first event; the latest cancellation, unless a
    # scheduling after it put the meeting on again; the latest pre-meeting
    "meeting_facts": f"""
        INSERT INTO meeting_facts{SHADOW} (meeting_id, team_id, municipality, meeting_date, cancelled_reason,
                                           pre_meeting_held_on)
        SELECT meeting_id, first->>'team_id', first->>'municipality', (first->>'meeting_date')::date,
               CASE WHEN cancelled->>'reason' IN ({_REOPENED}) AND scheduled_seq > cancelled_seq THEN NULL
                    ELSE cancelled->>'reason' END,
               (pre->>'held_on')::date
        FROM (SELECT p->>'meeting_id' AS meeting_id,
                     (array_agg(p ORDER BY seq))[1] AS first,
                     (array_agg(p ORDER BY seq DESC) FILTER (WHERE t = 'MeetingCancelled'))[1] AS cancelled,
                     max(seq) FILTER (WHERE t = 'MeetingCancelled') AS cancelled_seq,
                     max(seq) FILTER (WHERE t = 'MeetingScheduled') AS scheduled_seq,
                     (array_agg(p ORDER BY seq DESC) FILTER (WHERE t = 'PreMeetingHeld'))[1] AS pre
              FROM ({_log(MeetingScheduled, MeetingCancelled, PreMeetingHeld)}) e
              GROUP BY 1) m""",
    "postponement_facts": f"""
        INSERT INTO postponement_facts{SHADOW} (event_id, case_ref, team_id, from_meeting_date, reason)
        SELECT event_id, p->>'case_ref', p->>'team_id', (p->>'from_meeting_date')::date, p->>'reason'
        FROM ({_log(CasePostponed)}) e""",
    # case and kind from the first event; team, municipality, party and due date from the latest
    # scheduling, else the first event (a cancellation first leaves them blank); the record of
    # the highest revision (the first of equals)
    "followup_facts": f"""
        INSERT INTO followup_facts{SHADOW} (followup_id, case_ref, kind, team_id, municipality, referring_party,
            due_on, cancelled, revision, recorded_on, reached, income_source, readiness, plan_status)
        SELECT followup_id, first->>'case_ref', first->>'kind',
               coalesce(scheduled->>'team_id', first->>'team_id', ''),
               coalesce(scheduled->>'municipality', first->>'municipality', ''),
               coalesce(scheduled->>'referring_party', first->>'referring_party', ''),
               coalesce(scheduled->>'due_on', first->>'due_on', '1970-01-01')::date,
               cancelled, coalesce((record->>'revision')::int, 0), (record->>'recorded_on')::date,
               (record->>'reached')::boolean, record->>'income_source', record->>'readiness',
               record->>'plan_status'
        FROM (SELECT p->>'followup_id' AS followup_id,
                     (array_agg(p ORDER BY seq))[1] AS first,
                     (array_agg(p ORDER BY seq DESC) FILTER (WHERE t = 'FollowUpScheduled'))[1] AS scheduled,
                     bool_or(t = 'FollowUpCancelled') AS cancelled,
                     (array_agg(p ORDER BY (p->>'revision')::int DESC, seq)
                          FILTER (WHERE t = 'FollowUpCompleted'))[1] AS record
              FROM ({_log(FollowUpScheduled, FollowUpCompleted, FollowUpCancelled)}) e
              GROUP BY 1) f""",
}
assert set(FACTS) | {"figure_cells"} == set(projections.PROJECTION_TABLES)


@dataclass(frozen=True)
class Rebuilt:
    events: int  # events of a projected contract the projections were rebuilt from
    upto: int  # the position (seq) the set-based part went up to
    applied_after: int  # of them, logged after it (while it built) and applied one by one


async def rebuild(pool: asyncpg.Pool, *, work_mem: str = "256MB") -> Rebuilt:
    """The projections rebuilt from the whole event log (see the module's doc)."""
    async with pool.acquire() as conn:
        async with conn.transaction():
            await projections.lock_projections(conn)
            upto = await conn.fetchval("SELECT coalesce(max(seq), 0) FROM event_log")
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('rebuild', 7246))")  # one at a time
            await conn.execute(f"SET LOCAL work_mem = '{work_mem}'")
            await conn.execute(f"SET LOCAL maintenance_work_mem = '{work_mem}'")  # each index sorted in memory
            indexes = {}
            for table in projections.PROJECTION_TABLES:
                await conn.execute(f"CREATE TABLE {table}{SHADOW} (LIKE {table} INCLUDING ALL EXCLUDING INDEXES)")
            for table, sql in FACTS.items():
                await conn.execute(sql, upto)
                indexes[table] = await _index_like(conn, table)
            await store.know_teams_of_cases(conn, SHADOW)
            await store.Cells(conn).write(await cells_of_facts(conn, SHADOW), f"figure_cells{SHADOW}")
            indexes["figure_cells"] = await _index_like(conn, "figure_cells")
            await conn.execute(f"ANALYZE figure_cells{SHADOW}")  # what the figures are summed from
            events = await conn.fetchval(f"SELECT count(*) FROM ({_log(*projections.PROJECTIONS)}) e", upto)

            await projections.lock_projections(conn)  # the swap: live deliveries wait from here
            for table in projections.PROJECTION_TABLES:
                await db.copy_privileges(conn, table, f"{table}{SHADOW}")  # (the service's role)
                await conn.execute(f"DROP TABLE {table}")
                await conn.execute(f"ALTER TABLE {table}{SHADOW} RENAME TO {table}")
                for index in indexes[table]:  # (an index of a constraint renames the constraint too)
                    await conn.execute(f"ALTER INDEX {index}{SHADOW} RENAME TO {index}")
            applied_after = await _apply_after(conn, upto, [c.name for c in projections.PROJECTIONS])
            await conn.execute("UPDATE projection_state SET rebuild_needed = false")
    return Rebuilt(events=events + applied_after, upto=upto, applied_after=applied_after)


async def _index_like(conn: asyncpg.Connection, table: str) -> list[str]:
    """Give the filled shadow of ``table`` the live table's indexes and constraints of indexes
    (built once, from sorted rows: faster than keeping them up to date row by row), named with
    the shadow's suffix. Returns the live names."""
    rows = await conn.fetch(
        """SELECT i.relname AS name, pg_get_indexdef(i.oid) AS definition,
                  c.conname AS constraint_name, pg_get_constraintdef(c.oid) AS constraint_definition
           FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
           LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid AND c.conrelid = x.indrelid
           WHERE x.indrelid = $1::regclass ORDER BY i.relname""",
        table,
    )
    for r in rows:
        if r["constraint_name"]:
            await conn.execute(
                f"ALTER TABLE {table}{SHADOW} ADD CONSTRAINT {r['name']}{SHADOW} {r['constraint_definition']}"
            )
        else:
            definition = r["definition"].replace(f" {r['name']} ON ", f" {r['name']}{SHADOW} ON ", 1)
            definition = definition.replace(f" ON public.{table} ", f" ON public.{table}{SHADOW} ", 1)
            assert f"{table}{SHADOW} " in definition, definition
            await conn.execute(definition)
    return [r["name"] for r in rows]


async def _apply_after(conn: asyncpg.Connection, seq: int, types: list[str], batch: int = 2000) -> int:
    """Apply the events logged after ``seq`` one by one, as live; returns how many."""
    applied, log = 0, store.EventLog(conn)
    while logged := await log.after(seq, batch, types):
        for entry in logged:
            if entry.event is not None:
                await projections.apply(conn, entry.event, entry.event_id)
                applied += 1
        seq = logged[-1].seq
    return applied


async def cells_of_facts(conn: asyncpg.Connection, suffix: str = "") -> Counter[domain.Cell]:
    """Every case's and meeting's cells, from the fact tables named with ``suffix``, on top of
    the counts of the cases deleted after retention (``projections.forget_closed_cases``)."""
    total = await store.Cells(conn, "retired_cells").all()
    async with conn.transaction():  # (the cases come through a cursor)
        async for case in store.all_cases(conn, suffix):
            total.update(domain.case_cells(case))
        for meeting in await store.all_meetings(conn, suffix):
            total.update(domain.meeting_cells(meeting))
    return total


async def rebuild_cells(conn: asyncpg.Connection) -> None:
    """The cells worked out afresh from the live facts (in the caller's transaction)."""
    await conn.execute("TRUNCATE figure_cells")
    await store.know_teams_of_cases(conn)
    await store.Cells(conn).write(await cells_of_facts(conn))


async def catch_up(pool: asyncpg.Pool, owner_url: str) -> int:
    """At start-up: if a migration asked for it (the cells were introduced after events were
    logged), rebuild, as the tables' owner (``owner_url``: the service's own role may not drop
    or create tables). Returns the events rebuilt from (0: nothing to do)."""
    async with pool.acquire() as conn:
        needed = await conn.fetchval("SELECT rebuild_needed FROM projection_state")
    if not needed:
        return 0
    async with asyncpg.create_pool(owner_url, min_size=1, max_size=1) as owner:
        return (await rebuild(owner)).events
