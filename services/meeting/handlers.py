"""Meeting handlers (thin): events in, use cases of ``scheduling`` out."""

from __future__ import annotations

from shared.contracts import CaseClosed, CaseReferred, ConsentRecorded, ConsentWithdrawn
from shared.platform import consent
from shared.platform.handlers import HandlerTable

from .uow import MeetingUnitOfWork

handlers = HandlerTable("meeting")


@handlers.on(CaseReferred)
async def on_case_referred(event: CaseReferred, uow: MeetingUnitOfWork) -> None:
    await uow.scheduling.case_referred(uow.conn, uow.emit, event)


@handlers.on(ConsentRecorded)
async def on_consent_recorded(event: ConsentRecorded, uow: MeetingUnitOfWork) -> None:
    await consent.consent_recorded(uow.conn, event)
    await uow.scheduling.consent_changed(uow.conn, uow.emit, event.case_ref)


@handlers.on(ConsentWithdrawn)
async def on_consent_withdrawn(event: ConsentWithdrawn, uow: MeetingUnitOfWork) -> None:
    await consent.consent_withdrawn(uow.conn, event)
    await uow.scheduling.consent_changed(uow.conn, uow.emit, event.case_ref)


@handlers.on(CaseClosed)
async def on_case_closed(event: CaseClosed, uow: MeetingUnitOfWork) -> None:
    await uow.scheduling.case_closed(uow.conn, uow.emit, event.case_ref)
