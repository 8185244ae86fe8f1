"""The referral service's unit of work in memory: its repositories as dicts and lists, the events
in ``events`` (``shared.platform.uow.FakeUnitOfWork``). For unit tests of the use cases in
``services/referral/use_cases.py``: no PostgreSQL, no RabbitMQ.

Each repository keeps the semantics of its ``store.py`` counterpart that the use cases rely on
(the unique indexes on a party's agency reference and on a person's one open case, the newest
team revision wins, histories oldest first); locks have no meaning in one test's memory.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from services.referral.domain import AccessEntry, Case, ConsentChange, IntakeFacts, RejectionRecord
from services.referral.uow import Dependencies
from services.referral.vault import Keyring, SealedCase
from shared.contracts.vocabulary import Party
from shared.platform.clock import Clock, SettableClock
from shared.platform.teams import Team, load_teams
from shared.platform.uow import FakeUnitOfWork, Message

AGENCY_USERS = {"trisam-af": "AF", "trisam-fk": "FK", "trisam-kommun": "KOMMUN", "trisam-region": "REGION"}
TEST_KEYS = "k1:" + base64.b64encode(b"\x01" * 32).decode()


class FakeCases:
    def __init__(self, vault: FakeVault, consents: FakeConsentHistory) -> None:
        self.rows: dict[str, Case] = {}
        self.vault = vault  # the one join of store.py: which closed cases still hold personal data
        self.consents = consents  # (a case opened with its vault row and consents: one statement there)

    async def open(self, case: Case, sealed: SealedCase, consents: Sequence[ConsentChange]) -> bool:
        if not await self._add(case):
            return False
        await self.vault.put(case.case_ref, sealed)
        await self.consents.add(*consents)
        return True

    async def _add(self, case: Case) -> bool:
        refused = any(
            known.case_ref == case.case_ref
            or (known.referring_party, known.agency_ref) == (case.referring_party, case.agency_ref)
            or (
                case.person_pseudonym is not None
                and known.person_pseudonym == case.person_pseudonym
                and known.closed_at is None
            )
            for known in self.rows.values()
        )
        if not refused:
            self.rows[case.case_ref] = case
        return not refused

    async def get(self, case_ref: str) -> Case | None:
        return self.rows.get(case_ref)

    async def lock(self, case_ref: str) -> Case | None:
        return self.rows.get(case_ref)

    async def accepted_for(self, party: Party, agency_ref: str) -> Case | None:
        return next((c for c in self.rows.values() if (c.referring_party, c.agency_ref) == (party, agency_ref)), None)

    async def has_open_case(self, pseudonym: bytes) -> bool:
        return any(c.person_pseudonym == pseudonym and c.closed_at is None for c in self.rows.values())

    async def close(self, case: Case) -> None:
        self.rows[case.case_ref] = replace(
            self.rows[case.case_ref],
            closed_at=case.closed_at,
            exit_reason=case.exit_reason,
            closed_by=case.closed_by,
            closed_by_party=case.closed_by_party,
        )

    async def closed_holding_personal_data(self, closed_before: datetime) -> list[Case]:
        held = {ref for ref, sealed in self.vault.rows.items() if sealed.erased_at is None}
        closed = [
            c
            for c in self.rows.values()
            if c.closed_at is not None and c.closed_at < closed_before and c.case_ref in held
        ]
        return sorted(closed, key=lambda c: c.closed_at or datetime.min)

    async def forget_pseudonyms(self, case_refs: Sequence[str]) -> None:
        for case_ref in case_refs:
            self.rows[case_ref] = replace(self.rows[case_ref], person_pseudonym=None)


class FakeIntakeLookups:
    def __init__(self, cases: FakeCases, teams: FakeTeamRegistry) -> None:
        self.cases, self.teams = cases, teams

    async def facts(
        self, pseudonym: bytes | None, party: Party, agency_ref: str | None, team_id: str | None
    ) -> IntakeFacts:
        return IntakeFacts(
            earlier=await self.cases.accepted_for(party, agency_ref) if agency_ref else None,
            municipality=await self.teams.municipality_of(team_id) if team_id else None,
            person_has_open_case=pseudonym is not None and await self.cases.has_open_case(pseudonym),
        )


class FakeVault:
    def __init__(self, clock: Clock) -> None:
        self.rows: dict[str, SealedCase] = {}
        self.clock = clock

    async def put(self, case_ref: str, sealed: SealedCase) -> None:
        if case_ref not in self.rows or self.rows[case_ref].erased_at is None:
            self.rows[case_ref] = sealed

    async def get(self, case_ref: str) -> SealedCase:
        return self.rows.get(case_ref, SealedCase())

    async def not_under(self, master_key_id: str, limit: int) -> list[tuple[str, SealedCase]]:
        due = [
            (ref, sealed)
            for ref, sealed in sorted(self.rows.items())
            if sealed.erased_at is None and (sealed.data_key is None or sealed.data_key.key_id != master_key_id)
        ]
        return due[:limit]

    async def erase(self, case_refs: Sequence[str]) -> None:
        for case_ref in case_refs:
            if self.rows[case_ref].erased_at is None:
                self.rows[case_ref] = SealedCase({}, self.clock.now())


class FakeConsentHistory:
    def __init__(self) -> None:
        self.rows: list[ConsentChange] = []

    async def add(self, *changes: ConsentChange) -> None:
        self.rows.extend(changes)

    async def of(self, case_ref: str) -> list[ConsentChange]:
        return [c for c in self.rows if c.case_ref == case_ref]


class FakeRejections:
    def __init__(self) -> None:
        self.rows: list[RejectionRecord] = []

    async def add(self, rejection: RejectionRecord) -> None:
        self.rows.append(rejection)

    async def of(self, party: Party, limit: int = 100) -> list[RejectionRecord]:
        return [r for r in reversed(self.rows) if r.party == party][:limit]


class FakeAccessLog:
    def __init__(self, clock: Clock) -> None:
        self.rows: list[AccessEntry] = []
        self.clock = clock

    async def add(self, entry: AccessEntry) -> None:
        self.rows.append(replace(entry, read_at=self.clock.now()))

    async def of(self, case_ref: str) -> list[AccessEntry]:
        return [e for e in self.rows if e.case_ref == case_ref]


class FakeTeamRegistry:
    def __init__(self, from_file: Mapping[str, Team]) -> None:
        self.from_file = from_file
        self.registered: dict[str, tuple[str, int]] = {}  # team -> (municipality, revision)

    async def municipality_of(self, team_id: str) -> str | None:
        if team_id in self.registered:
            return self.registered[team_id][0]
        team = self.from_file.get(team_id)
        return team.municipality if team else None

    async def register(self, team_id: str, municipality: str, revision: int, updated_at: datetime) -> None:
        if team_id not in self.registered or self.registered[team_id][1] < revision:
            self.registered[team_id] = (municipality, revision)


def dependencies(clock: Clock | None = None, *, retention_days: int = 730) -> Dependencies:
    """The service's dependencies for a test: the registry file's teams, a test key, a clock."""
    return Dependencies(
        teams=load_teams(),
        keyring=Keyring.from_config(TEST_KEYS),
        pseudonym_key=b"test-pseudonyms",
        clock=clock or SettableClock(datetime(2026, 12, 1, 9, 0, tzinfo=UTC)),
        agency_users=AGENCY_USERS,
        retention=timedelta(days=retention_days),
    )


class FakeReferralUnitOfWork(FakeUnitOfWork):
    """``ReferralUnitOfWork`` in memory. One instance may stand for several units of work in a
    row (a test's whole story): its repositories are the database."""

    def __init__(self, deps: Dependencies | None = None, *, message: Message | None = None) -> None:
        super().__init__("referral", message=message)
        self.deps = deps or dependencies()
        self.vault = FakeVault(self.deps.clock)
        self.consents = FakeConsentHistory()
        self.cases = FakeCases(self.vault, self.consents)
        self.rejections = FakeRejections()
        self.access_log = FakeAccessLog(self.deps.clock)
        self.teams = FakeTeamRegistry(self.deps.teams)
        self.intake = FakeIntakeLookups(self.cases, self.teams)
