"""The meeting service's unit of work in memory: its repositories as dicts, the events in
``events`` (``shared.platform.uow.FakeUnitOfWork``). For unit tests of the use cases in
``services/meeting/calendar.py``, ``agenda.py`` and ``consultation.py``: no PostgreSQL, no
RabbitMQ.

Each repository keeps the semantics of its ``store.py`` counterpart that the use cases rely on
(one meeting per team and date, a meeting cancelled for a holiday or a calendar change can
reopen, the queue is the queued cases not on a fixed agenda in arrival order, a case's consent
changes apply newest last); locks have no meaning in one test's memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime

from services.meeting.domain import (
    ALL_TEAMS,
    AgendaEntry,
    Case,
    CaseStatus,
    ConsultationRecord,
    Meeting,
    Placement,
    SkipDate,
    Team,
    Waiting,
)
from shared.contracts import CaseReferred
from shared.contracts.vocabulary import CancellationReason
from shared.platform.clock import Clock, SettableClock
from shared.platform.uow import FakeUnitOfWork, Message
from tests.fakes.consent import FakeConsents


class FakeTeams:
    def __init__(self) -> None:
        self.rows: dict[str, Team] = {}

    async def lock(self, team_id: str, *, skip_locked: bool = False) -> Team | None:
        return self.rows.get(team_id)

    async def lock_many(self, team_ids: list[str]) -> dict[str, Team]:
        return {t: self.rows[t] for t in sorted(team_ids) if t in self.rows}

    async def get(self, team_id: str) -> Team | None:
        return self.rows.get(team_id)

    async def all(self) -> list[Team]:
        return sorted(self.rows.values(), key=lambda t: (t.municipality, t.team_id))

    async def ids(self) -> list[str]:
        return sorted(self.rows)

    async def add(self, team: Team) -> bool:
        if team.team_id in self.rows:
            return False
        self.rows[team.team_id] = team
        return True

    async def update(self, team: Team) -> None:
        assert team.team_id in self.rows, "updated before it was added"
        self.rows[team.team_id] = team


class FakeSkipDates:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, date], SkipDate] = {}

    async def of_team(self, team_id: str) -> set[date]:
        return {day for (team, day) in self.rows if team in (team_id, ALL_TEAMS)}

    async def all(self) -> list[SkipDate]:
        return sorted(self.rows.values(), key=lambda s: (s.on_date, s.team_id))

    async def add(self, skip: SkipDate) -> None:
        self.rows[(skip.team_id, skip.on_date)] = skip

    async def remove(self, team_id: str, on_date: date) -> bool:
        return self.rows.pop((team_id, on_date), None) is not None


class FakeMeetings:
    def __init__(self) -> None:
        self.rows: dict[str, Meeting] = {}
        self.cancelled: dict[str, tuple[str | None, str]] = {}  # meeting -> (note, by)
        self.pre_meetings_recorded_by: dict[str, str] = {}

    async def add(self, meeting: Meeting) -> bool:
        if any((m.team_id, m.meeting_date) == (meeting.team_id, meeting.meeting_date) for m in self.rows.values()):
            return False
        self.rows[meeting.meeting_id] = meeting
        return True

    async def reopen(self, meeting: Meeting) -> bool:
        for known in self.rows.values():
            if (
                (known.team_id, known.meeting_date) == (meeting.team_id, meeting.meeting_date)
                and known.status == "cancelled"
                and known.cancel_reason in ("holiday", "rescheduled")
            ):
                self.rows[known.meeting_id] = replace(
                    known,
                    status="open",
                    cancel_reason=None,
                    starts_at=meeting.starts_at,
                    cutoff_at=meeting.cutoff_at,
                    capacity=meeting.capacity,
                )
                return True
        return False

    async def get(self, meeting_id: str) -> Meeting | None:
        return self.rows.get(meeting_id)

    async def on_date(self, team_id: str, day: date) -> Meeting | None:
        return next(
            (
                m
                for m in self.rows.values()
                if (m.team_id, m.meeting_date) == (team_id, day) and m.status != "cancelled"
            ),
            None,
        )

    async def dates(self, meeting_ids: Iterable[str]) -> dict[str, date]:
        return {mid: self.rows[mid].meeting_date for mid in meeting_ids if mid in self.rows}

    def _of(self, team_id: str, keep) -> list[Meeting]:
        return sorted((m for m in self.rows.values() if m.team_id == team_id and keep(m)), key=lambda m: m.meeting_date)

    async def open(self, team_id: str) -> list[Meeting]:
        return self._of(team_id, lambda m: m.status == "open")

    async def open_many(self, team_ids: Sequence[str]) -> dict[str, list[Meeting]]:
        return {team_id: await self.open(team_id) for team_id in team_ids}

    async def fixed_ahead(self, team_id: str, today: date) -> list[Meeting]:
        return self._of(team_id, lambda m: m.status == "closed" and m.meeting_date >= today)

    async def of_team(self, team_id: str, since: date, until: date) -> list[Meeting]:
        return self._of(team_id, lambda m: since <= m.meeting_date <= until)

    async def last_date(self, team_id: str) -> date | None:
        held = self._of(team_id, lambda m: m.status != "cancelled")
        return held[-1].meeting_date if held else None

    async def close(self, meeting_id: str) -> None:
        self.rows[meeting_id] = replace(self.rows[meeting_id], status="closed")

    async def cancel(
        self, meeting_id: str, *, reason: CancellationReason, note: str | None, by: str, now: datetime
    ) -> None:
        self.rows[meeting_id] = replace(self.rows[meeting_id], status="cancelled", cancel_reason=reason.value)
        self.cancelled[meeting_id] = (note, by)

    async def retime(self, meeting: Meeting) -> None:
        self.rows[meeting.meeting_id] = replace(
            self.rows[meeting.meeting_id],
            starts_at=meeting.starts_at,
            cutoff_at=meeting.cutoff_at,
            capacity=meeting.capacity,
        )

    async def record_pre_meeting(self, meeting_id: str, held_on: date, by: str) -> None:
        self.rows[meeting_id] = replace(self.rows[meeting_id], pre_meeting_held_on=held_on)
        self.pre_meetings_recorded_by[meeting_id] = by


class FakeCases:
    def __init__(self, meetings: FakeMeetings) -> None:
        self.rows: dict[str, Case] = {}
        self.meetings = meetings
        self.updated_at: dict[str, datetime] = {}
        self.closed_at: dict[str, datetime] = {}

    async def add(self, referred: CaseReferred, status: CaseStatus, now: datetime) -> bool:
        if referred.case_ref in self.rows:
            return False
        self.rows[referred.case_ref] = Case(
            referred.case_ref,
            referred.team_id,
            referred.municipality,
            referred.referring_party,
            referred.referred_at,
            queue_seq=len(self.rows) + 1,
            status=status,
            meeting_id=None,
        )
        return True

    async def add_many(self, arriving: Sequence[tuple[CaseReferred, CaseStatus]], now: datetime) -> set[str]:
        return {referred.case_ref for referred, status in arriving if await self.add(referred, status, now)}

    async def get(self, case_ref: str) -> Case | None:
        return self.rows.get(case_ref)

    async def get_many(self, case_refs: Iterable[str]) -> list[Case]:
        return sorted((self.rows[ref] for ref in set(case_refs) if ref in self.rows), key=lambda c: c.queue_seq)

    async def queue(self, team_id: str) -> list[Waiting]:
        def on_open_agenda(case: Case) -> bool:
            return case.meeting_id is None or self.meetings.rows[case.meeting_id].status == "open"

        return [
            Waiting(c.case_ref, c.queue_seq, c.meeting_id)
            for c in self._in_order()
            if c.team_id == team_id and c.status == "queued" and on_open_agenda(c)
        ]

    async def agenda_counts_many(
        self, team_ids: Sequence[str], *, excluding: Sequence[str] = ()
    ) -> dict[str, dict[str | None, int]]:
        counts: dict[str, dict[str | None, int]] = {}
        for team_id in team_ids:
            counts[team_id] = {}
            for waiting in await self.queue(team_id):
                if waiting.case_ref not in excluding:
                    counts[team_id][waiting.meeting_id] = counts[team_id].get(waiting.meeting_id, 0) + 1
        return counts

    async def on_meeting(self, meeting_id: str) -> list[Case]:
        return [c for c in self._in_order() if c.meeting_id == meeting_id and c.status == "queued"]

    async def place_many(self, placements: Sequence[Placement], now: datetime) -> None:
        if len({p.case_ref for p in placements}) != len(placements):
            raise ValueError("a case placed twice at once")
        for placement in placements:
            case = self.rows[placement.case_ref]
            self.rows[case.case_ref] = replace(
                case, meeting_id=placement.meeting_id, postponements=case.postponements + placement.postponed
            )
            self.updated_at[case.case_ref] = now

    async def closed(self, case_ref: str, closed_at: datetime) -> None:
        self.closed_at.setdefault(case_ref, closed_at)

    async def set_status(self, case_ref: str, status: CaseStatus, now: datetime, *, keep_meeting: bool = False) -> None:
        case = self.rows[case_ref]
        self.rows[case_ref] = replace(case, status=status, meeting_id=case.meeting_id if keep_meeting else None)
        self.updated_at[case_ref] = now

    def _in_order(self) -> list[Case]:
        return sorted(self.rows.values(), key=lambda c: c.queue_seq)


class FakeConsultations:
    def __init__(self) -> None:
        self.rows: dict[str, ConsultationRecord] = {}
        self.recorded_by: dict[str, str] = {}

    async def get(self, case_ref: str) -> ConsultationRecord | None:
        return self.rows.get(case_ref)

    async def add(self, record: ConsultationRecord, *, by: str, now: datetime) -> None:
        assert record.case_ref not in self.rows, "a case's outcome is recorded once"
        self.rows[record.case_ref] = record
        self.recorded_by[record.case_ref] = by

    async def count_at(self, meeting_id: str) -> int:
        return sum(1 for r in self.rows.values() if r.meeting_id == meeting_id)


class FakeAgendas:
    def __init__(self, cases: FakeCases, consents: FakeConsents, consultations: FakeConsultations) -> None:
        self.cases, self.consents, self.consultations = cases, consents, consultations

    async def of(self, meeting_ids: list[str]) -> dict[str, list[AgendaEntry]]:
        agendas: dict[str, list[AgendaEntry]] = {mid: [] for mid in meeting_ids}
        for case in self.cases._in_order():
            recorded = self.consultations.rows.get(case.case_ref)
            agenda_of = recorded.meeting_id if recorded else case.meeting_id
            if agenda_of in agendas:
                agendas[agenda_of].append(
                    AgendaEntry(
                        agenda_of, case, recorded.outcome if recorded else None, await self.consents.of(case.case_ref)
                    )
                )
        return agendas


class FakeMeetingUnitOfWork(FakeUnitOfWork):
    """What ``MeetingUnitOfWork`` gives a use case, in memory. One instance may serve several
    use cases in a row (as consecutive transactions would); ``events`` collects all they emit."""

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        horizon_weeks: int = 12,
        postpone_on_withdrawal: frozenset[str] = frozenset({"FK"}),
        message: Message | None = None,
    ) -> None:
        super().__init__("meeting", message=message)
        self.teams = FakeTeams()
        self.skip_dates = FakeSkipDates()
        self.meetings = FakeMeetings()
        self.cases = FakeCases(self.meetings)
        self.consents = FakeConsents()
        self.consultations = FakeConsultations()
        self.agendas = FakeAgendas(self.cases, self.consents, self.consultations)
        self.clock = clock or SettableClock(datetime(2026, 11, 23, 11, tzinfo=UTC))
        self.horizon_weeks = horizon_weeks
        self.postpone_on_withdrawal = postpone_on_withdrawal
