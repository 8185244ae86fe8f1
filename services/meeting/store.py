"""Meeting storage (asyncpg): teams, skip dates, meetings, cases and consultations.

Every change of a team's calendar or agenda runs with the team's row locked (``lock_team``),
so two instances of the service never book the same seat or announce a change twice.
"""

from __future__ import annotations

import json
from datetime import date, datetime

import asyncpg

from .domain import Slot, TeamCalendar, Waiting

ALL_TEAMS = "*"

# --------------------------------------------------------------------------- teams

TEAM_FIELDS = ("name", "municipality", "host_unit_type", "host_unit_name", "cadence_weeks",
               "weekday", "meeting_time", "capacity", "cutoff_days", "fixed_members")


async def lock_team(conn: asyncpg.Connection, team_id: str, *, skip_locked: bool = False):
    """The team's row, locked until the transaction ends (None: unknown, or locked elsewhere
    with ``skip_locked``)."""
    return await conn.fetchrow(
        "SELECT * FROM teams WHERE team_id = $1 FOR UPDATE" + (" SKIP LOCKED" if skip_locked else ""),
        team_id)


async def get_team(conn: asyncpg.Connection, team_id: str):
    return await conn.fetchrow("SELECT * FROM teams WHERE team_id = $1", team_id)


async def list_teams(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM teams ORDER BY municipality, team_id")


async def team_ids(conn: asyncpg.Connection) -> list[str]:
    return [r["team_id"] for r in await conn.fetch("SELECT team_id FROM teams ORDER BY team_id")]


async def insert_team(conn: asyncpg.Connection, team_id: str, fields: dict, *, anchor: date,
                      file_version: int | None, by: str, now: datetime) -> bool:
    """A new team; False if it exists already (another instance was first)."""
    row = await conn.fetchrow(
        f"""INSERT INTO teams (team_id, {", ".join(TEAM_FIELDS)}, calendar_anchor, file_version,
                               updated_by, updated_at)
            VALUES ($1, {", ".join(f"${i}" for i in range(2, len(TEAM_FIELDS) + 2))},
                    ${len(TEAM_FIELDS) + 2}, ${len(TEAM_FIELDS) + 3}, ${len(TEAM_FIELDS) + 4},
                    ${len(TEAM_FIELDS) + 5})
            ON CONFLICT (team_id) DO NOTHING RETURNING team_id""",
        team_id, *_team_values(fields), anchor, file_version, by, now)
    return row is not None


async def update_team(conn: asyncpg.Connection, team_id: str, fields: dict, *, anchor: date,
                      file_version: int | None, by: str, now: datetime) -> None:
    sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(TEAM_FIELDS, start=2))
    n = len(TEAM_FIELDS) + 2
    await conn.execute(
        f"""UPDATE teams SET {sets}, calendar_anchor = ${n}, file_version = ${n + 1},
                             updated_by = ${n + 2}, updated_at = ${n + 3}, revision = revision + 1
            WHERE team_id = $1""",
        team_id, *_team_values(fields), anchor, file_version, by, now)


def _team_values(fields: dict) -> list:
    return [json.dumps(fields[name]) if name == "fixed_members" else fields[name]
            for name in TEAM_FIELDS]


def team_fields(row) -> dict:
    """A team row's registry fields, as ``insert_team``/``update_team`` take them."""
    fields = {name: row[name] for name in TEAM_FIELDS}
    fields["fixed_members"] = json.loads(row["fixed_members"])
    return fields


def calendar_of(row) -> TeamCalendar:
    return TeamCalendar(team_id=row["team_id"], cadence_weeks=row["cadence_weeks"],
                        weekday=row["weekday"], meeting_time=row["meeting_time"],
                        capacity=row["capacity"], cutoff_days=row["cutoff_days"],
                        anchor=row["calendar_anchor"])


def fixed_parties(row) -> tuple[str, ...]:
    return tuple(sorted(json.loads(row["fixed_members"])))


# --------------------------------------------------------------------------- skip dates


async def skip_dates(conn: asyncpg.Connection, team_id: str) -> set[date]:
    rows = await conn.fetch("SELECT on_date FROM skip_dates WHERE team_id IN ($1, $2)",
                            team_id, ALL_TEAMS)
    return {r["on_date"] for r in rows}


