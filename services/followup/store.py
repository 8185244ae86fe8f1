"""Follow-up storage (asyncpg): the repositories of the unit of work, each over the unit's
connection (its transaction), giving and taking the entities of ``domain.py``.

Locks: every writer of a case locks the case's row first (``Cases.lock``), then its follow-ups
(``FollowUps.of_case``); the scheduler claims case and follow-up together and skips what another
instance, a recording or a closure holds (``FollowUps.claim_due``). One order, so no deadlock,
and the outbox keeps each case's events in the order they were decided.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from shared.contracts.vocabulary import ExitReason, FollowUpKind, Party

from .domain import ClosedBy, FollowUp, FollowUpRecord, TrackedCase


class Cases:
    """The cases the service tracks."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def referred(self, cases: Sequence[TrackedCase]) -> None:
        """Cases as their CaseReferred describe them (a ConsultationHeld may have come first), in
        one statement (one case twice: the later)."""
        latest = list({case.case_ref: case for case in cases}.values())
        await self.conn.execute(
            """INSERT INTO tracked_cases (case_ref, referring_party, income_source_at_referral,
                                          referred_at, team_id, municipality)
               SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::text[])
               ON CONFLICT (case_ref) DO UPDATE
                  SET income_source_at_referral = EXCLUDED.income_source_at_referral,
                      referred_at = EXCLUDED.referred_at""",
            [c.case_ref for c in latest],
            [c.referring_party for c in latest],
            [c.income_source_at_referral for c in latest],
            [c.referred_at for c in latest],
            [c.team_id for c in latest],
            [c.municipality for c in latest],
        )

    async def consulted(self, case: TrackedCase) -> None:
        """A case as ConsultationHeld or CaseNotConsulted describes it (its team), whether or not
        its CaseReferred came first."""
        await self.conn.execute(
            """INSERT INTO tracked_cases (case_ref, referring_party, referred_at, team_id, municipality)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (case_ref) DO UPDATE SET team_id = EXCLUDED.team_id,
                                                    municipality = EXCLUDED.municipality""",
            case.case_ref,
            case.referring_party,
            case.referred_at,
            case.team_id,
            case.municipality,
        )

    async def lock(self, case_ref: str) -> TrackedCase | None:
        """The case, locked until the unit of work ends: its changes happen one at a time."""
        row = await self.conn.fetchrow("SELECT * FROM tracked_cases WHERE case_ref = $1 FOR UPDATE", case_ref)
        return _case(row) if row else None

    async def close(self, case: TrackedCase) -> None:
        """Store the case's closure (status, exit reason, when, by whom)."""
        await self.conn.execute(
            """UPDATE tracked_cases SET status = $2, exit_reason = $3, closed_at = $4, closed_by = $5,
                                        closed_by_party = $6
               WHERE case_ref = $1""",
            case.case_ref,
            case.status,
            case.exit_reason,
            case.closed_at,
            case.closed_by.user if case.closed_by else None,
            case.closed_by.party if case.closed_by else None,
        )

    async def delete_closed_before(self, cutoff: datetime, limit: int) -> list[str]:
        """Delete up to ``limit`` cases closed before ``cutoff`` with their follow-ups, records
        and consent state, the longest closed first (skipping one a writer holds); returns their
        references."""
        rows = await self.conn.fetch(
            """WITH due AS (SELECT case_ref FROM tracked_cases WHERE closed_at < $1 ORDER BY closed_at LIMIT $2
                            FOR UPDATE SKIP LOCKED),
                    records AS (DELETE FROM followup_records r USING followups f
                                WHERE r.followup_id = f.followup_id AND f.case_ref IN (SELECT case_ref FROM due)),
                    followups AS (DELETE FROM followups WHERE case_ref IN (SELECT case_ref FROM due)),
                    consents AS (DELETE FROM consent_state WHERE case_ref IN (SELECT case_ref FROM due))
               DELETE FROM tracked_cases WHERE case_ref IN (SELECT case_ref FROM due) RETURNING case_ref""",
            cutoff,
            limit,
        )
        return [r["case_ref"] for r in rows]


