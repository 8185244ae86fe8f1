"""Projections: the board's facts, built from the domain events, and the cells they count for.

``apply`` updates the fact tables from one event (its type and payload as on the wire), and
the cells (``domain.case_cells``, ``meeting_cells``) of the cases and meetings it touched, by
the difference between their cells before and after. It is used both live (the event
handlers) and by ``rebuild``, which empties the tables and replays the event log in the order
received, so both give the same tables. Every update is keyed by the fact's own id and may
run twice: a duplicate changes nothing; a correction of a follow-up counts only if its
revision is higher than the one held.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime
from typing import Any

import asyncpg

from shared.platform.clock import stockholm_date

from . import domain, store

PROJECTION_TABLES = ("team_facts", "case_facts", "action_facts", "meeting_facts",
                     "postponement_facts", "followup_facts", "figure_cells")


def _d(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def touched(event_type: str, payload: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The cases and the meetings whose cells an event can change."""
    case_ref, meeting_id = payload.get("case_ref"), payload.get("meeting_id")
    if event_type in ("ConsultationHeld", "CaseNotConsulted"):
        return [case_ref], [meeting_id] if meeting_id else []
    if event_type in ("MeetingScheduled", "MeetingCancelled", "PreMeetingHeld"):
        return [], [meeting_id]
    if case_ref and event_type != "TeamUpdated":
        return [case_ref], []
    return [], []


async def apply(conn: asyncpg.Connection, event_type: str, payload: dict[str, Any],
                event_id, *, cells: bool = True) -> None:
    handler = _APPLY.get(event_type)
    if handler is None:
        return
    case_refs, meeting_ids = touched(event_type, payload) if cells else ([], [])
    # the same case's (or meeting's) events one after another, also across instances: each
    # works out the difference from what the one before it left
    await store.lock_keys(conn, [f"case:{c}" for c in case_refs] + [f"meeting:{m}" for m in meeting_ids])
    before = await _cells(conn, case_refs, meeting_ids)
    await handler(conn, payload, event_id)
    after = await _cells(conn, case_refs, meeting_ids)
    await store.add_cells(conn, domain.difference(before, after))


async def _cells(conn: asyncpg.Connection, case_refs: list[str], meeting_ids: list[str]) -> Counter:
    total: Counter = Counter()
    if case_refs:
        for case in await store.cases(conn, case_refs):
            total.update(domain.case_cells(case))
    if meeting_ids:
        for meeting in await store.meetings(conn, meeting_ids):
            total.update(domain.meeting_cells(meeting))
    return total


async def _team_updated(conn, p, _id) -> None:
    await conn.execute(
        """INSERT INTO team_facts (team_id, municipality, team_name, revision) VALUES ($1, $2, $3, $4)
           ON CONFLICT (team_id) DO UPDATE SET municipality = EXCLUDED.municipality,
               team_name = EXCLUDED.team_name, revision = EXCLUDED.revision
           WHERE team_facts.revision < EXCLUDED.revision""",
        p["team_id"], p["municipality"], p["team_name"], p["revision"])


async def _case_referred(conn, p, _id) -> None:
    referred_at = _ts(p["referred_at"])
    await conn.execute(  # a team first known from its case
        """INSERT INTO team_facts (team_id, municipality, team_name, revision) VALUES ($1, $2, $1, 0)
           ON CONFLICT (team_id) DO NOTHING""", p["team_id"], p["municipality"])
    await conn.execute(
        """INSERT INTO case_facts (case_ref, team_id, municipality, referring_party, gender, age_band,
                                   income_at_referral, violence_question_asked, referred_at, referred_on)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
           ON CONFLICT (case_ref) DO UPDATE SET team_id = EXCLUDED.team_id,
               municipality = EXCLUDED.municipality, referring_party = EXCLUDED.referring_party,
               gender = EXCLUDED.gender, age_band = EXCLUDED.age_band,
               income_at_referral = EXCLUDED.income_at_referral,
               violence_question_asked = EXCLUDED.violence_question_asked,
               referred_at = EXCLUDED.referred_at, referred_on = EXCLUDED.referred_on""",
        p["case_ref"], p["team_id"], p["municipality"], p["referring_party"], p["gender"],
        p["age_band"], p["income_source"], p["violence_question_asked"], referred_at,
        stockholm_date(referred_at))


