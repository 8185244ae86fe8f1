"""Meeting storage (asyncpg): the repositories of the meeting unit of work. Each is a small
class over the transaction's connection that loads and saves the entities of ``domain.py``;
rows never leave this module.

Every change of a team's calendar or agenda runs with the team's row locked (``Teams.lock``),
so two instances of the service never book the same seat or announce a change twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import date, datetime

import asyncpg

from shared.contracts import CaseReferred
from shared.contracts.vocabulary import CancellationReason, Party
from shared.platform import consent
from shared.platform.db import Conn

from .domain import (
    ALL_TEAMS,
    AgendaEntry,
    Case,
    CaseStatus,
    ConsultationRecord,
    Meeting,
    Placement,
    SkipDate,
    Team,
    TeamEntry,
    Waiting,
)


class Repository:
    def __init__(self, conn: Conn) -> None:
        self.conn = conn


# --------------------------------------------------------------------------- teams

TEAM_FIELDS = (
    "name",
    "municipality",
    "host_unit_type",
    "host_unit_name",
    "cadence_weeks",
    "weekday",
    "meeting_time",
    "capacity",
    "cutoff_days",
    "fixed_members",
)


class Teams(Repository):
    async def lock(self, team_id: str, *, skip_locked: bool = False) -> Team | None:
        """The team, its row locked until the transaction ends (None: unknown, or locked
        elsewhere with ``skip_locked``)."""
        row = await self.conn.fetchrow(
            "SELECT * FROM teams WHERE team_id = $1 FOR UPDATE" + (" SKIP LOCKED" if skip_locked else ""), team_id
        )
        return _team(row) if row else None

    async def lock_many(self, team_ids: list[str]) -> dict[str, Team]:
        """The teams known among these, their rows locked until the transaction ends (in team
        order, as ``lock_in_order``), in one statement."""
        rows = await self.conn.fetch(
            "SELECT * FROM teams WHERE team_id = ANY($1::text[]) ORDER BY team_id FOR UPDATE", team_ids
        )
        return {r["team_id"]: _team(r) for r in rows}

    async def lock_in_order(self, team_ids: list[str], of_cases: list[str]) -> None:
        """Lock these teams and the teams of these cases, in team order, in one statement: a
        transaction that handles several cases takes its teams' locks the way every other one
        does, so that two never wait for each other."""
        await self.conn.execute(
            """SELECT 1 FROM teams
               WHERE team_id = ANY($1::text[])
                  OR team_id IN (SELECT team_id FROM cases WHERE case_ref = ANY($2::text[]))
               ORDER BY team_id FOR UPDATE""",
            team_ids,
            of_cases,
        )

    async def get(self, team_id: str) -> Team | None:
        row = await self.conn.fetchrow("SELECT * FROM teams WHERE team_id = $1", team_id)
        return _team(row) if row else None

    async def all(self) -> list[Team]:
        return [_team(r) for r in await self.conn.fetch("SELECT * FROM teams ORDER BY municipality, team_id")]

    async def ids(self) -> list[str]:
        return [r["team_id"] for r in await self.conn.fetch("SELECT team_id FROM teams ORDER BY team_id")]

    async def add(self, team: Team) -> bool:
        """A new team; False if it exists already (another instance was first)."""
        n = len(TEAM_FIELDS)
        row = await self.conn.fetchrow(
            f"""INSERT INTO teams (team_id, {", ".join(TEAM_FIELDS)}, calendar_anchor, revision,
                                   file_version, updated_by, updated_at)
                VALUES ($1, {", ".join(f"${i}" for i in range(2, n + 7))})
                ON CONFLICT (team_id) DO NOTHING RETURNING team_id""",
            team.team_id,
            *_entry_values(team.entry),
            team.calendar_anchor,
            team.revision,
            team.file_version,
            team.updated_by,
            team.updated_at,
        )
        return row is not None

    async def update(self, team: Team) -> None:
        sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(TEAM_FIELDS, start=2))
        n = len(TEAM_FIELDS) + 2
        await self.conn.execute(
            f"""UPDATE teams SET {sets}, calendar_anchor = ${n}, revision = ${n + 1},
                                 file_version = ${n + 2}, updated_by = ${n + 3}, updated_at = ${n + 4}
                WHERE team_id = $1""",
            team.team_id,
            *_entry_values(team.entry),
            team.calendar_anchor,
            team.revision,
            team.file_version,
            team.updated_by,
            team.updated_at,
        )


def _entry_values(entry: TeamEntry) -> list[object]:
    return [
        json.dumps(getattr(entry, name)) if name == "fixed_members" else getattr(entry, name) for name in TEAM_FIELDS
    ]


def _team(row: asyncpg.Record) -> Team:
    entry = TeamEntry(
        **{name: row[name] for name in TEAM_FIELDS if name != "fixed_members"},
        fixed_members=json.loads(row["fixed_members"]),
    )
    return Team(
        team_id=row["team_id"],
        entry=entry,
        calendar_anchor=row["calendar_anchor"],
        revision=row["revision"],
        file_version=row["file_version"],
        updated_by=row["updated_by"],
        updated_at=row["updated_at"],
    )


# --------------------------------------------------------------------------- skip dates


class SkipDates(Repository):
    async def of_team(self, team_id: str) -> set[date]:
        """The team's skip dates and those of every team."""
        rows = await self.conn.fetch("SELECT on_date FROM skip_dates WHERE team_id IN ($1, $2)", team_id, ALL_TEAMS)
        return {r["on_date"] for r in rows}

    async def all(self) -> list[SkipDate]:
        rows = await self.conn.fetch("SELECT * FROM skip_dates ORDER BY on_date, team_id")
        return [SkipDate(r["team_id"], r["on_date"], r["reason"]) for r in rows]

    async def add(self, skip: SkipDate) -> None:
        await self.conn.execute(
            """INSERT INTO skip_dates (team_id, on_date, reason) VALUES ($1, $2, $3)
               ON CONFLICT (team_id, on_date) DO UPDATE SET reason = EXCLUDED.reason""",
            skip.team_id,
            skip.on_date,
            skip.reason,
        )

    async def remove(self, team_id: str, on_date: date) -> bool:
        status = await self.conn.execute("DELETE FROM skip_dates WHERE team_id = $1 AND on_date = $2", team_id, on_date)
        return status != "DELETE 0"