class FollowUps:
    """The follow-ups with their durable next action (the scheduler's due times)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def get(self, followup_id: str) -> FollowUp | None:
        row = await self.conn.fetchrow("SELECT * FROM followups WHERE followup_id = $1", followup_id)
        return _followup(row) if row else None

    async def of_case(self, case_ref: str) -> list[FollowUp]:
        """Every follow-up of a case, locked: call it with the case locked (the order every writer
        keeps)."""
        rows = await self.conn.fetch(
            "SELECT * FROM followups WHERE case_ref = $1 ORDER BY followup_id FOR UPDATE", case_ref
        )
        return [_followup(r) for r in rows]

    async def add(self, followup: FollowUp) -> None:
        """A new follow-up; one of its kind exists already: nothing (once per case and kind)."""
        f = followup
        await self.conn.execute(
            """INSERT INTO followups (followup_id, case_ref, kind, team_id, municipality, referring_party,
                                      responsible_party, consultation_held_on, due_on, status,
                                      next_action_at, reminders_sent, due_sent_at, escalated_at, revision)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
               ON CONFLICT (case_ref, kind) DO NOTHING""",
            f.followup_id,
            f.case_ref,
            f.kind,
            f.team_id,
            f.municipality,
            f.referring_party,
            f.responsible_party,
            f.consultation_held_on,
            f.due_on,
            f.status,
            f.next_action_at,
            f.reminders_sent,
            f.due_sent_at,
            f.escalated_at,
            f.revision,
        )

    async def save(self, followup: FollowUp) -> None:
        """Store what changes of a follow-up: its status, next action, reminders and revision."""
        f = followup
        await self.conn.execute(
            """UPDATE followups SET status = $2, next_action_at = $3, reminders_sent = $4,
                                    due_sent_at = $5, escalated_at = $6, revision = $7
               WHERE followup_id = $1""",
            f.followup_id,
            f.status,
            f.next_action_at,
            f.reminders_sent,
            f.due_sent_at,
            f.escalated_at,
            f.revision,
        )

    async def claim_due(self, now: datetime, limit: int) -> list[FollowUp]:
        """Follow-ups whose next action has come, locked with their case (the order every writer
        of a case keeps); skips those another instance, a recording or a closure holds. Reads the
        partial index on next_action_at: the cost follows the due rows only."""
        rows = await self.conn.fetch(
            """SELECT f.* FROM followups f JOIN tracked_cases c ON c.case_ref = f.case_ref
               WHERE f.next_action_at <= $1
               ORDER BY f.next_action_at LIMIT $2 FOR UPDATE OF c, f SKIP LOCKED""",
            now,
            limit,
        )
        return [_followup(r) for r in rows]

    async def unrecorded_escalated_before(self, moment: datetime) -> int:
        """How many follow-ups were escalated before ``moment`` and are still not recorded."""
        count: int = await self.conn.fetchval(
            "SELECT count(*) FROM followups WHERE status = 'due' AND escalated_at < $1", moment
        )
        return count

    async def of_party(
        self, party: Party, statuses: Sequence[str], limit: int, reminded: bool | None = None
    ) -> list[FollowUp]:
        """A party's follow-ups, earliest due first. ``reminded``: only those with (True) or
        without (False) an overdue reminder."""
        rows = await self.conn.fetch(
            """SELECT * FROM followups WHERE responsible_party = $1 AND status = ANY($2)
                 AND ($4::boolean IS NULL OR (reminders_sent > 0) = $4)
               ORDER BY due_on, followup_id LIMIT $3""",
            party,
            list(statuses),
            limit,
            reminded,
        )
        return [_followup(r) for r in rows]

    async def of_team(
        self, team_id: str, statuses: Sequence[str], limit: int, reminded: bool | None = None
    ) -> list[FollowUp]:
        """A team's follow-ups (every responsible party), earliest due first; ``reminded`` as in
        ``of_party``."""
        rows = await self.conn.fetch(
            """SELECT * FROM followups WHERE team_id = $1 AND status = ANY($2)
                 AND ($4::boolean IS NULL OR (reminders_sent > 0) = $4)
               ORDER BY due_on, followup_id LIMIT $3""",
            team_id,
            list(statuses),
            limit,
            reminded,
        )
        return [_followup(r) for r in rows]


class Records:
    """Every record of a follow-up; a correction is a new revision."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def latest(self, followup_id: str) -> FollowUpRecord | None:
        row = await self.conn.fetchrow(
            "SELECT * FROM followup_records WHERE followup_id = $1 ORDER BY revision DESC LIMIT 1", followup_id
        )
        return _record(row) if row else None

    async def of_followup(self, followup_id: str) -> list[FollowUpRecord]:
        rows = await self.conn.fetch(
            "SELECT * FROM followup_records WHERE followup_id = $1 ORDER BY revision", followup_id
        )
        return [_record(r) for r in rows]

    async def add(self, record: FollowUpRecord) -> None:
        r = record
        await self.conn.execute(
            """INSERT INTO followup_records (followup_id, revision, recorded_on, reached, income_source,
                                             readiness, plan_status, recorded_by, recorded_by_user,
                                             channel, recorded_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)""",
            r.followup_id,
            r.revision,
            r.recorded_on,
            r.reached,
            r.income_source,
            r.readiness,
            r.plan_status,
            r.recorded_by,
            r.recorded_by_user,
            r.channel,
            r.recorded_at,
        )


def _case(row: asyncpg.Record) -> TrackedCase:
    return TrackedCase(
        case_ref=row["case_ref"],
        referring_party=Party(row["referring_party"]),
        team_id=row["team_id"],
        municipality=row["municipality"],
        income_source_at_referral=row["income_source_at_referral"],
        referred_at=row["referred_at"],
        status=row["status"],
        exit_reason=ExitReason(row["exit_reason"]) if row["exit_reason"] else None,
        closed_at=row["closed_at"],
        closed_by=ClosedBy(row["closed_by"], Party(row["closed_by_party"]) if row["closed_by_party"] else None)
        if row["closed_by"]
        else None,
    )


def _followup(row: asyncpg.Record) -> FollowUp:
    return FollowUp(
        followup_id=row["followup_id"],
        case_ref=row["case_ref"],
        kind=FollowUpKind(row["kind"]),
        team_id=row["team_id"],
        municipality=row["municipality"],
        referring_party=Party(row["referring_party"]),
        responsible_party=Party(row["responsible_party"]),
        consultation_held_on=row["consultation_held_on"],
        due_on=row["due_on"],
        status=row["status"],
        next_action_at=row["next_action_at"],
        reminders_sent=row["reminders_sent"],
        due_sent_at=row["due_sent_at"],
        escalated_at=row["escalated_at"],
        revision=row["revision"],
    )


def _record(row: asyncpg.Record) -> FollowUpRecord:
    return FollowUpRecord(
        followup_id=row["followup_id"],
        revision=row["revision"],
        recorded_on=row["recorded_on"],
        reached=row["reached"],
        income_source=row["income_source"],
        readiness=row["readiness"],
        plan_status=row["plan_status"],
        recorded_by=Party(row["recorded_by"]),
        recorded_by_user=row["recorded_by_user"],
        channel=row["channel"],
        recorded_at=row["recorded_at"],
    )
