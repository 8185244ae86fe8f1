"""The consultation's use cases: the pre-meeting (its agenda with the case details each member
may see, and the record that it was held), and the record of each case's consultation, or
that it was not consulted. Recording runs with the team's row locked, like every change of
the team's agenda.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import structlog

from shared.contracts.vocabulary import NotConsultedReason, Party

from . import domain
from .agenda import locked_meeting
from .domain import AgendaEntry, Consultation
from .referral_api import ReferralApi
from .uow import MeetingUnitOfWork, announce

log = structlog.get_logger("meeting")


async def record_pre_meeting(uow: MeetingUnitOfWork, meeting_id: str, held_on: date, by: str) -> None:
    """The team's coordinator records that the pre-meeting was held (PreMeetingHeld, once)."""
    team, meeting = await locked_meeting(uow, meeting_id)
    held = domain.pre_meeting_held(team, meeting, held_on, uow.clock.now())
    if held is not None:
        await uow.meetings.record_pre_meeting(meeting_id, held_on, by)
        await announce(uow, [held])


async def record_consultation(
    uow: MeetingUnitOfWork, meeting_id: str, case_ref: str, record: Consultation | NotConsultedReason, by: str
) -> tuple[bool, dict[str, Any]]:
    """Record the consultation of a case (or that it was not consulted), announced as
    ConsultationHeld or CaseNotConsulted. The same record again is answered as before (False:
    nothing new); a different one is refused. Returns the record as published."""
    team, meeting = await locked_meeting(uow, meeting_id)
    now = uow.clock.now()
    decision = domain.consultation_decision(
        team=team,
        meeting=meeting,
        case=await uow.cases.get(case_ref),
        earlier=await uow.consultations.get(case_ref),
        record=record,
        now=now,
    )
    if decision.problems:
        raise decision.problems[0]
    assert decision.record is not None
    if decision.repeated:
        return False, decision.record.published
    assert decision.case_status is not None
    await uow.consultations.add(decision.record, by=by, now=now)
    await uow.cases.set_status(case_ref, decision.case_status, now, keep_meeting=True)
    await announce(uow, decision.events)
    log.info("consultation recorded", outcome=decision.record.outcome, meeting_id=meeting_id)
    return True, decision.record.published


async def pre_meeting_details(
    referral: ReferralApi, meeting_id: str, agenda: Sequence[AgendaEntry], party: Party | None, authorization: str
) -> dict[str, dict[str, Any]]:
    """Each case's question and identity for the caller, from the referral service with the
    caller's own token (it decides, and logs the read under the caller's name), where the
    individual has consented for the caller's party; otherwise why it is withheld."""
    details = {}
    for entry in agenda:
        if not domain.may_see_details(entry, party):
            details[entry.case.case_ref] = {"withheld": "no_consent"}
            continue
        details[entry.case.case_ref] = await referral.case_details(
            entry.case.case_ref, authorization=authorization, purpose=f"pre-meeting {meeting_id}"
        )
    return details