async def _consultation_held(conn, p, _id) -> None:
    await conn.execute(
        """INSERT INTO case_facts (case_ref, team_id, municipality, referring_party, consulted_on,
                                   meeting_id, individual_attended)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (case_ref) DO UPDATE SET consulted_on = EXCLUDED.consulted_on,
               meeting_id = EXCLUDED.meeting_id, individual_attended = EXCLUDED.individual_attended""",
        p["case_ref"], p["team_id"], p["municipality"], p["referring_party"], _d(p["held_on"]),
        p["meeting_id"], p["individual_attended"])
    for position, action in enumerate(p["actions"]):
        await conn.execute(
            """INSERT INTO action_facts (case_ref, position, type, responsible_party)
               VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING""",
            p["case_ref"], position, action["type"], action["responsible_party"])


async def _not_consulted(conn, p, _id) -> None:
    await conn.execute(
        """INSERT INTO case_facts (case_ref, team_id, municipality, referring_party,
                                   not_consulted_reason, not_consulted_on, meeting_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (case_ref) DO UPDATE SET not_consulted_reason = EXCLUDED.not_consulted_reason,
               not_consulted_on = EXCLUDED.not_consulted_on, meeting_id = EXCLUDED.meeting_id""",
        p["case_ref"], p["team_id"], p["municipality"], p["referring_party"], p["reason"],
        _d(p["meeting_date"]), p["meeting_id"])


async def _case_closed(conn, p, _id) -> None:
    await conn.execute(
        """INSERT INTO case_facts (case_ref, closed_on, exit_reason) VALUES ($1, $2, $3)
           ON CONFLICT (case_ref) DO UPDATE SET closed_on = EXCLUDED.closed_on,
               exit_reason = EXCLUDED.exit_reason""",
        p["case_ref"], stockholm_date(_ts(p["closed_at"])), p["reason"])


async def _meeting_scheduled(conn, p, _id) -> None:
    await conn.execute(
        """INSERT INTO meeting_facts (meeting_id, team_id, municipality, meeting_date)
           VALUES ($1, $2, $3, $4) ON CONFLICT (meeting_id) DO UPDATE
           SET cancelled_reason = CASE WHEN meeting_facts.cancelled_reason IN ('holiday', 'rescheduled')
                                       THEN NULL ELSE meeting_facts.cancelled_reason END""",
        p["meeting_id"], p["team_id"], p["municipality"], _d(p["meeting_date"]))


async def _meeting_cancelled(conn, p, _id) -> None:
    await conn.execute(
        """INSERT INTO meeting_facts (meeting_id, team_id, municipality, meeting_date, cancelled_reason)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT (meeting_id) DO UPDATE
           SET cancelled_reason = EXCLUDED.cancelled_reason""",
        p["meeting_id"], p["team_id"], p["municipality"], _d(p["meeting_date"]), p["reason"])


async def _pre_meeting_held(conn, p, _id) -> None:
    await conn.execute(
        """INSERT INTO meeting_facts (meeting_id, team_id, municipality, meeting_date, pre_meeting_held_on)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT (meeting_id) DO UPDATE
           SET pre_meeting_held_on = EXCLUDED.pre_meeting_held_on""",
        p["meeting_id"], p["team_id"], p["municipality"], _d(p["meeting_date"]), _d(p["held_on"]))


async def _case_postponed(conn, p, event_id) -> None:
    await conn.execute(
        """INSERT INTO postponement_facts (event_id, case_ref, team_id, from_meeting_date, reason)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING""",
        event_id, p["case_ref"], p["team_id"], _d(p["from_meeting_date"]), p["reason"])


async def _followup_scheduled(conn, p, _id) -> None:
    await conn.execute(
        """INSERT INTO followup_facts (followup_id, case_ref, kind, team_id, municipality,
                                       referring_party, due_on)
           VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (followup_id) DO UPDATE
           SET team_id = EXCLUDED.team_id, municipality = EXCLUDED.municipality,
               referring_party = EXCLUDED.referring_party, due_on = EXCLUDED.due_on""",
        p["followup_id"], p["case_ref"], p["kind"], p["team_id"], p["municipality"],
        p["referring_party"], _d(p["due_on"]))