# --------------------------------------------------------------------------- meetings


class Meetings(Repository):
    async def add(self, meeting: Meeting) -> bool:
        """A new meeting; False if the team has one on that date already."""
        row = await self.conn.fetchrow(
            """INSERT INTO meetings (meeting_id, team_id, meeting_date, starts_at, cutoff_at, capacity)
               VALUES ($1, $2, $3, $4, $5, $6)
               ON CONFLICT (team_id, meeting_date) DO NOTHING RETURNING meeting_id""",
            meeting.meeting_id,
            meeting.team_id,
            meeting.meeting_date,
            meeting.starts_at,
            meeting.cutoff_at,
            meeting.capacity,
        )
        return row is not None

    async def reopen(self, meeting: Meeting) -> bool:
        """A meeting cancelled for a skip date or a calendar change is open again (its date is
        back on the calendar), with this time, cut-off and capacity. False if there is none."""
        row = await self.conn.fetchrow(
            """UPDATE meetings SET status = 'open', cancel_reason = NULL, cancel_note = NULL,
                      cancelled_by = NULL, cancelled_at = NULL, starts_at = $3, cutoff_at = $4,
                      capacity = $5
               WHERE team_id = $1 AND meeting_date = $2 AND status = 'cancelled'
                 AND cancel_reason IN ('holiday', 'rescheduled') RETURNING meeting_id""",
            meeting.team_id,
            meeting.meeting_date,
            meeting.starts_at,
            meeting.cutoff_at,
            meeting.capacity,
        )
        return row is not None

    async def get(self, meeting_id: str) -> Meeting | None:
        row = await self.conn.fetchrow("SELECT * FROM meetings WHERE meeting_id = $1", meeting_id)
        return _meeting(row) if row else None

    async def on_date(self, team_id: str, day: date) -> Meeting | None:
        """The team's meeting on that date, unless it is cancelled."""
        row = await self.conn.fetchrow(
            "SELECT * FROM meetings WHERE team_id = $1 AND meeting_date = $2 AND status <> 'cancelled'", team_id, day
        )
        return _meeting(row) if row else None

    async def dates(self, meeting_ids: Iterable[str]) -> dict[str, date]:
        rows = await self.conn.fetch(
            "SELECT meeting_id, meeting_date FROM meetings WHERE meeting_id = ANY($1)", list(meeting_ids)
        )
        return {r["meeting_id"]: r["meeting_date"] for r in rows}

    async def open(self, team_id: str) -> list[Meeting]:
        """The team's meetings whose agenda is open, in date order."""
        return await self._fetch(
            "SELECT * FROM meetings WHERE team_id = $1 AND status = 'open' ORDER BY meeting_date", team_id
        )

    async def open_many(self, team_ids: Sequence[str]) -> dict[str, list[Meeting]]:
        """``open`` of several teams, in one statement (every team given has a list)."""
        meetings: dict[str, list[Meeting]] = {team_id: [] for team_id in team_ids}
        if team_ids:
            for meeting in await self._fetch(
                """SELECT * FROM meetings WHERE team_id = ANY($1::text[]) AND status = 'open'
                   ORDER BY team_id, meeting_date""",
                list(team_ids),
            ):
                meetings[meeting.team_id].append(meeting)
        return meetings

    async def fixed_ahead(self, team_id: str, today: date) -> list[Meeting]:
        """The team's meetings whose agenda is fixed (cut-off passed) and that lie ahead."""
        return await self._fetch(
            """SELECT * FROM meetings WHERE team_id = $1 AND status = 'closed' AND meeting_date >= $2
               ORDER BY meeting_date""",
            team_id,
            today,
        )

    async def of_team(self, team_id: str, since: date, until: date) -> list[Meeting]:
        return await self._fetch(
            """SELECT * FROM meetings WHERE team_id = $1 AND meeting_date BETWEEN $2 AND $3
               ORDER BY meeting_date""",
            team_id,
            since,
            until,
        )

    async def last_date(self, team_id: str) -> date | None:
        last: date | None = await self.conn.fetchval(
            "SELECT max(meeting_date) FROM meetings WHERE team_id = $1 AND status <> 'cancelled'", team_id
        )
        return last

    async def close(self, meeting_id: str) -> None:
        """The meeting's agenda is fixed (its cut-off has passed)."""
        await self.conn.execute("UPDATE meetings SET status = 'closed' WHERE meeting_id = $1", meeting_id)

    async def cancel(
        self, meeting_id: str, *, reason: CancellationReason, note: str | None, by: str, now: datetime
    ) -> None:
        await self.conn.execute(
            """UPDATE meetings SET status = 'cancelled', cancel_reason = $2, cancel_note = $3,
                                   cancelled_by = $4, cancelled_at = $5 WHERE meeting_id = $1""",
            meeting_id,
            reason.value,
            note,
            by,
            now,
        )

    async def retime(self, meeting: Meeting) -> None:
        """The meeting's new start, cut-off and capacity."""
        await self.conn.execute(
            "UPDATE meetings SET starts_at = $2, cutoff_at = $3, capacity = $4 WHERE meeting_id = $1",
            meeting.meeting_id,
            meeting.starts_at,
            meeting.cutoff_at,
            meeting.capacity,
        )

    async def record_pre_meeting(self, meeting_id: str, held_on: date, by: str) -> None:
        await self.conn.execute(
            """UPDATE meetings SET pre_meeting_held_on = $2, pre_meeting_recorded_by = $3
               WHERE meeting_id = $1""",
            meeting_id,
            held_on,
            by,
        )

    async def _fetch(self, sql: str, *args: object) -> list[Meeting]:
        return [_meeting(r) for r in await self.conn.fetch(sql, *args)]


