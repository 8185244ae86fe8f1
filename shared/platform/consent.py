"""Consent as every service sees it (one mechanism, used by all consuming services).

The referral service owns consent; it announces the parties that consented in ``CaseReferred``
and every later change as ``ConsentRecorded`` / ``ConsentWithdrawn``. Each service applies them
to its own ``consent_state`` table (shared migration 002), logs that it has, and reads it
(``Consents.of``) before it gives a party any detail of a case. A late-arriving older change never
overrides a newer one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import structlog

from shared.contracts import CaseReferred, ConsentRecorded, ConsentWithdrawn
from shared.platform.db import Conn

log = structlog.get_logger("consent")

_UPSERT = """
INSERT INTO consent_state (case_ref, party, status, changed_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (case_ref, party) DO UPDATE
   SET status = EXCLUDED.status, changed_at = EXCLUDED.changed_at, applied_at = now()
 WHERE consent_state.changed_at <= EXCLUDED.changed_at
"""


async def record_initial(conn: Conn, event: CaseReferred) -> dict[str, str]:
    """The consents given at referral, in one statement, which also answers each party's
    status for the case after it (as ``consents_of``: a later withdrawal that arrived first
    stays)."""
    rows = await conn.fetch(
        """WITH given AS (
               INSERT INTO consent_state (case_ref, party, status, changed_at)
               SELECT $1, party, 'given', $3 FROM unnest($2::text[]) AS party
               ON CONFLICT (case_ref, party) DO UPDATE
                  SET status = EXCLUDED.status, changed_at = EXCLUDED.changed_at, applied_at = now()
                WHERE consent_state.changed_at <= EXCLUDED.changed_at
               RETURNING party, status)
           SELECT party, status FROM given
           UNION ALL  -- the rows it did not change, as they were (the statement's snapshot)
           SELECT party, status FROM consent_state
            WHERE case_ref = $1 AND party NOT IN (SELECT party FROM given)""",
        event.case_ref,
        sorted({party.value for party in event.consented_parties}),
        event.referred_at,
    )
    return {r["party"]: r["status"] for r in rows}


async def _set(conn: Conn, case_ref: str, party: str, status: str, changed_at: datetime) -> None:
    await conn.execute(_UPSERT, case_ref, party, status, changed_at)


async def consent_recorded(conn: Conn, event: ConsentRecorded) -> None:
    await _set(conn, event.case_ref, event.party.value, "given", event.recorded_at)
    log.info("consent applied", party=event.party.value)


async def consent_withdrawn(conn: Conn, event: ConsentWithdrawn) -> None:
    await _set(conn, event.case_ref, event.party.value, "withdrawn", event.recorded_at)
    log.info("consent withdrawal applied", party=event.party.value)


async def apply_all(conn: Conn, events: list[object]) -> None:
    """The consent changes among these events (``CaseReferred``'s consents, ``ConsentRecorded``,
    ``ConsentWithdrawn``; others ignored) in one statement, with the same rule: a change older
    than the one held is not applied. Two changes of one case's party: the later one."""
    latest: dict[tuple[str, str], tuple[str, datetime]] = {}

    def change(case_ref: str, party: str, status: str, at: datetime) -> None:
        held = latest.get((case_ref, party))
        if held is None or held[1] <= at:
            latest[(case_ref, party)] = (status, at)

    for event in events:
        if isinstance(event, CaseReferred):
            for party in event.consented_parties:
                change(event.case_ref, party.value, "given", event.referred_at)
        elif isinstance(event, (ConsentRecorded, ConsentWithdrawn)):
            status = "given" if isinstance(event, ConsentRecorded) else "withdrawn"
            change(event.case_ref, event.party.value, status, event.recorded_at)
    if not latest:
        return
    keys = sorted(latest)  # (a fixed order of the rows locked)
    await conn.execute(
        """INSERT INTO consent_state (case_ref, party, status, changed_at)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])
           ON CONFLICT (case_ref, party) DO UPDATE
              SET status = EXCLUDED.status, changed_at = EXCLUDED.changed_at, applied_at = now()
            WHERE consent_state.changed_at <= EXCLUDED.changed_at""",
        [case_ref for case_ref, _ in keys],
        [party for _, party in keys],
        [latest[key][0] for key in keys],
        [latest[key][1] for key in keys],
    )
    log.info("consents applied", changes=len(keys))


async def consents_of(conn: Conn, case_ref: str) -> dict[str, str]:
    """Each party's consent status for the case ("given" or "withdrawn"; absent: never given)."""
    rows = await conn.fetch("SELECT party, status FROM consent_state WHERE case_ref = $1", case_ref)
    return {r["party"]: r["status"] for r in rows}


class Consents:
    """The service's replica of each party's consent, as a repository of its unit of work
    (``uow.consents``): the same rules as the functions above."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    async def record_initial(self, event: CaseReferred) -> dict[str, str]:
        """The consents given at referral; each party's status for the case after them."""
        return await record_initial(self.conn, event)

    async def record_initial_many(self, events: Sequence[CaseReferred]) -> dict[str, dict[str, str]]:
        """``record_initial`` for several cases: their consents in one statement, then each
        case's status in one more (one case: in one, as ``record_initial``)."""
        if len(events) == 1:
            return {events[0].case_ref: await record_initial(self.conn, events[0])}
        await apply_all(self.conn, list(events))
        return await self.of_cases(sorted({e.case_ref for e in events}))

    async def record_all(self, events: Sequence[CaseReferred]) -> None:
        """The consents given at referral of several cases, in one statement."""
        await apply_all(self.conn, list(events))

    async def given(self, event: ConsentRecorded) -> None:
        await consent_recorded(self.conn, event)

    async def withdrawn(self, event: ConsentWithdrawn) -> None:
        await consent_withdrawn(self.conn, event)

    async def of(self, case_ref: str) -> dict[str, str]:
        """Each party's consent status for the case ("given" or "withdrawn"; absent: never given)."""
        return await consents_of(self.conn, case_ref)

    async def of_cases(self, case_refs: list[str]) -> dict[str, dict[str, str]]:
        """The same for several cases at once."""
        rows = await self.conn.fetch(
            "SELECT case_ref, party, status FROM consent_state WHERE case_ref = ANY($1)", case_refs
        )
        result: dict[str, dict[str, str]] = {ref: {} for ref in case_refs}
        for r in rows:
            result[r["case_ref"]][r["party"]] = r["status"]
        return result
