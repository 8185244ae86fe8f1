"""Projections: the board's facts, built from the domain events, and the cells they count for.

``apply`` updates the fact tables from one event, decoded into its contract (the consumer
validated it), and the cells (``domain.case_cells``, ``meeting_cells``) of the cases and
meetings it touched, by the difference between their cells before and after. It is used live
(the event handlers) and by ``rebuild`` for the events that arrive while it builds; ``rebuild``
(module ``rebuild``) works the tables out set-based from the whole log, to the same rows
(tests/integration/test_metrics_rebuild.py checks it). Every update is keyed by the fact's own
id and may run twice: a duplicate changes nothing; a correction of a follow-up counts only if
its revision is higher than the one held.

Each contract's projection is registered by its class (``@projects(CaseReferred)``); an event
the table has no projection for (``CaseScheduled``, consent) is kept in the log and nothing else.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

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
from shared.contracts.vocabulary import CancellationReason
from shared.platform.clock import stockholm_date
from shared.platform.retention import RETENTION_BATCH

from . import domain, store

# A meeting cancelled for one of these is on again when it is scheduled again (its date is no
# longer a skip date; the team's calendar changed back).
REOPENED_BY_SCHEDULING = [CancellationReason.HOLIDAY.value, CancellationReason.RESCHEDULED.value]

PROJECTION_TABLES = (
    "team_facts",
    "case_facts",
    "action_facts",
    "meeting_facts",
    "postponement_facts",
    "followup_facts",
    "figure_cells",
)

Projection = Callable[[asyncpg.Connection, Any, uuid.UUID], Awaitable[None]]
PROJECTIONS: dict[type[Contract], Projection] = {}


def projects(contract_cls: type[Contract]) -> Callable[[Projection], Projection]:
    """Register the decorated function as the projection of ``contract_cls``."""

    def register(projection: Projection) -> Projection:
        if contract_cls in PROJECTIONS:
            raise RuntimeError(f"{contract_cls.name} has two projections")
        PROJECTIONS[contract_cls] = projection
        return projection

    return register


def touched(event: Contract) -> tuple[list[str], list[str]]:
    """The cases and the meetings whose cells an event can change."""
    if isinstance(event, (ConsultationHeld, CaseNotConsulted)):
        return [event.case_ref], [event.meeting_id] if event.meeting_id else []
    if isinstance(event, (MeetingScheduled, MeetingCancelled, PreMeetingHeld)):
        return [], [event.meeting_id]
    case_ref = getattr(event, "case_ref", None)
    return ([case_ref], []) if case_ref else ([], [])


async def apply(uow_or_conn: Any, event: Contract, event_id: uuid.UUID, *, cells: bool = True) -> None:
    """Apply one event to the facts and (``cells``) to the cells of what it touched. Takes the
    unit of work of the delivery, or a bare connection (a rebuild)."""
    await apply_all(getattr(uow_or_conn, "conn", uow_or_conn), [(event, event_id)], cells=cells)


async def apply_all(
    conn: asyncpg.Connection, events: Sequence[tuple[Contract, uuid.UUID]], *, cells: bool = True
) -> None:
    """Apply events, in order, to the facts, and (``cells``) change the cells by one difference:
    those of every case and meeting the events touched, read before the first and after the
    last (set-based: a batch of deliveries costs two reads and one write of cells, not three
    statements an event). The caller holds the projections' lock (``lock_projections``): the
    difference is from what the transaction before left, also across instances."""
    projected = [(e, event_id, PROJECTIONS[type(e)]) for e, event_id in events if type(e) in PROJECTIONS]
    if not projected:
        return
    case_refs: set[str] = set()
    meeting_ids: set[str] = set()
    if cells:
        for event, _, _ in projected:
            cases, meetings = touched(event)
            case_refs.update(cases)
            meeting_ids.update(meetings)
    before = await _cells(conn, sorted(case_refs), sorted(meeting_ids))
    for event, event_id, projection in projected:
        await projection(conn, event, event_id)
    after = await _cells(conn, sorted(case_refs), sorted(meeting_ids))
    await store.Cells(conn).add(domain.difference(before, after))


async def lock_projections(conn: asyncpg.Connection) -> None:
    """One transaction at a time applies events to the projections (in this database, across
    instances): taken first by every transaction that applies any, until it ends. The cells are
    shared by many cases (a day, a team, a measure), so two transactions applying several
    events each would otherwise lock them in different orders and deadlock (seen: 11 in a run
    with two instances)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('projections', 7246))")


async def _cells(conn: asyncpg.Connection, case_refs: list[str], meeting_ids: list[str]) -> Counter[domain.Cell]:
    total: Counter[domain.Cell] = Counter()
    if case_refs:
        for case in await store.cases(conn, case_refs):
            total.update(domain.case_cells(case))
    if meeting_ids:
        for meeting in await store.meetings(conn, meeting_ids):
            total.update(domain.meeting_cells(meeting))
    return total