def _meeting(row: asyncpg.Record) -> Meeting:
    return Meeting(
        meeting_id=row["meeting_id"],
        team_id=row["team_id"],
        meeting_date=row["meeting_date"],
        starts_at=row["starts_at"],
        cutoff_at=row["cutoff_at"],
        capacity=row["capacity"],
        status=row["status"],
        cancel_reason=row["cancel_reason"],
        pre_meeting_held_on=row["pre_meeting_held_on"],
    )


# --------------------------------------------------------------------------- cases and agendas

# The team's queue: its queued cases that are not on a fixed agenda (a closed meeting).
# A case in its team's queue: queued, and not on a fixed agenda (``cases c`` joined to ``meetings m``)
_QUEUED = "c.status = 'queued' AND (c.meeting_id IS NULL OR m.status = 'open')"
_IN_QUEUE = f"c.team_id = $1 AND {_QUEUED}"


class Cases(Repository):
    async def add_many(self, arriving: Sequence[tuple[CaseReferred, CaseStatus]], now: datetime) -> set[str]:
        """Cases arriving, in one statement; the references of those that were new (a case known
        already is left as it is). Their places in the queue (``queue_seq``) are given in the
        order given, which is the order they arrived in under their teams' locks."""
        rows = await self.conn.fetch(
            """INSERT INTO cases (case_ref, team_id, municipality, referring_party, referred_at,
                                  status, updated_at)
               SELECT case_ref, team_id, municipality, referring_party, referred_at, status, $7
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[])
                      WITH ORDINALITY AS a(case_ref, team_id, municipality, referring_party, referred_at,
                                           status, ord)
                ORDER BY ord
               ON CONFLICT (case_ref) DO NOTHING
               RETURNING case_ref""",
            [r.case_ref for r, _ in arriving],
            [r.team_id for r, _ in arriving],
            [r.municipality for r, _ in arriving],
            [r.referring_party.value for r, _ in arriving],
            [r.referred_at for r, _ in arriving],
            [status for _, status in arriving],
            now,
        )
        return {r["case_ref"] for r in rows}

    async def get(self, case_ref: str) -> Case | None:
        row = await self.conn.fetchrow("SELECT * FROM cases WHERE case_ref = $1", case_ref)
        return _case(row) if row else None

    async def get_many(self, case_refs: Iterable[str]) -> list[Case]:
        rows = await self.conn.fetch("SELECT * FROM cases WHERE case_ref = ANY($1) ORDER BY queue_seq", list(case_refs))
        return [_case(r) for r in rows]

    async def queue(self, team_id: str) -> list[Waiting]:
        """The team's queue in order: its queued cases that are not on a fixed agenda."""
        rows = await self.conn.fetch(
            f"""SELECT c.case_ref, c.queue_seq, c.meeting_id FROM cases c
                LEFT JOIN meetings m ON m.meeting_id = c.meeting_id
                WHERE {_IN_QUEUE} ORDER BY c.queue_seq""",
            team_id,
        )
        return [Waiting(r["case_ref"], r["queue_seq"], r["meeting_id"]) for r in rows]

    async def agenda_counts_many(
        self, team_ids: Sequence[str], *, excluding: Sequence[str] = ()
    ) -> dict[str, dict[str | None, int]]:
        """For each team, how many of its queue (but ``excluding``) are on each open meeting (None:
        waiting without one), in one aggregate: the queues themselves are not read."""
        counts: dict[str, dict[str | None, int]] = {team_id: {} for team_id in team_ids}
        if team_ids:
            rows = await self.conn.fetch(
                f"""SELECT c.team_id, c.meeting_id, count(*) AS n FROM cases c
                   LEFT JOIN meetings m ON m.meeting_id = c.meeting_id
                   WHERE c.team_id = ANY($1::text[]) AND {_QUEUED} AND NOT (c.case_ref = ANY($2::text[]))
                   GROUP BY c.team_id, c.meeting_id""",
                list(team_ids),
                list(excluding),
            )
            for r in rows:
                counts[r["team_id"]][r["meeting_id"]] = r["n"]
        return counts

    async def on_meeting(self, meeting_id: str) -> list[Case]:
        """The cases on a meeting's agenda, in queue order."""
        rows = await self.conn.fetch(
            "SELECT * FROM cases WHERE meeting_id = $1 AND status = 'queued' ORDER BY queue_seq", meeting_id
        )
        return [_case(r) for r in rows]

    async def place_many(self, placements: Sequence[Placement], now: datetime) -> None:
        """Cases' new places, in one statement (each case once)."""
        if not placements:
            return
        if len({p.case_ref for p in placements}) != len(placements):
            raise ValueError("a case placed twice at once")
        await self.conn.execute(
            """UPDATE cases c SET meeting_id = p.meeting_id, updated_at = $1,
                                  postponements = c.postponements + p.postponed,
                                  last_postponement = COALESCE(p.reason, c.last_postponement),
                                  postponement_parties = CASE WHEN p.reason IS NULL THEN c.postponement_parties
                                                              ELSE string_to_array(p.parties, ',') END
               FROM unnest($2::text[], $3::text[], $4::int[], $5::text[], $6::text[])
                    AS p(case_ref, meeting_id, postponed, reason, parties)
               WHERE c.case_ref = p.case_ref""",
            now,
            [p.case_ref for p in placements],
            [p.meeting_id for p in placements],
            [1 if p.postponed else 0 for p in placements],
            [p.reason for p in placements],
            [",".join(party.value for party in p.missing_parties) for p in placements],
        )

    async def closed(self, case_ref: str, closed_at: datetime) -> None:
        """When the case was closed (the first closure counts)."""
        await self.conn.execute(
            "UPDATE cases SET closed_at = $2 WHERE case_ref = $1 AND closed_at IS NULL", case_ref, closed_at
        )

    async def delete_closed_before(self, cutoff: datetime, limit: int) -> list[str]:
        """Delete up to ``limit`` cases closed before ``cutoff`` with their consultation records
        and consent state, the longest closed first; returns their references."""
        rows = await self.conn.fetch(
            """WITH due AS (SELECT case_ref FROM cases WHERE closed_at < $1 ORDER BY closed_at LIMIT $2
                            FOR UPDATE SKIP LOCKED),
                    records AS (DELETE FROM consultations WHERE case_ref IN (SELECT case_ref FROM due)),
                    consents AS (DELETE FROM consent_state WHERE case_ref IN (SELECT case_ref FROM due))
               DELETE FROM cases WHERE case_ref IN (SELECT case_ref FROM due) RETURNING case_ref""",
            cutoff,
            limit,
        )
        return [r["case_ref"] for r in rows]

    async def set_status(self, case_ref: str, status: CaseStatus, now: datetime, *, keep_meeting: bool = False) -> None:
        """A new status; the case leaves its agenda unless ``keep_meeting`` (its consultation)."""
        await self.conn.execute(
            f"""UPDATE cases SET status = $2, updated_at = $3
                    {"" if keep_meeting else ", meeting_id = NULL"} WHERE case_ref = $1""",
            case_ref,
            status,
            now,
        )


