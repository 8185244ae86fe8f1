"""The referral service's use cases, one shape for all: load the facts through the unit of work's
repositories, ask a pure rule in ``domain.py`` what to do, and apply its decision in the same
unit of work (store it, emit its events). The AMQP handlers and the HTTP routes call these; one
set of rules for both ways in. No SQL here, and no connection: that is ``store.py``'s.

Replies to an agency (over AMQP a ReferralAccepted, over HTTP a 201) are the callers' business;
the use cases return the outcome.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

import structlog

from shared.contracts import CaseClosed, RecordConsent, TeamUpdated, WithdrawConsent
from shared.contracts.vocabulary import Party
from shared.platform.auth import Principal
from shared.platform.problems import Problem

from . import domain, vault
from .domain import (
    Accepted,
    AccessEntry,
    Case,
    ConsentChange,
    ConsentDecision,
    IntakeFacts,
    Referral,
    Refusal,
    Rejected,
    RejectionRecord,
    Submission,
)
from .uow import ReferralUnitOfWork

log = structlog.get_logger("referral")


# --------------------------------------------------------------------------- referral intake


async def submit_referral(
    uow: ReferralUnitOfWork,
    *,
    party: Party,
    submission: Submission,
    channel: str,
    by_user: str | None = None,
    person_teams: frozenset[str] | None = None,
) -> Accepted | Rejected:
    """Accept or reject one referral (every problem at once); the same referral again under the
    same agency reference gets the same answer. ``by_user``: who submits it (the recorder of its
    consents); ``person_teams``: a signed-in person's teams, the only ones they refer to."""
    now = uow.deps.clock.now()
    referral = domain.read_referral(submission, now=now, pseudonym_key=uow.deps.pseudonym_key)
    facts = await _intake_facts(uow, party, referral)
    scope = {"by_user": by_user, "person_teams": person_teams}
    decision = domain.decide_referral(referral, facts, party=party, now=now, case_ref=domain.new_case_ref(), **scope)
    if isinstance(decision, Accepted) and decision.case is not None:
        if await _open_case(uow, decision, decision.case, channel):
            return decision
        # A unique index refused the case: a concurrent submission got there first, of this agency
        # reference (then the same answer) or of this person under another one. Decide again on
        # the facts as they are now (this gives no new case: the person has one open).
        assert referral.command is not None
        facts = replace(
            facts, earlier=await uow.cases.accepted_for(party, referral.command.agency_ref), person_has_open_case=True
        )
        decision = domain.decide_referral(
            referral, facts, party=party, now=now, case_ref=domain.new_case_ref(), **scope
        )
    if isinstance(decision, Rejected):
        await uow.rejections.add(decision.record(party, channel))
        log.info(
            "referral rejected", referring_party=party.value, channel=channel, codes=[p.code for p in decision.problems]
        )
    return decision


async def _intake_facts(uow: ReferralUnitOfWork, party: Party, referral: Referral) -> IntakeFacts:
    """The person's open case, the agency reference's earlier acceptance and the team's
    municipality, from one snapshot: a concurrent submission of this very referral is seen in
    both or in neither (then the case's unique index refuses the second, see submit_referral)."""
    return await uow.intake.facts(
        referral.pseudonym,
        party,
        referral.command.agency_ref if referral.command else None,
        referral.team_id or None,
    )


async def _open_case(uow: ReferralUnitOfWork, accepted: Accepted, case: Case, channel: str) -> bool:
    """Store the new case, its sealed personal data and consents, and announce it; False (and
    nothing stored) if a unique index refused the case."""
    personal = accepted.personal_data.fields() if accepted.personal_data else {}
    sealed = vault.seal(uow.deps.keyring, case.case_ref, personal)
    if not await uow.cases.open(case, sealed, accepted.consents):
        return False
    for event in accepted.events:
        await uow.emit(event, ordering_key=case.case_ref)
    log.info("referral accepted", case_ref=case.case_ref, referring_party=case.referring_party.value, channel=channel)
    return True


async def cases_of(uow: ReferralUnitOfWork, party: Party, limit: int) -> list[Case]:
    """The party's referrals, the latest first (references and dates; no personal data)."""
    return await uow.cases.of_party(party, limit)


async def rejections_of(uow: ReferralUnitOfWork, party: Party) -> list[RejectionRecord]:
    """The party's latest rejected submissions (codes and fields; no personal data)."""
    return await uow.rejections.of(party)


# --------------------------------------------------------------------------- consent


async def record_consent(
    uow: ReferralUnitOfWork,
    *,
    by: Party,
    by_user: str,
    command: RecordConsent,
    coordinator_of: frozenset[str] = frozenset(),
    person_teams: frozenset[str] | None = None,
) -> list[Problem]:
    """Record the individual's consent for a party; the problems if refused. ``by_user``: who
    records it (kept in the history). ``coordinator_of``: the teams whose coordinator asks (a
    coordinator records it for any party; it gives the coordinator no access of that party).
    ``person_teams``: a signed-in person's teams, whose cases alone they may record it on."""
    case = await uow.cases.lock(command.case_ref)
    history = await uow.consents.of(case.case_ref) if case else []
    decision = domain.decide_consent_given(
        case,
        history,
        by=by,
        by_user=by_user,
        command=command,
        now=uow.deps.clock.now(),
        coordinator_of=coordinator_of,
        person_teams=person_teams,
    )
    return await _apply_consent(uow, decision)