async def list_skip_dates(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM skip_dates ORDER BY on_date, team_id")


async def add_skip_date(conn: asyncpg.Connection, team_id: str, on_date: date, reason: str) -> None:
    await conn.execute(
        """INSERT INTO skip_dates (team_id, on_date, reason) VALUES ($1, $2, $3)
           ON CONFLICT (team_id, on_date) DO UPDATE SET reason = EXCLUDED.reason""",
        team_id, on_date, reason)


async def remove_skip_date(conn: asyncpg.Connection, team_id: str, on_date: date) -> bool:
    status = await conn.execute("DELETE FROM skip_dates WHERE team_id = $1 AND on_date = $2",
                                team_id, on_date)
    return status != "DELETE 0"


# --------------------------------------------------------------------------- meetings


async def insert_meeting(conn: asyncpg.Connection, *, meeting_id: str, team_id: str,
                         meeting_date: date, starts_at: datetime, cutoff_at: datetime,
                         capacity: int) -> bool:
    row = await conn.fetchrow(
        """INSERT INTO meetings (meeting_id, team_id, meeting_date, starts_at, cutoff_at, capacity)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (team_id, meeting_date) DO NOTHING RETURNING meeting_id""",
        meeting_id, team_id, meeting_date, starts_at, cutoff_at, capacity)
    return row is not None


async def reopen_meeting(conn: asyncpg.Connection, team_id: str, meeting_date: date, *,
                         starts_at: datetime, cutoff_at: datetime, capacity: int) -> bool:
    """A meeting cancelled for a skip date or a calendar change is open again (its date is
    back on the calendar). False if there is no such meeting."""
    row = await conn.fetchrow(
        """UPDATE meetings SET status = 'open', cancel_reason = NULL, cancel_note = NULL,
                  cancelled_by = NULL, cancelled_at = NULL, starts_at = $3, cutoff_at = $4,
                  capacity = $5
           WHERE team_id = $1 AND meeting_date = $2 AND status = 'cancelled'
             AND cancel_reason IN ('holiday', 'rescheduled') RETURNING meeting_id""",
        team_id, meeting_date, starts_at, cutoff_at, capacity)
    return row is not None


async def get_meeting(conn: asyncpg.Connection, meeting_id: str):
    return await conn.fetchrow("SELECT * FROM meetings WHERE meeting_id = $1", meeting_id)


async def meeting_dates(conn: asyncpg.Connection, meeting_ids) -> dict[str, date]:
    rows = await conn.fetch("SELECT meeting_id, meeting_date FROM meetings WHERE meeting_id = ANY($1)",
                            list(meeting_ids))
    return {r["meeting_id"]: r["meeting_date"] for r in rows}


async def open_meetings(conn: asyncpg.Connection, team_id: str) -> list[asyncpg.Record]:
    """The team's meetings whose agenda is open, in date order."""
    return await conn.fetch(
        "SELECT * FROM meetings WHERE team_id = $1 AND status = 'open' ORDER BY meeting_date",
        team_id)


async def fixed_meetings_ahead(conn: asyncpg.Connection, team_id: str, today: date) -> list[asyncpg.Record]:
    """The team's meetings whose agenda is fixed (cut-off passed) and that lie ahead."""
    return await conn.fetch(
        """SELECT * FROM meetings WHERE team_id = $1 AND status = 'closed' AND meeting_date >= $2
           ORDER BY meeting_date""", team_id, today)


def slots(meetings) -> list[Slot]:
    return [Slot(m["meeting_id"], m["meeting_date"], m["capacity"]) for m in meetings]


async def due_cutoffs(conn: asyncpg.Connection, team_id: str, now: datetime) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT * FROM meetings WHERE team_id = $1 AND status = 'open' AND cutoff_at <= $2
           ORDER BY meeting_date""", team_id, now)


async def set_meeting_status(conn: asyncpg.Connection, meeting_id: str, status: str) -> None:
    await conn.execute("UPDATE meetings SET status = $2 WHERE meeting_id = $1", meeting_id, status)


async def cancel_meeting(conn: asyncpg.Connection, meeting_id: str, *, reason: str,
                         note: str | None, by: str, now: datetime) -> None:
    await conn.execute(
        """UPDATE meetings SET status = 'cancelled', cancel_reason = $2, cancel_note = $3,
                               cancelled_by = $4, cancelled_at = $5 WHERE meeting_id = $1""",
        meeting_id, reason, note, by, now)


async def reschedule_meeting(conn: asyncpg.Connection, meeting_id: str, *, starts_at: datetime,
                             cutoff_at: datetime, capacity: int) -> None:
    await conn.execute(
        "UPDATE meetings SET starts_at = $2, cutoff_at = $3, capacity = $4 WHERE meeting_id = $1",
        meeting_id, starts_at, cutoff_at, capacity)


async def record_pre_meeting(conn: asyncpg.Connection, meeting_id: str, held_on: date, by: str) -> None:
    await conn.execute(
        """UPDATE meetings SET pre_meeting_held_on = $2, pre_meeting_recorded_by = $3
           WHERE meeting_id = $1""", meeting_id, held_on, by)


async def team_meetings(conn: asyncpg.Connection, team_id: str, since: date,
                        until: date) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT * FROM meetings WHERE team_id = $1 AND meeting_date BETWEEN $2 AND $3
           ORDER BY meeting_date""", team_id, since, until)


