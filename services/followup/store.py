"""Follow-up storage (asyncpg): tracked cases, follow-ups with their next action, records."""

from __future__ import annotations

from datetime import date, datetime

import asyncpg

from .domain import TrackedCase


async def track(conn: asyncpg.Connection, case: TrackedCase) -> None:
    """A case as CaseReferred describes it (a ConsultationHeld may have come first)."""
    await conn.execute(
        """INSERT INTO tracked_cases (case_ref, referring_party, income_source_at_referral,
                                      referred_at, team_id, municipality)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (case_ref) DO UPDATE
              SET income_source_at_referral = EXCLUDED.income_source_at_referral,
                  referred_at = EXCLUDED.referred_at""",
        case.case_ref, case.referring_party, case.income_source_at_referral, case.referred_at,
        case.team_id, case.municipality)


async def track_consulted(conn: asyncpg.Connection, *, case_ref: str, referring_party: str,
                          referred_at: datetime, team_id: str, municipality: str) -> None:
    await conn.execute(
        """INSERT INTO tracked_cases (case_ref, referring_party, referred_at, team_id, municipality)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (case_ref) DO UPDATE SET team_id = EXCLUDED.team_id,
                                                municipality = EXCLUDED.municipality""",
        case_ref, referring_party, referred_at, team_id, municipality)


async def lock_case(conn: asyncpg.Connection, case_ref: str):
    return await conn.fetchrow("SELECT * FROM tracked_cases WHERE case_ref = $1 FOR UPDATE", case_ref)


async def close_case(conn: asyncpg.Connection, case_ref: str, reason: str, now: datetime) -> None:
    await conn.execute(
        """UPDATE tracked_cases SET status = 'closed', exit_reason = $2, closed_at = $3
           WHERE case_ref = $1""", case_ref, reason, now)


async def insert_followup(conn: asyncpg.Connection, *, followup_id: str, case_ref: str, kind: str,
                          team_id: str, municipality: str, referring_party: str,
                          responsible_party: str, held_on: date, due_on: date,
                          next_action_at: datetime) -> bool:
    row = await conn.fetchrow(
        """INSERT INTO followups (followup_id, case_ref, kind, team_id, municipality,
                                  referring_party, responsible_party, consultation_held_on,
                                  due_on, next_action_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
           ON CONFLICT (case_ref, kind) DO NOTHING RETURNING followup_id""",
        followup_id, case_ref, kind, team_id, municipality, referring_party, responsible_party,
        held_on, due_on, next_action_at)
    return row is not None


async def lock_followup(conn: asyncpg.Connection, followup_id: str):
    return await conn.fetchrow("SELECT * FROM followups WHERE followup_id = $1 FOR UPDATE",
                               followup_id)


async def get_followup(conn: asyncpg.Connection, followup_id: str):
    return await conn.fetchrow("SELECT * FROM followups WHERE followup_id = $1", followup_id)


async def claim_due(conn: asyncpg.Connection, now: datetime, limit: int) -> list[asyncpg.Record]:
    """Follow-ups whose next action has come, locked with their case (the order every writer
    of a case keeps); skips those another instance, a recording or a closure holds. Reads the
    partial index on next_action_at: the cost follows the due rows only."""
    return await conn.fetch(
        """SELECT f.* FROM followups f JOIN tracked_cases c ON c.case_ref = f.case_ref
           WHERE f.next_action_at <= $1
           ORDER BY f.next_action_at LIMIT $2 FOR UPDATE OF c, f SKIP LOCKED""", now, limit)


async def is_last_followup(conn: asyncpg.Connection, case_ref: str, followup_id: str) -> bool:
    """Is this the case's last follow-up (the latest due of those not cancelled)?"""
    last = await conn.fetchval(
        """SELECT followup_id FROM followups WHERE case_ref = $1 AND status <> 'cancelled'
           ORDER BY due_on DESC, followup_id DESC LIMIT 1""", case_ref)
    return last == followup_id


async def set_step(conn: asyncpg.Connection, followup_id: str, *, status: str, reminders_sent: int,
                   next_action_at: datetime | None, due_sent_at: datetime | None,
                   escalated_at: datetime | None) -> None:
    await conn.execute(
        """UPDATE followups SET status = $2, reminders_sent = $3, next_action_at = $4,
                  due_sent_at = COALESCE(due_sent_at, $5), escalated_at = COALESCE(escalated_at, $6)
           WHERE followup_id = $1""",
        followup_id, status, reminders_sent, next_action_at, due_sent_at, escalated_at)


async def open_followups_of_case(conn: asyncpg.Connection, case_ref: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT * FROM followups WHERE case_ref = $1 AND status IN ('pending', 'due')
           ORDER BY followup_id FOR UPDATE""", case_ref)


async def cancel_followup(conn: asyncpg.Connection, followup_id: str) -> None:
    await conn.execute(
        "UPDATE followups SET status = 'cancelled', next_action_at = NULL WHERE followup_id = $1",
        followup_id)


async def latest_record(conn: asyncpg.Connection, followup_id: str):
    return await conn.fetchrow(
        """SELECT * FROM followup_records WHERE followup_id = $1
           ORDER BY revision DESC LIMIT 1""", followup_id)


async def add_record(conn: asyncpg.Connection, followup_id: str, revision: int, answers, *,
                     by_party: str, by_user: str, channel: str, now: datetime) -> None:
    await conn.execute(
        """INSERT INTO followup_records (followup_id, revision, recorded_on, reached, income_source,
                                         readiness, plan_status, recorded_by, recorded_by_user,
                                         channel, recorded_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)""",
        followup_id, revision, answers.recorded_on, answers.reached, answers.income_source,
        answers.readiness, answers.plan_status, by_party, by_user, channel, now)
    await conn.execute(
        """UPDATE followups SET status = 'completed', next_action_at = NULL, revision = $2
           WHERE followup_id = $1""", followup_id, revision)


async def records(conn: asyncpg.Connection, followup_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM followup_records WHERE followup_id = $1 ORDER BY revision", followup_id)


async def party_followups(conn: asyncpg.Connection, party: str, statuses: list[str],
                          limit: int, reminded: bool | None = None) -> list[asyncpg.Record]:
    """``reminded``: only those with (True) or without (False) an overdue reminder."""
    return await conn.fetch(
        """SELECT * FROM followups WHERE responsible_party = $1 AND status = ANY($2)
             AND ($4::boolean IS NULL OR (reminders_sent > 0) = $4)
           ORDER BY due_on, followup_id LIMIT $3""", party, statuses, limit, reminded)