@projects(TeamUpdated)
async def _team_updated(conn: asyncpg.Connection, e: TeamUpdated, _id: uuid.UUID) -> None:
    await conn.execute(
        """INSERT INTO team_facts (team_id, municipality, team_name, revision) VALUES ($1, $2, $3, $4)
           ON CONFLICT (team_id) DO UPDATE SET municipality = EXCLUDED.municipality,
               team_name = EXCLUDED.team_name, revision = EXCLUDED.revision
           WHERE team_facts.revision < EXCLUDED.revision""",
        e.team_id,
        e.municipality,
        e.team_name,
        e.revision,
    )


@projects(CaseReferred)
async def _case_referred(conn: asyncpg.Connection, e: CaseReferred, _id: uuid.UUID) -> None:
    await conn.execute(  # with a team first known from its case (one statement)
        """WITH team AS (
               INSERT INTO team_facts (team_id, municipality, team_name, revision) VALUES ($2, $3, $2, 0)
               ON CONFLICT (team_id) DO NOTHING)
           INSERT INTO case_facts (case_ref, team_id, municipality, referring_party, gender, age_band,
                                   income_at_referral, violence_question_asked, referred_at, referred_on)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
           ON CONFLICT (case_ref) DO UPDATE SET team_id = EXCLUDED.team_id,
               municipality = EXCLUDED.municipality, referring_party = EXCLUDED.referring_party,
               gender = EXCLUDED.gender, age_band = EXCLUDED.age_band,
               income_at_referral = EXCLUDED.income_at_referral,
               violence_question_asked = EXCLUDED.violence_question_asked,
               referred_at = EXCLUDED.referred_at, referred_on = EXCLUDED.referred_on""",
        e.case_ref,
        e.team_id,
        e.municipality,
        e.referring_party.value,
        e.gender.value,
        e.age_band.value,
        e.income_source.value,
        e.violence_question_asked,
        e.referred_at,
        stockholm_date(e.referred_at),
    )


@projects(ConsultationHeld)
async def _consultation_held(conn: asyncpg.Connection, e: ConsultationHeld, _id: uuid.UUID) -> None:
    await conn.execute(
        """INSERT INTO case_facts (case_ref, team_id, municipality, referring_party, consulted_on,
                                   meeting_id, individual_attended)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (case_ref) DO UPDATE SET consulted_on = EXCLUDED.consulted_on,
               meeting_id = EXCLUDED.meeting_id, individual_attended = EXCLUDED.individual_attended""",
        e.case_ref,
        e.team_id,
        e.municipality,
        e.referring_party.value,
        e.held_on,
        e.meeting_id,
        e.individual_attended,
    )
    if e.actions:  # the plan's actions in one statement
        await conn.execute(
            """INSERT INTO action_facts (case_ref, position, type, responsible_party)
               SELECT $1, position - 1, type, party
               FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS a (type, party, position)
               ON CONFLICT DO NOTHING""",
            e.case_ref,
            [action.type.value for action in e.actions],
            [action.responsible_party.value for action in e.actions],
        )


@projects(CaseNotConsulted)
async def _not_consulted(conn: asyncpg.Connection, e: CaseNotConsulted, _id: uuid.UUID) -> None:
    await conn.execute(
        """INSERT INTO case_facts (case_ref, team_id, municipality, referring_party,
                                   not_consulted_reason, not_consulted_on, meeting_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (case_ref) DO UPDATE SET not_consulted_reason = EXCLUDED.not_consulted_reason,
               not_consulted_on = EXCLUDED.not_consulted_on, meeting_id = EXCLUDED.meeting_id""",
        e.case_ref,
        e.team_id,
        e.municipality,
        e.referring_party.value,
        e.reason.value,
        e.meeting_date,
        e.meeting_id,
    )


@projects(CaseClosed)
async def _case_closed(conn: asyncpg.Connection, e: CaseClosed, _id: uuid.UUID) -> None:
    await conn.execute(
        """INSERT INTO case_facts (case_ref, closed_on, exit_reason) VALUES ($1, $2, $3)
           ON CONFLICT (case_ref) DO UPDATE SET closed_on = EXCLUDED.closed_on,
               exit_reason = EXCLUDED.exit_reason""",
        e.case_ref,
        stockholm_date(e.closed_at),
        e.reason.value,
    )