def _case(row: asyncpg.Record) -> Case:
    return Case(
        case_ref=row["case_ref"],
        team_id=row["team_id"],
        municipality=row["municipality"],
        referring_party=Party(row["referring_party"]),
        referred_at=row["referred_at"],
        queue_seq=row["queue_seq"],
        status=row["status"],
        meeting_id=row["meeting_id"],
        postponements=row["postponements"],
        last_postponement=row["last_postponement"],
        postponement_parties=tuple(Party(p) for p in row["postponement_parties"]),
    )


class Agendas(Repository):
    async def of(self, meeting_ids: list[str]) -> dict[str, list[AgendaEntry]]:
        """Each meeting's agenda in queue order: the cases on it, or consulted at it, with
        their consents."""
        agendas: dict[str, list[AgendaEntry]] = {mid: [] for mid in meeting_ids}
        rows = await self.conn.fetch(
            """SELECT c.*, k.outcome, COALESCE(k.meeting_id, c.meeting_id) AS agenda_of FROM cases c
               LEFT JOIN consultations k ON k.case_ref = c.case_ref
               WHERE COALESCE(k.meeting_id, c.meeting_id) = ANY($1)
               ORDER BY c.queue_seq""",
            meeting_ids,
        )
        consents = await consent.Consents(self.conn).of_cases([r["case_ref"] for r in rows])
        for r in rows:
            agendas[r["agenda_of"]].append(AgendaEntry(r["agenda_of"], _case(r), r["outcome"], consents[r["case_ref"]]))
        return agendas


# --------------------------------------------------------------------------- consultations


class Consultations(Repository):
    async def get(self, case_ref: str) -> ConsultationRecord | None:
        row = await self.conn.fetchrow("SELECT * FROM consultations WHERE case_ref = $1", case_ref)
        if row is None:
            return None
        return ConsultationRecord(row["case_ref"], row["meeting_id"], row["outcome"], json.loads(row["record"]))

    async def add(self, record: ConsultationRecord, *, by: str, now: datetime) -> None:
        await self.conn.execute(
            """INSERT INTO consultations (case_ref, meeting_id, outcome, record, recorded_by, recorded_at)
               VALUES ($1, $2, $3, $4, $5, $6)""",
            record.case_ref,
            record.meeting_id,
            record.outcome,
            json.dumps(record.published),
            by,
            now,
        )

    async def count_at(self, meeting_id: str) -> int:
        """How many cases have their consultation (or 'not consulted') recorded at the meeting."""
        count: int = await self.conn.fetchval("SELECT count(*) FROM consultations WHERE meeting_id = $1", meeting_id)
        return count
