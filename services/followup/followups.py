"""Follow-up use-cases: schedule a consultation's follow-ups, run the durable scheduler, record
(and correct) follow-ups, close cases. Each runs in the caller's transaction and announces
through ``emit`` (the transactional outbox). Rules: ``domain.py``; SQL: ``store.py``."""

from __future__ import annotations

from datetime import datetime
from typing import Awaitable, Callable

import asyncpg
import structlog

from shared.platform import consent
from shared.platform.clock import Clock, stockholm_date
from shared.contracts import (CaseClosed, ConsultationHeld, FollowUpCancelled, FollowUpCompleted,
                           FollowUpDue, FollowUpEscalated, FollowUpOverdue, FollowUpScheduled)
from shared.platform.logging import bind_contextvars
from shared.platform.problems import Problem
from shared.contracts.vocabulary import ExitReason, FollowUpKind, Party

from . import domain, store
from .domain import Answers, Rules

log = structlog.get_logger("followup")

Emit = Callable[..., Awaitable[object]]  # emit(event, ordering_key=...)


class FollowUps:
    def __init__(self, *, rules: Rules, clock: Clock):
        self.rules = rules
        self.clock = clock

    # ------------------------------------------------------------------ scheduling

    async def consultation_held(self, conn: asyncpg.Connection, emit: Emit, event: ConsultationHeld) -> None:
        """Schedule the plan check and the outcome follow-up(s); once per case, whatever
        arrives twice."""
        await store.track_consulted(conn, case_ref=event.case_ref,
                                    referring_party=event.referring_party.value,
                                    referred_at=event.referred_at, team_id=event.team_id,
                                    municipality=event.municipality)
        case = await store.lock_case(conn, event.case_ref)
        if case["status"] == "closed":
            log.info("consultation of a closed case: no follow-ups scheduled")
            return
        if domain.every_consent_withdrawn(await consent.consents_of(conn, event.case_ref)):
            await self.close(conn, emit, event.case_ref, ExitReason.CONSENT_WITHDRAWN)
            return
        now = self.clock.now()
        responsible = event.referring_party  # by default the referring party follows up
        for kind, due_on in domain.followups_for(event.held_on, self.rules):
            followup_id = domain.followup_id(event.case_ref, kind)
            if await store.insert_followup(
                    conn, followup_id=followup_id, case_ref=event.case_ref, kind=kind.value,
                    team_id=event.team_id, municipality=event.municipality,
                    referring_party=event.referring_party.value,
                    responsible_party=responsible.value, held_on=event.held_on, due_on=due_on,
                    next_action_at=domain.due_at(due_on)):
                await emit(FollowUpScheduled(
                    followup_id=followup_id, case_ref=event.case_ref, team_id=event.team_id,
                    municipality=event.municipality, kind=kind,
                    referring_party=event.referring_party, responsible_party=responsible,
                    consultation_held_on=event.held_on, due_on=due_on, scheduled_at=now),
                    ordering_key=event.case_ref)

    async def tick(self, conn: asyncpg.Connection, emit: Emit, limit: int) -> int:
        """One round of the scheduler: act on up to ``limit`` follow-ups whose time has come
        (locked; another instance takes others). Returns how many."""
        now = self.clock.now()
        claimed = await store.claim_due(conn, now, limit)
        for row in claimed:
            step = domain.next_step(status=row["status"], reminders_sent=row["reminders_sent"],
                                    now=now, rules=self.rules)
            if step is None:  # a stale next action (completed or cancelled): clear it
                await store.set_step(conn, row["followup_id"], status=row["status"],
                                     reminders_sent=row["reminders_sent"], next_action_at=None,
                                     due_sent_at=None, escalated_at=None)
                continue
            await store.set_step(conn, row["followup_id"], status=step.status,
                                 reminders_sent=step.reminders_sent,
                                 next_action_at=step.next_action_at,
                                 due_sent_at=now if step.send == "due" else None,
                                 escalated_at=now if step.send == "escalate" else None)
            await emit(self._reminder(row, step, now), ordering_key=row["case_ref"])
        return len(claimed)

    def _reminder(self, row, step: domain.Step, now: datetime):
        common = dict(followup_id=row["followup_id"], case_ref=row["case_ref"],
                      team_id=row["team_id"], kind=FollowUpKind(row["kind"]), due_on=row["due_on"],
                      sent_at=now)
        if step.send == "due":
            return FollowUpDue(recipient=Party(row["responsible_party"]), **common)
        if step.send == "overdue":
            return FollowUpOverdue(recipient=Party(row["responsible_party"]), **common,
                                   reminder=step.reminders_sent, of=self.rules.reminder_limit)
        return FollowUpEscalated(recipient=Party.REGION, **common,  # the team's rehab coordinator
                                 responsible_party=Party(row["responsible_party"]),
                                 reminders_sent=step.reminders_sent)

    # ------------------------------------------------------------------ recording

    async def record(self, conn: asyncpg.Connection, emit: Emit, followup_id: str, answers: Answers,
                     *, by_party: Party, by_user: str, channel: str) -> tuple[list[Problem], dict | None]:
        """Record a follow-up (again: a correction, a new revision). The same answers as the
        latest record change nothing. Returns the problems, or the record as announced."""
        found = await store.get_followup(conn, followup_id)
        if found is None or found["responsible_party"] != by_party.value:
            # another party learns nothing, not even whether the case exists
            return [Problem("followup_not_found")], None
        await store.lock_case(conn, found["case_ref"])  # the case first, as closure does
        row = await store.lock_followup(conn, followup_id)
        bind_contextvars(case_ref=row["case_ref"])
        now = self.clock.now()
        problems = domain.record_problems(
            kind=FollowUpKind(row["kind"]), status=row["status"],
            responsible=row["responsible_party"], by_party=by_party.value, answers=answers,
            held_on=row["consultation_held_on"], today=stockholm_date(now))
        if problems:
            return problems, None
        latest = await store.latest_record(conn, followup_id)
        if latest is not None and _answers_of(latest) == answers:
            return [], self._completed(row, latest, latest["revision"]).model_dump(mode="json")
        revision = row["revision"] + 1
        await store.add_record(conn, followup_id, revision, answers, by_party=by_party.value,
                               by_user=by_user, channel=channel, now=now)
        event = self._completed(row, {**answers.__dict__, "recorded_by": by_party.value,
                                      "recorded_at": now}, revision)
        await emit(event, ordering_key=row["case_ref"])
        log.info("follow-up recorded", kind=row["kind"], revision=revision, channel=channel)
        if revision == 1 and await store.is_last_followup(conn, row["case_ref"], followup_id):
            await self.close(conn, emit, row["case_ref"], ExitReason.PLAN_COMPLETED)
        return [], event.model_dump(mode="json")

    def _completed(self, row, record, revision: int) -> FollowUpCompleted:
        return FollowUpCompleted(
            followup_id=row["followup_id"], case_ref=row["case_ref"], team_id=row["team_id"],
            municipality=row["municipality"], kind=FollowUpKind(row["kind"]),
            referring_party=Party(row["referring_party"]),
            responsible_party=Party(row["responsible_party"]),
            consultation_held_on=row["consultation_held_on"], due_on=row["due_on"],
            recorded_on=record["recorded_on"], reached=record["reached"],
            income_source=record["income_source"], readiness=record["readiness"],
            plan_status=record["plan_status"], revision=revision,
            recorded_by=Party(record["recorded_by"]), recorded_at=record["recorded_at"])

    # ------------------------------------------------------------------ closure

    async def close(self, conn: asyncpg.Connection, emit: Emit, case_ref: str,
                    reason: ExitReason) -> bool:
        """Close the case (CaseClosed) and cancel its pending follow-ups. False if it is closed
        already or unknown."""
        case = await store.lock_case(conn, case_ref)
        if case is None or case["status"] == "closed":
            return False
        now = self.clock.now()
        await store.close_case(conn, case_ref, reason.value, now)
        for row in await store.open_followups_of_case(conn, case_ref):
            await store.cancel_followup(conn, row["followup_id"])
            await emit(FollowUpCancelled(followup_id=row["followup_id"], case_ref=case_ref,
                                         kind=FollowUpKind(row["kind"]), reason=reason,
                                         cancelled_at=now), ordering_key=case_ref)
        await emit(CaseClosed(case_ref=case_ref, reason=reason, closed_at=now), ordering_key=case_ref)
        log.info("case closed", reason=reason.value)
        return True

    async def consent_withdrawn(self, conn: asyncpg.Connection, emit: Emit, case_ref: str) -> None:
        """When no party has the individual's consent any more, the case is closed."""
        if domain.every_consent_withdrawn(await consent.consents_of(conn, case_ref)):
            await self.close(conn, emit, case_ref, ExitReason.CONSENT_WITHDRAWN)


def _answers_of(record) -> Answers:
    return Answers(recorded_on=record["recorded_on"], reached=record["reached"],
                   income_source=record["income_source"], readiness=record["readiness"],
                   plan_status=record["plan_status"])