async def withdraw_consent(
    uow: ReferralUnitOfWork,
    *,
    by: Party,
    by_user: str,
    command: WithdrawConsent,
    coordinator_of: frozenset[str] = frozenset(),
    person_teams: frozenset[str] | None = None,  # (a withdrawal is not scoped to teams)
) -> list[Problem]:
    """Withdraw the consent for a party (every service is told); the problems if refused."""
    case = await uow.cases.lock(command.case_ref)
    decision = domain.decide_consent_withdrawn(
        case, by=by, by_user=by_user, command=command, now=uow.deps.clock.now(), coordinator_of=coordinator_of
    )
    return await _apply_consent(uow, decision)


async def _apply_consent(uow: ReferralUnitOfWork, decision: ConsentDecision) -> list[Problem]:
    if decision.change is not None:
        await uow.consents.add(decision.change)
        for event in decision.events:
            await uow.emit(event, ordering_key=decision.change.case_ref)
        if decision.change.action == "withdrawn":
            log.info("consent withdrawn", case_ref=decision.change.case_ref, party=decision.change.party.value)
    return list(decision.problems)


# --------------------------------------------------------------------------- reads of a case


@dataclass(frozen=True)
class CaseDetails:
    """A case with its personal data in clear, for a reader the rules allowed (the read is in the
    access log). ``erased_at``: when the personal data was destroyed, if it was."""

    case: Case
    personal: dict[str, str]
    erased_at: datetime | None

    def __repr__(self) -> str:  # never the personal data in a log or traceback
        return f"CaseDetails(case_ref={self.case.case_ref!r}, <redacted>)"


def _reader(principal: Principal) -> domain.Reader:
    assert principal.party is not None  # the case roles all have a party
    return domain.Reader(
        user_id=principal.user_id, party=principal.party, role=principal.role.value, teams=principal.teams
    )


async def read_case_details(
    uow: ReferralUnitOfWork, principal: Principal, case_ref: str, purpose: str
) -> CaseDetails | Refusal:
    """The case's personal data, for team members whose party has the individual's consent. Every
    read, granted or denied, is written to the access log in this unit of work: a refusal is
    returned, not raised, so that the caller commits the log entry."""
    case = await uow.cases.get(case_ref)
    history = await uow.consents.of(case.case_ref) if case else []
    decision = domain.decide_details_read(_reader(principal), case, history, purpose=purpose)
    if decision.entry is not None:
        await uow.access_log.add(decision.entry)
    if decision.refusal is not None or case is None:
        return decision.refusal or domain.CASE_NOT_FOUND
    sealed = await uow.vault.get(case.case_ref)
    try:
        return CaseDetails(case, vault.reveal(uow.deps.keyring, case.case_ref, sealed), sealed.erased_at)
    except vault.VaultError:  # its key destroyed: as good as erased
        log.error("vault field could not be opened", case_ref=case.case_ref)
        return CaseDetails(case, {}, sealed.erased_at or case.referred_at)


async def consent_history(
    uow: ReferralUnitOfWork, principal: Principal, case_ref: str
) -> tuple[Case, list[ConsentChange]] | Refusal:
    """A case's consent history per party (no personal data)."""
    case = await uow.cases.get(case_ref)
    refusal = domain.may_see_consents(_reader(principal), case)
    if refusal is not None or case is None:
        return refusal or domain.CASE_NOT_FOUND
    return case, await uow.consents.of(case.case_ref)


async def access_log(uow: ReferralUnitOfWork, case_ref: str) -> tuple[Case, list[AccessEntry]] | Refusal:
    """Who read the case's personal data, when and why (the individual's right to know)."""
    case = await uow.cases.get(case_ref)
    if case is None:
        return domain.CASE_NOT_FOUND
    return case, await uow.access_log.of(case.case_ref)


# --------------------------------------------------------------------------- closure, retention, teams


async def close_case(uow: ReferralUnitOfWork, event: CaseClosed) -> None:
    """The case is closed (CaseClosed, with who closed it): the person may be referred again,
    and the retention period of its personal data starts."""
    closed = domain.decide_closure(
        await uow.cases.lock(event.case_ref),
        reason=event.reason.value,
        closed_at=event.closed_at,
        closed_by=event.closed_by,
        closed_by_party=event.closed_by_party,
    )
    if closed is not None:
        await uow.cases.close(closed)


async def erase_expired_personal_data(uow: ReferralUnitOfWork, cutoff: datetime) -> list[str]:
    """Retention (``shared.platform.retention``): destroy the personal data (and the pseudonym)
    of the cases closed before ``cutoff``; returns their case references."""
    closed = await uow.cases.closed_holding_personal_data(cutoff)
    due = domain.due_for_erasure(closed, cutoff=cutoff)
    if due:
        await uow.vault.erase(due)
        await uow.cases.forget_pseudonyms(due)
    return due


async def rewrap_vault(uow: ReferralUnitOfWork, limit: int = 500) -> int:
    """Key rotation: up to ``limit`` live cases not yet under the current master key get their
    data key wrapped by it (or, sealed before data keys, a data key of their own). Once none is
    left, the old master key can be removed, and every copy sealed under it (backups of erased
    cases included) is gone for good. Returns how many were re-wrapped."""
    keyring = uow.deps.keyring
    moved = 0
    for case_ref, sealed in await uow.vault.not_under(keyring.current_key_id, limit):
        try:
            rewrapped = vault.rewrap(keyring, case_ref, sealed)
        except vault.VaultError:  # its master key removed already: nothing left to protect
            log.error("vault row cannot be opened to re-wrap it", case_ref=case_ref)
            continue
        await uow.vault.put(case_ref, rewrapped)
        moved += 1
    return moved


async def register_team(uow: ReferralUnitOfWork, event: TeamUpdated) -> None:
    """A team as the meeting service's registry announces it: referrals to a team created after
    start-up are accepted, and a changed municipality is used."""
    await uow.teams.register(event.team_id, event.municipality, event.revision, event.updated_at)
