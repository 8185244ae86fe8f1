"""The follow-up service's unit of work in memory: its repositories as dicts and lists, the
events in ``events`` (``shared.platform.uow.FakeUnitOfWork``). For unit tests of the use cases
in ``services/followup/followups.py``: no PostgreSQL, no RabbitMQ.

Each repository keeps the semantics of its ``store.py`` counterpart that the use cases rely on
(a second follow-up of a kind is not added, a case's consent changes apply newest last, the
scheduler claims what is due, earliest first); locks have no meaning in one test's memory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from services.followup.domain import FollowUp, FollowUpRecord, Rules, TrackedCase
from shared.contracts.vocabulary import Party
from shared.platform.clock import Clock, SettableClock
from shared.platform.uow import FakeUnitOfWork, Message
from tests.fakes.consent import FakeConsents

AGENCY_USERS = {"trisam-af": "AF", "trisam-fk": "FK", "trisam-kommun": "KOMMUN", "trisam-region": "REGION"}


class FakeCases:
    def __init__(self) -> None:
        self.rows: dict[str, TrackedCase] = {}

    async def referred(self, cases: Sequence[TrackedCase]) -> None:
        for case in cases:
            known = self.rows.get(case.case_ref)
            self.rows[case.case_ref] = (
                case
                if known is None
                else replace(
                    known, income_source_at_referral=case.income_source_at_referral, referred_at=case.referred_at
                )
            )

    async def consulted(self, case: TrackedCase) -> None:
        known = self.rows.get(case.case_ref)
        self.rows[case.case_ref] = (
            case if known is None else replace(known, team_id=case.team_id, municipality=case.municipality)
        )

    async def lock(self, case_ref: str) -> TrackedCase | None:
        return self.rows.get(case_ref)

    async def close(self, case: TrackedCase) -> None:
        self.rows[case.case_ref] = replace(
            self.rows[case.case_ref],
            status=case.status,
            exit_reason=case.exit_reason,
            closed_at=case.closed_at,
            closed_by=case.closed_by,
        )


class FakeFollowUps:
    def __init__(self) -> None:
        self.rows: dict[str, FollowUp] = {}

    async def get(self, followup_id: str) -> FollowUp | None:
        return self.rows.get(followup_id)

    async def of_case(self, case_ref: str) -> list[FollowUp]:
        return sorted((f for f in self.rows.values() if f.case_ref == case_ref), key=lambda f: f.followup_id)

    async def add(self, followup: FollowUp) -> None:
        if not any((f.case_ref, f.kind) == (followup.case_ref, followup.kind) for f in self.rows.values()):
            self.rows[followup.followup_id] = followup

    async def save(self, followup: FollowUp) -> None:
        assert followup.followup_id in self.rows, "saved before it was added"
        self.rows[followup.followup_id] = followup

    async def claim_due(self, now: datetime, limit: int) -> list[FollowUp]:
        due = [f for f in self.rows.values() if f.next_action_at is not None and f.next_action_at <= now]
        return sorted(due, key=lambda f: f.next_action_at or now)[:limit]

    async def of_party(
        self, party: Party, statuses: Sequence[str], limit: int, reminded: bool | None = None
    ) -> list[FollowUp]:
        found = [
            f
            for f in self.rows.values()
            if f.responsible_party == party
            and f.status in statuses
            and (reminded is None or (f.reminders_sent > 0) == reminded)
        ]
        return sorted(found, key=lambda f: (f.due_on, f.followup_id))[:limit]


class FakeRecords:
    def __init__(self) -> None:
        self.rows: list[FollowUpRecord] = []

    async def latest(self, followup_id: str) -> FollowUpRecord | None:
        return max((r for r in self.rows if r.followup_id == followup_id), key=lambda r: r.revision, default=None)

    async def of_followup(self, followup_id: str) -> list[FollowUpRecord]:
        return sorted((r for r in self.rows if r.followup_id == followup_id), key=lambda r: r.revision)

    async def add(self, record: FollowUpRecord) -> None:
        assert (record.followup_id, record.revision) not in {(r.followup_id, r.revision) for r in self.rows}
        self.rows.append(record)


class FakeFollowUpUnitOfWork(FakeUnitOfWork):
    """What ``FollowUpUnitOfWork`` gives a use case, in memory. One instance may serve several
    use cases in a row (as consecutive transactions would); ``events`` collects all they emit."""

    def __init__(
        self,
        *,
        rules: Rules | None = None,
        clock: Clock | None = None,
        agency_users: Mapping[str, str] = AGENCY_USERS,
        message: Message | None = None,
    ) -> None:
        super().__init__("followup", message=message)
        self.cases = FakeCases()
        self.followups = FakeFollowUps()
        self.records = FakeRecords()
        self.consents = FakeConsents()
        self.rules = rules or Rules()
        self.clock = clock or SettableClock(datetime(2026, 11, 23, 11, tzinfo=UTC))
        self.agency_users = dict(agency_users)
