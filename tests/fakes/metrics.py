"""The metrics service's unit of work in memory: the cells, the teams, the access log and the
public editions as lists and counters, the events in ``events`` (``shared.platform.uow.
FakeUnitOfWork``). For unit tests of the use cases in ``services/metrics/exact.py`` and
``editions.py``: no PostgreSQL, no RabbitMQ.

Each repository keeps what the use cases rely on of its ``store.py`` counterpart: the cells are
summed as ``Cells.sums`` sums them (in total and per value of each dimension; that the SQL's
GROUPING SETS give the same is the integration tests' to show), an edition's figures and counts
come back as stored JSON, a savepoint undoes what failed in it. Locks mean nothing in one test's
memory, but another instance making editions can be pretended (``editions.locked_elsewhere``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

from services.metrics.domain import Cell, EditionMade, Period
from services.metrics.figures import Sum
from services.metrics.store import CELL_COLUMNS, DIMENSION_OF, FigureRead, PublishedEdition, Team
from shared.platform.uow import FakeUnitOfWork, Message


class FakeCells:
    def __init__(self, cells: Counter[Cell] | None = None) -> None:
        self.cells: Counter[Cell] = Counter(cells or {})

    async def sums(self, measures: list[str], start: date, end: date, filters: dict[str, list[str]]) -> list[Sum]:
        total: Counter[tuple[str, str, str | None, str | None]] = Counter()
        for (measure, detail, day, *dims), n in self.cells.items():
            values = dict(zip(CELL_COLUMNS, dims, strict=True))
            if measure not in measures or not start <= day <= end:
                continue
            if any(values[column] not in allowed for column, allowed in filters.items()):
                continue
            total[(measure, detail, None, None)] += n
            for column in CELL_COLUMNS:
                total[(measure, detail, DIMENSION_OF[column], values[column])] += n
        return [(*key, n) for key, n in total.items()]

    async def first_and_last_day(self) -> tuple[date | None, date | None]:
        days = [cell[2] for cell in self.cells if not (cell[0].startswith("outcome.") and cell[0].endswith("@cohort"))]
        return (min(days), max(days)) if days else (None, None)

    async def municipalities(self) -> list[str]:
        return sorted({cell[4] for cell in self.cells if cell[4]})


class FakeTeams:
    def __init__(self, teams: Iterable[Team] = ()) -> None:
        self.rows = list(teams)

    async def all(self) -> list[Team]:
        return sorted(self.rows, key=lambda t: (t.municipality, t.team_id))


class FakeAccessLog:
    def __init__(self) -> None:
        self.reads: list[FigureRead] = []

    async def add(self, read: FigureRead) -> None:
        self.reads.append(
            replace(
                read,
                id=len(self.reads) + 1,
                read_at=datetime.now(UTC),
                query=json.loads(json.dumps(read.query, default=str)),
            )
        )

    async def latest(self, *, since: datetime | None, user_id: str | None, limit: int) -> list[FigureRead]:
        found = [
            r
            for r in reversed(self.reads)
            if (since is None or (r.read_at and r.read_at >= since)) and (user_id is None or r.user_id == user_id)
        ]
        return found[:limit]


class FakeEditions:
    def __init__(self) -> None:
        self.made: list[PublishedEdition] = []
        self.locked_elsewhere = False  # another instance is making editions

    async def lock(self) -> bool:
        return not self.locked_elsewhere

    async def wait_for_lock(self) -> None:
        assert not self.locked_elsewhere, "would wait for ever in a test"

    async def add(
        self,
        period: Period,
        *,
        made_at: datetime,
        threshold: int,
        definitions_version: int,
        reason: str,
        counts: dict[str, Any],
        figures: dict[str, Any],
    ) -> int:
        number = 1 + max((e.edition for e in self.made if e.period == period.label), default=0)
        self.made.append(
            PublishedEdition(
                period.label,
                number,
                period.start,
                period.end,
                made_at,
                threshold,
                definitions_version,
                reason,
                figures=json.loads(json.dumps(figures)),
                counts=json.loads(json.dumps(counts)),
            )
        )
        return number

    async def latest(self, period: str, edition: int | None = None) -> PublishedEdition | None:
        found = [e for e in self.made if e.period == period and edition in (None, e.edition)]
        return max(found, key=lambda e: e.edition, default=None)

    async def all(self) -> list[EditionMade]:
        newest_first = sorted(self.made, key=lambda e: (-e.period_end.toordinal(), e.period, -e.edition))
        return [
            EditionMade(
                e.period,
                e.edition,
                e.period_start,
                e.period_end,
                e.made_at,
                e.threshold,
                e.definitions_version,
                e.reason,
            )
            for e in newest_first
        ]


class FakeMetricsUnitOfWork(FakeUnitOfWork):
    def __init__(
        self, *, teams: Iterable[Team] = (), cells: Counter[Cell] | None = None, message: Message | None = None
    ) -> None:
        super().__init__("metrics", message=message)
        self.teams = FakeTeams(teams)
        self.cells = FakeCells(cells)
        self.access_log = FakeAccessLog()
        self.editions = FakeEditions()

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """What fails in it is undone (the editions it made, the events it emitted)."""
        made, events, emitted = list(self.editions.made), len(self.events), len(self.emitted)
        try:
            yield
        except BaseException:
            self.editions.made = made
            del self.events[events:], self.ordering_keys[events:], self.emitted[emitted:]
            raise