async def last_meeting_date(conn: asyncpg.Connection, team_id: str) -> date | None:
    return await conn.fetchval(
        "SELECT max(meeting_date) FROM meetings WHERE team_id = $1 AND status <> 'cancelled'",
        team_id)


async def count_consultations(conn: asyncpg.Connection, meeting_id: str) -> int:
    return await conn.fetchval("SELECT count(*) FROM consultations WHERE meeting_id = $1",
                               meeting_id)


# --------------------------------------------------------------------------- cases


async def insert_case(conn: asyncpg.Connection, *, case_ref: str, team_id: str,
                      municipality: str, referring_party: str, referred_at: datetime,
                      status: str, now: datetime) -> bool:
    row = await conn.fetchrow(
        """INSERT INTO cases (case_ref, team_id, municipality, referring_party, referred_at,
                              status, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (case_ref) DO NOTHING
           RETURNING case_ref""",
        case_ref, team_id, municipality, referring_party, referred_at, status, now)
    return row is not None


async def get_case(conn: asyncpg.Connection, case_ref: str):
    return await conn.fetchrow("SELECT * FROM cases WHERE case_ref = $1", case_ref)


async def waiting_cases(conn: asyncpg.Connection, team_id: str) -> list[Waiting]:
    """The team's queued cases that are not on a fixed agenda (closed meeting)."""
    rows = await conn.fetch(
        """SELECT c.case_ref, c.queue_seq, c.meeting_id FROM cases c
           LEFT JOIN meetings m ON m.meeting_id = c.meeting_id
           WHERE c.team_id = $1 AND c.status = 'queued'
             AND (c.meeting_id IS NULL OR m.status = 'open')
           ORDER BY c.queue_seq""", team_id)
    return [Waiting(r["case_ref"], r["queue_seq"], r["meeting_id"]) for r in rows]


async def cases_on_meeting(conn: asyncpg.Connection, meeting_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT * FROM cases WHERE meeting_id = $1 AND status = 'queued'
           ORDER BY queue_seq""", meeting_id)


async def agenda_cases(conn: asyncpg.Connection, meeting_ids: list[str]) -> list[asyncpg.Record]:
    """Cases on these meetings' agendas, or consulted at them."""
    return await conn.fetch(
        """SELECT c.*, k.outcome, COALESCE(k.meeting_id, c.meeting_id) AS agenda_of FROM cases c
           LEFT JOIN consultations k ON k.case_ref = c.case_ref
           WHERE COALESCE(k.meeting_id, c.meeting_id) = ANY($1)
           ORDER BY c.queue_seq""", meeting_ids)


async def place_case(conn: asyncpg.Connection, case_ref: str, meeting_id: str | None, *,
                     postponed: bool, now: datetime) -> None:
    await conn.execute(
        """UPDATE cases SET meeting_id = $2, updated_at = $3,
                            postponements = postponements + $4::int WHERE case_ref = $1""",
        case_ref, meeting_id, now, 1 if postponed else 0)


async def set_case_status(conn: asyncpg.Connection, case_ref: str, status: str, now: datetime, *,
                          keep_meeting: bool = False) -> None:
    await conn.execute(
        f"""UPDATE cases SET status = $2, updated_at = $3
                {"" if keep_meeting else ", meeting_id = NULL"} WHERE case_ref = $1""",
        case_ref, status, now)



async def consents_of_cases(conn: asyncpg.Connection, case_refs: list[str]) -> dict[str, dict[str, str]]:
    rows = await conn.fetch(
        "SELECT case_ref, party, status FROM consent_state WHERE case_ref = ANY($1)", case_refs)
    result: dict[str, dict[str, str]] = {ref: {} for ref in case_refs}
    for r in rows:
        result[r["case_ref"]][r["party"]] = r["status"]
    return result


async def queue_position(conn: asyncpg.Connection, case) -> int:
    """1 + the team's queued cases ahead of this one (not counting fixed agendas)."""
    return 1 + await conn.fetchval(
        """SELECT count(*) FROM cases c LEFT JOIN meetings m ON m.meeting_id = c.meeting_id
           WHERE c.team_id = $1 AND c.status = 'queued'
             AND (c.meeting_id IS NULL OR m.status = 'open')
             AND c.queue_seq < $2""",
        case["team_id"], case["queue_seq"])


# --------------------------------------------------------------------------- consultations


async def insert_consultation(conn: asyncpg.Connection, *, case_ref: str, meeting_id: str,
                              outcome: str, record: dict, by: str, now: datetime) -> None:
    await conn.execute(
        """INSERT INTO consultations (case_ref, meeting_id, outcome, record, recorded_by, recorded_at)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        case_ref, meeting_id, outcome, json.dumps(record), by, now)


async def get_consultation(conn: asyncpg.Connection, case_ref: str):
    return await conn.fetchrow("SELECT * FROM consultations WHERE case_ref = $1", case_ref)