@projects(MeetingScheduled)
async def _meeting_scheduled(conn: asyncpg.Connection, e: MeetingScheduled, _id: uuid.UUID) -> None:
    await conn.execute(
        """INSERT INTO meeting_facts (meeting_id, team_id, municipality, meeting_date)
           VALUES ($1, $2, $3, $4) ON CONFLICT (meeting_id) DO UPDATE
           SET cancelled_reason = CASE WHEN meeting_facts.cancelled_reason = ANY($5::text[])
                                       THEN NULL ELSE meeting_facts.cancelled_reason END""",
        e.meeting_id,
        e.team_id,
        e.municipality,
        e.meeting_date,
        REOPENED_BY_SCHEDULING,
    )


@projects(MeetingCancelled)
async def _meeting_cancelled(conn: asyncpg.Connection, e: MeetingCancelled, _id: uuid.UUID) -> None:
    await conn.execute(
        """INSERT INTO meeting_facts (meeting_id, team_id, municipality, meeting_date, cancelled_reason)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT (meeting_id) DO UPDATE
           SET cancelled_reason = EXCLUDED.cancelled_reason""",
        e.meeting_id,
        e.team_id,
        e.municipality,
        e.meeting_date,
        e.reason.value,
    )


@projects(PreMeetingHeld)
async def _pre_meeting_held(conn: asyncpg.Connection, e: PreMeetingHeld, _id: uuid.UUID) -> None:
    await conn.execute(
        """INSERT INTO meeting_facts (meeting_id, team_id, municipality, meeting_date, pre_meeting_held_on)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT (meeting_id) DO UPDATE
           SET pre_meeting_held_on = EXCLUDED.pre_meeting_held_on""",
        e.meeting_id,
        e.team_id,
        e.municipality,
        e.meeting_date,
        e.held_on,
    )


@projects(CasePostponed)
async def _case_postponed(conn: asyncpg.Connection, e: CasePostponed, event_id: uuid.UUID) -> None:
    await conn.execute(
        """INSERT INTO postponement_facts (event_id, case_ref, team_id, from_meeting_date, reason)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING""",
        event_id,
        e.case_ref,
        e.team_id,
        e.from_meeting_date,
        e.reason.value,
    )


@projects(FollowUpScheduled)
async def _followup_scheduled(conn: asyncpg.Connection, e: FollowUpScheduled, _id: uuid.UUID) -> None:
    await conn.execute(
        """INSERT INTO followup_facts (followup_id, case_ref, kind, team_id, municipality,
                                       referring_party, due_on)
           VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (followup_id) DO UPDATE
           SET team_id = EXCLUDED.team_id, municipality = EXCLUDED.municipality,
               referring_party = EXCLUDED.referring_party, due_on = EXCLUDED.due_on""",
        e.followup_id,
        e.case_ref,
        e.kind.value,
        e.team_id,
        e.municipality,
        e.referring_party.value,
        e.due_on,
    )


@projects(FollowUpCompleted)
async def _followup_completed(conn: asyncpg.Connection, e: FollowUpCompleted, _id: uuid.UUID) -> None:
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
        e.followup_id,
        e.case_ref,
        e.kind.value,
        e.team_id,
        e.municipality,
        e.referring_party.value,
        e.due_on,
        e.revision,
        e.recorded_on,
        e.reached,
        _code(e.income_source),
        _code(e.readiness),
        _code(e.plan_status),
    )


@projects(FollowUpCancelled)
async def _followup_cancelled(conn: asyncpg.Connection, e: FollowUpCancelled, _id: uuid.UUID) -> None:
    """Marks the follow-up cancelled; arriving before FollowUpScheduled, it leaves a row that
    the scheduling fills in."""
    await conn.execute(
        """INSERT INTO followup_facts (followup_id, case_ref, kind, team_id, municipality,
                                       referring_party, due_on, cancelled)
           VALUES ($1, $2, $3, '', '', '', DATE '1970-01-01', true)
           ON CONFLICT (followup_id) DO UPDATE SET cancelled = true""",
        e.followup_id,
        e.case_ref,
        e.kind.value,
    )


def _code(value: Any) -> str | None:
    """An optional code of the vocabulary as stored (its value), or None."""
    return None if value is None else str(value.value)


async def forget_closed_cases(uow: Any, cutoff: datetime) -> list[str]:
    """Retention (``shared.platform.retention``): a case closed before ``cutoff`` (its Swedish
    date) leaves no case-level row: its facts and logged events are deleted, and what it counted
    for is kept as anonymous counts (``domain.retired``). The cells are not touched: every
    figure, exact or public, stays as it was, and a rebuild gives them again. Returns the cases
    deleted."""
    conn: asyncpg.Connection = uow.conn
    await lock_projections(conn)  # as every writer of the projections
    case_refs = await store.closed_before(conn, stockholm_date(cutoff), RETENTION_BATCH)
    if case_refs:
        cells, recorded = domain.retired(await store.cases(conn, case_refs))
        await store.Cells(conn, "retired_cells").add(cells)
        await store.retire_meeting_cases(conn, recorded)
        await store.delete_cases(conn, case_refs)
    return case_refs