async def _followup_completed(conn, p, _id) -> None:
    await conn.execute(
        """INSERT INTO followup_facts (followup_id, case_ref, kind, team_id, municipality,
                                       referring_party, due_on, revision, recorded_on, reached,
                                       income_source, readiness, plan_status)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
           ON CONFLICT (followup_id) DO UPDATE SET revision = EXCLUDED.revision,
               recorded_on = EXCLUDED.recorded_on, reached = EXCLUDED.reached,
               income_source = EXCLUDED.income_source, readiness = EXCLUDED.readiness,
               plan_status = EXCLUDED.plan_status
           WHERE followup_facts.revision < EXCLUDED.revision""",
        p["followup_id"], p["case_ref"], p["kind"], p["team_id"], p["municipality"],
        p["referring_party"], _d(p["due_on"]), p["revision"], _d(p["recorded_on"]), p["reached"],
        p["income_source"], p["readiness"], p["plan_status"])


async def _followup_cancelled(conn, p, _id) -> None:
    """Marks the follow-up cancelled; arriving before FollowUpScheduled, it leaves a row that
    the scheduling fills in."""
    await conn.execute(
        """INSERT INTO followup_facts (followup_id, case_ref, kind, team_id, municipality,
                                       referring_party, due_on, cancelled)
           VALUES ($1, $2, $3, '', '', '', DATE '1970-01-01', true)
           ON CONFLICT (followup_id) DO UPDATE SET cancelled = true""",
        p["followup_id"], p["case_ref"], p["kind"])


_APPLY = {"TeamUpdated": _team_updated, "CaseReferred": _case_referred,
          "ConsultationHeld": _consultation_held, "CaseNotConsulted": _not_consulted,
          "CaseClosed": _case_closed, "MeetingScheduled": _meeting_scheduled,
          "MeetingCancelled": _meeting_cancelled, "PreMeetingHeld": _pre_meeting_held,
          "CasePostponed": _case_postponed, "FollowUpScheduled": _followup_scheduled,
          "FollowUpCompleted": _followup_completed, "FollowUpCancelled": _followup_cancelled}


async def rebuild(pool: asyncpg.Pool, batch: int = 2000) -> int:
    """Empty the projections and replay the whole event log in the order it was received,
    then work out every case's and meeting's cells afresh. Returns the number of events
    replayed. Runs in one transaction: nothing half-built is ever seen, but readers and live
    updates wait for it (the tables are locked until it commits)."""
    replayed = 0
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(f"TRUNCATE {', '.join(PROJECTION_TABLES)}")
        last = 0
        while True:
            rows = await conn.fetch(
                """SELECT seq, event_id, event_type, payload FROM event_log WHERE seq > $1
                   ORDER BY seq LIMIT $2""", last, batch)
            if not rows:
                break
            for row in rows:
                await apply(conn, row["event_type"], _json(row["payload"]), row["event_id"], cells=False)
            replayed += len(rows)
            last = rows[-1]["seq"]
        await rebuild_cells(conn, batch)
        await conn.execute("UPDATE projection_state SET rebuild_needed = false")
    return replayed


async def rebuild_cells(conn: asyncpg.Connection, batch: int = 2000) -> None:
    """Every case's and meeting's cells from the facts, into the emptied cell table."""
    await conn.execute("TRUNCATE figure_cells")
    await store.know_teams_of_cases(conn)
    total: Counter = Counter()
    after = ""
    while refs := await store.case_refs_after(conn, after, batch):
        for case in await store.cases(conn, refs):
            total.update(domain.case_cells(case))
        after = refs[-1]
    for meeting in await store.meetings(conn, await store.all_meeting_ids(conn)):
        total.update(domain.meeting_cells(meeting))
    await store.write_cells(conn, total)


def _json(value):
    import json

    return json.loads(value) if isinstance(value, str) else value


async def catch_up(pool: asyncpg.Pool) -> int:
    """At start-up: if a migration asked for it (the cells were introduced after events were
    logged), rebuild. Returns the events replayed (0: nothing to do)."""
    async with pool.acquire() as conn:
        needed = await conn.fetchval("SELECT rebuild_needed FROM projection_state")
    return await rebuild(pool) if needed else 0
