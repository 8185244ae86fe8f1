"""Follow-up use cases, each of one shape: load the facts through the unit of work's
repositories, ask a decision of ``domain.py`` what to do, and apply it (the new state and the
events) in that unit of work, which commits them together with the inbox row of the message
handled, or not at all. No SQL here (``store.py``) and no rules (``domain.py``).

``uow`` is a ``FollowUpUnitOfWork`` (``uow.py``), or in unit tests its in-memory stand-in
(``tests/fakes/followup.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import structlog

from shared.contracts import CaseNotConsulted, CaseReferred, ConsentRecorded, ConsentWithdrawn, ConsultationHeld
from shared.contracts.vocabulary import ExitReason, Party
from shared.platform.auth import Principal
from shared.platform.logging import bind_contextvars
from shared.platform.retention import RETENTION_BATCH

from . import domain
from .domain import (
    Answers,
    ClosedBy,
    ClosureDecision,
    Event,
    FollowUp,
    FollowUpRecord,
    RecordDecision,
    ScheduleDecision,
    TrackedCase,
)
from .uow import FollowUpUnitOfWork

log = structlog.get_logger("followup")


# --------------------------------------------------------------------------- a case arrives


async def cases_referred(uow: FollowUpUnitOfWork, events: Sequence[CaseReferred]) -> None:
    """What the six-month comparison needs of new cases, and the consents given at referral
    (set-based: a statement each for a whole batch)."""
    await uow.consents.record_all(events)
    await uow.cases.referred(
        [
            TrackedCase(
                case_ref=event.case_ref,
                referring_party=event.referring_party,
                team_id=event.team_id,
                municipality=event.municipality,
                income_source_at_referral=event.income_source.value,
                referred_at=event.referred_at,
            )
            for event in events
        ]
    )


async def schedule(uow: FollowUpUnitOfWork, event: ConsultationHeld) -> ScheduleDecision:
    """After a consultation: its plan check and outcome follow-up(s), FollowUpScheduled for
    each; once per case, whatever arrives twice."""
    await uow.cases.consulted(
        TrackedCase(
            case_ref=event.case_ref,
            referring_party=event.referring_party,
            referred_at=event.referred_at,
            team_id=event.team_id,
            municipality=event.municipality,
        )
    )
    case = await uow.cases.lock(event.case_ref)
    assert case is not None  # tracked just now
    decision = domain.schedule(
        event,
        case,
        await uow.followups.of_case(event.case_ref),
        await uow.consents.of(event.case_ref),
        uow.rules,
        uow.clock.now(),
    )
    if case.closed:
        log.info("consultation of a closed case: no follow-ups scheduled")
    for followup in decision.followups:
        await uow.followups.add(followup)
    await _emit(uow, decision.events)
    if decision.closure:
        await _apply_closure(uow, decision.closure)
    return decision


async def not_consulted(uow: FollowUpUnitOfWork, event: CaseNotConsulted) -> ClosureDecision:
    """A case that was not consulted is closed (its CaseReferred may come later)."""
    await uow.cases.consulted(
        TrackedCase(
            case_ref=event.case_ref,
            referring_party=event.referring_party,
            team_id=event.team_id,
            municipality=event.municipality,
        )
    )
    return await close(
        uow, event.case_ref, domain.exit_reason_when_not_consulted(event.reason), by=domain.BY_NOT_CONSULTED
    )


# --------------------------------------------------------------------------- the scheduler


async def tick(uow: FollowUpUnitOfWork, limit: int) -> int:
    """One round of the scheduler: act on up to ``limit`` follow-ups whose time has come
    (claimed: another instance takes others, none fires a follow-up twice). Returns how many."""
    now = uow.clock.now()
    claimed = await uow.followups.claim_due(now, limit)
    decision = domain.tick(claimed, now, uow.rules)
    for followup in decision.followups:
        await uow.followups.save(followup)
    await _emit(uow, decision.events)
    return len(claimed)


# --------------------------------------------------------------------------- recording


async def record(
    uow: FollowUpUnitOfWork,
    followup_id: str,
    answers: Answers,
    *,
    by_party: Party,
    by_user: str,
    channel: str,
    person_teams: frozenset[str] | None = None,
) -> RecordDecision:
    """Record a follow-up (again: a correction, a new revision; the same answers as the latest
    change nothing), announced as FollowUpCompleted. Returns the decision: its problems, or the
    record as announced (``completed``). ``person_teams``: a signed-in person's teams, the only
    cases they record on (None: the agency's system)."""
    case, followups, latest = None, [], None
    found = await uow.followups.get(followup_id)
    if found is not None and domain.visible_to(found, by_party):  # a stranger locks nothing
        bind_contextvars(case_ref=found.case_ref)
        case = await uow.cases.lock(found.case_ref)  # the case first, as every writer of it
        followups = await uow.followups.of_case(found.case_ref)
        latest = await uow.records.latest(followup_id)
    decision = domain.record(
        followup_id,
        answers,
        case=case,
        followups=followups,
        latest=latest,
        by_party=by_party,
        by_user=by_user,
        channel=channel,
        now=uow.clock.now(),
        person_teams=person_teams,
    )
    if decision.record is not None and decision.followup is not None:
        await uow.records.add(decision.record)
        await uow.followups.save(decision.followup)
        log.info(
            "follow-up recorded", kind=decision.followup.kind.value, revision=decision.record.revision, channel=channel
        )
    await _emit(uow, decision.events)
    if decision.closure:
        await _apply_closure(uow, decision.closure)
    return decision


# --------------------------------------------------------------------------- closure


async def close(uow: FollowUpUnitOfWork, case_ref: str, reason: ExitReason, *, by: ClosedBy) -> ClosureDecision:
    """Close the case (CaseClosed, saying who closed it) and cancel its open follow-ups; a case
    closed already or unknown stays as it is (the decision's ``refusal`` says which)."""
    case = await uow.cases.lock(case_ref)
    decision = domain.close(case, await uow.followups.of_case(case_ref), reason, uow.clock.now(), by)
    await _apply_closure(uow, decision)
    return decision


async def close_by_hand(
    uow: FollowUpUnitOfWork, case_ref: str, reason: ExitReason, *, by: Principal
) -> ClosureDecision:
    """A user closes a case with an exit reason: an officer of the referring party assigned to
    its team, or the team's coordinator. The user is recorded as its closer."""
    case = await uow.cases.lock(case_ref)
    decision = domain.close_by_hand(
        case,
        await uow.followups.of_case(case_ref),
        reason,
        uow.clock.now(),
        role=by.role,
        party=by.party,
        teams=by.teams,
        user=by.user_id,
    )
    await _apply_closure(uow, decision)
    return decision


async def consent_recorded(uow: FollowUpUnitOfWork, event: ConsentRecorded) -> None:
    await uow.cases.lock(event.case_ref)  # a case's consent changes, one at a time
    await uow.consents.given(event)


async def consent_withdrawn(uow: FollowUpUnitOfWork, event: ConsentWithdrawn) -> ClosureDecision:
    """When no party has the individual's consent any more, the case is closed."""
    case = await uow.cases.lock(event.case_ref)  # so that two withdrawals at once see each other
    await uow.consents.withdrawn(event)
    decision = domain.close_without_consent(
        case, await uow.followups.of_case(event.case_ref), await uow.consents.of(event.case_ref), uow.clock.now()
    )
    await _apply_closure(uow, decision)
    return decision


async def forget_closed_cases(uow: FollowUpUnitOfWork, cutoff: datetime) -> list[str]:
    """Retention (``shared.platform.retention``): a case closed before ``cutoff`` is deleted
    with its follow-ups, their records and its consent state (its figures are the metrics
    service's, kept as counts). Returns the cases deleted."""
    return await uow.cases.delete_closed_before(cutoff, RETENTION_BATCH)


# --------------------------------------------------------------------------- what a party sees


async def party_followups(uow: FollowUpUnitOfWork, party: Party, state: str, limit: int) -> list[FollowUp]:
    """A party's follow-ups in one state (``domain.LISTED_STATES``), earliest due first."""
    statuses, reminded = domain.LISTED_STATES[state]
    return await uow.followups.of_party(party, statuses, limit, reminded=reminded)


async def team_followups(uow: FollowUpUnitOfWork, team_id: str, state: str, limit: int) -> list[FollowUp]:
    """A team's follow-ups in one state, of every responsible party (for the team's rehab
    coordinator: which are due or overdue; no answers, no personal data), earliest due first."""
    statuses, reminded = domain.LISTED_STATES[state]
    return await uow.followups.of_team(team_id, statuses, limit, reminded=reminded)


async def followup_with_records(
    uow: FollowUpUnitOfWork, followup_id: str, party: Party | None
) -> tuple[FollowUp, list[FollowUpRecord]] | None:
    """A follow-up with every record (corrections keep the history); None when there is no
    such follow-up, or it is another party's."""
    found = await uow.followups.get(followup_id)
    if found is None or not domain.visible_to(found, party):
        return None
    return found, await uow.records.of_followup(followup_id)


# --------------------------------------------------------------------------- applying


async def _apply_closure(uow: FollowUpUnitOfWork, decision: ClosureDecision) -> None:
    if decision.case is None:
        return
    await uow.cases.close(decision.case)
    for followup in decision.cancelled:
        await uow.followups.save(followup)
    await _emit(uow, decision.events)
    log.info("case closed", reason=decision.case.exit_reason)


async def _emit(uow: FollowUpUnitOfWork, events: Iterable[Event]) -> None:
    """Each event in the order decided, under its case (the ordering key)."""
    for event in events:
        await uow.emit(event, ordering_key=event.case_ref)
