"""Exact figures for signed-in readers (use cases): check the reader's scope, sum the cells,
answer, and log the read; and the access log, for auditors. The board and the analysts read the
whole county; a coordinator or a member their own teams, their municipality and the county
(``domain.check_scope``). Each runs in the unit of work it is given (``MetricsUnitOfWork``, or
the fake of the tests): a read refused is neither read nor logged."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from shared.platform.auth import Principal

from . import catalogue, domain
from .domain import Period, Reader, Scope
from .figures import Sums, exact
from .store import FigureRead, Team
from .uow import MetricsUnitOfWork

DIMENSION_FILTERS = catalogue.CASE_DIMENSIONS  # what a question may be filtered by
BEGINNING = date(1900, 1, 1)  # the queue is a sum from the start


@dataclass(frozen=True)
class Question:
    period: Period
    scope: Scope = Scope()
    filters: dict[str, str] = field(default_factory=dict)  # case dimension -> value
    outcome_basis: str = "cohort"

    def describe(self) -> dict[str, Any]:
        return {
            "period": self.period.label,
            "from": self.period.start.isoformat(),
            "to": self.period.end.isoformat(),
            "scope": self.scope.label,
            "team_id": ",".join(self.scope.teams) or None,
            "municipality": self.scope.municipality,
            "filters": dict(self.filters),
            "outcome_basis": self.outcome_basis,
        }


def _cell_filters(question: Question) -> dict[str, list[str]]:
    filters: dict[str, list[str]] = {}
    if question.scope.teams:
        filters["team_id"] = list(question.scope.teams)
    if question.scope.municipality:
        filters["municipality"] = [question.scope.municipality]
    for dimension, value in question.filters.items():
        filters[catalogue.COLUMN[dimension]] = [value]
    return filters


def reader_of(principal: Principal) -> Reader:
    return Reader(role=principal.role.value, teams=principal.teams)


async def answer(uow: MetricsUnitOfWork, question: Question, reader: Reader | None = None) -> dict[str, Any]:
    """The exact figures asked for. ``reader``: whose scope to check and whose breakdown
    lines to show (None: the platform itself, e.g. making a public edition)."""
    teams = await uow.teams.all()
    municipality_of = {t.team_id: t.municipality for t in teams}
    if reader is not None:
        domain.check_scope(
            reader, question.scope, municipality_of, period_kind=question.period.kind, filtered=bool(question.filters)
        )
    filters = _cell_filters(question)
    measures = [m for m in catalogue.measures(question.outcome_basis) if m != "queue"]
    rows = await uow.cells.sums(measures, question.period.start, question.period.end, filters)
    rows += await uow.cells.sums(["queue"], BEGINNING, question.period.end, filters)
    in_scope = [
        t
        for t in teams
        if (not question.scope.teams or t.team_id in question.scope.teams)
        and (not question.scope.municipality or t.municipality == question.scope.municipality)
    ]
    known = {"team": [t.team_id for t in in_scope], "municipality": sorted({t.municipality for t in in_scope})}

    def visible(dimension: str, key: str) -> bool:
        return reader is None or domain.visible_breakdown(reader, dimension, key, municipality_of)

    figures = exact(
        Sums(rows), outcome_basis=question.outcome_basis, filtered=bool(question.filters), known=known, visible=visible
    )
    return {"audience": "exact", **question.describe(), "figures": figures}


async def read(uow: MetricsUnitOfWork, question: Question, principal: Principal, via: str) -> dict[str, Any]:
    """``answer`` for a signed-in reader, and the read written to the access log (raises
    ``domain.NotInScope`` outside the reader's scope: nothing is read, nothing logged)."""
    result = await answer(uow, question, reader_of(principal))
    await uow.access_log.add(
        FigureRead(
            user_id=principal.user_id,
            role=principal.role.value,
            party=principal.party.value if principal.party else None,
            via=via,
            scope=question.scope.label,
            query=question.describe(),
        )
    )
    return result


async def access_log(
    uow: MetricsUnitOfWork,
    principal: Principal,
    since: datetime | None = None,
    user_id: str | None = None,
    limit: int = 100,
) -> list[FigureRead]:
    """Who read which exact figures, the latest first: for auditors only (``domain.NotAllowed``)."""
    domain.check_auditor(reader_of(principal))
    return await uow.access_log.latest(since=since, user_id=user_id, limit=limit)


async def teams(uow: MetricsUnitOfWork) -> list[Team]:
    """The teams and their municipalities (the registry), for choosing a scope."""
    return await uow.teams.all()


async def span(uow: MetricsUnitOfWork, today: date) -> dict[str, Any]:
    """The first and the last day anything counted happened on, and the latest quarter with
    data up to today (the dashboard's default period)."""
    first, last = await uow.cells.first_and_last_day()
    latest = domain.quarter_of(min(last, today) if last else today)
    return {"first": first, "last": last, "latest_quarter": latest.label}
