"""The consent replica every service keeps (``shared.platform.consent.Consents``), in memory."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from shared.contracts import CaseReferred, ConsentRecorded, ConsentWithdrawn
from shared.contracts.vocabulary import Party


class FakeConsents:
    """(case, party) → (status, changed at); an older change never overrides a newer one."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], tuple[str, datetime]] = {}

    def _set(self, case_ref: str, party: Party, status: str, changed_at: datetime) -> None:
        known = self.rows.get((case_ref, party.value))
        if known is None or known[1] <= changed_at:
            self.rows[(case_ref, party.value)] = (status, changed_at)

    async def record_initial(self, event: CaseReferred) -> dict[str, str]:
        for party in event.consented_parties:
            self._set(event.case_ref, party, "given", event.referred_at)
        return await self.of(event.case_ref)

    async def record_initial_many(self, events: Sequence[CaseReferred]) -> dict[str, dict[str, str]]:
        return {e.case_ref: await self.record_initial(e) for e in events}

    async def record_all(self, events: Sequence[CaseReferred]) -> None:
        for event in events:
            await self.record_initial(event)

    async def given(self, event: ConsentRecorded) -> None:
        self._set(event.case_ref, event.party, "given", event.recorded_at)

    async def withdrawn(self, event: ConsentWithdrawn) -> None:
        self._set(event.case_ref, event.party, "withdrawn", event.recorded_at)

    async def of(self, case_ref: str) -> dict[str, str]:
        return {party: status for (case, party), (status, _at) in sorted(self.rows.items()) if case == case_ref}

    async def of_cases(self, case_refs: list[str]) -> dict[str, dict[str, str]]:
        return {ref: await self.of(ref) for ref in case_refs}
