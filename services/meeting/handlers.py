"""Meeting handlers (thin): events in, use cases of ``agenda`` out."""

from __future__ import annotations

from shared.contracts import CaseClosed, CaseReferred, ConsentRecorded, ConsentWithdrawn
from shared.platform.handlers import HandlerTable

from . import agenda
from .uow import MeetingUnitOfWork

handlers = HandlerTable("meeting")


@handlers.on(CaseReferred)
async def on_case_referred(event: CaseReferred, uow: MeetingUnitOfWork) -> None:
    await agenda.case_referred(uow, event)


@handlers.on(ConsentRecorded)
async def on_consent_recorded(event: ConsentRecorded, uow: MeetingUnitOfWork) -> None:
    await agenda.consent_given(uow, event)


@handlers.on(ConsentWithdrawn)
async def on_consent_withdrawn(event: ConsentWithdrawn, uow: MeetingUnitOfWork) -> None:
    await agenda.consent_withdrawn(uow, event)


@handlers.on(CaseClosed)
async def on_case_closed(event: CaseClosed, uow: MeetingUnitOfWork) -> None:
    await agenda.case_closed(uow, event.case_ref)
