"""Exact figures for signed-in readers: check the reader's scope, sum the cells, answer, and
log the read. The board and the analysts read the whole county; a coordinator or a member
their own teams, their municipality and the county (``domain.check_scope``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import asyncpg

from shared.platform.auth import Principal

from . import catalogue, domain, store
from .domain import Period, Reader, Scope
from .figures import Sums, exact

DIMENSION_FILTERS = catalogue.CASE_DIMENSIONS  # what a question may be filtered by
BEGINNING = date(1900, 1, 1)  # the queue is a sum from the start


@dataclass(frozen=True)
class Question:
    period: Period
    scope: Scope = Scope()
    filters: dict[str, str] = field(default_factory=dict)  # case dimension -> value
    outcome_basis: str = "cohort"

    def describe(self) -> dict:
        return {"period": self.period.label, "from": self.period.start.isoformat(),
                "to": self.period.end.isoformat(), "scope": self.scope.label,
                "team_id": ",".join(self.scope.teams) or None, "municipality": self.scope.municipality,
                "filters": dict(self.filters), "outcome_basis": self.outcome_basis}


def _cell_filters(question: Question) -> dict[str, list[str]]:
    filters: dict[str, list[str]] = {}
    if question.scope.teams:
        filters["team_id"] = list(question.scope.teams)
    if question.scope.municipality:
        filters["municipality"] = [question.scope.municipality]
    for dimension, value in question.filters.items():
        filters[catalogue.COLUMN[dimension]] = [value]
    return filters


async def answer(conn: asyncpg.Connection, question: Question, reader: Reader | None = None) -> dict:
    """The exact figures asked for. ``reader``: whose scope to check and whose breakdown
    lines to show (None: the platform itself, e.g. making a public edition)."""
    teams = await store.teams(conn)
    municipality_of = {t["team_id"]: t["municipality"] for t in teams}
    if reader is not None:
        domain.check_scope(reader, question.scope, municipality_of, period_kind=question.period.kind,
                           filtered=bool(question.filters))
    filters = _cell_filters(question)
    measures = [m for m in catalogue.measures(question.outcome_basis) if m != "queue"]
    rows = await store.cell_sums(conn, measures, question.period.start, question.period.end, filters)
    rows += await store.cell_sums(conn, ["queue"], BEGINNING, question.period.end, filters)
    in_scope = [t for t in teams if (not question.scope.teams or t["team_id"] in question.scope.teams)
                and (not question.scope.municipality or t["municipality"] == question.scope.municipality)]
    known = {"team": [t["team_id"] for t in in_scope],
             "municipality": sorted({t["municipality"] for t in in_scope})}

    def visible(dimension: str, key: str) -> bool:
        return reader is None or domain.visible_breakdown(reader, dimension, key, municipality_of)

    figures = exact(Sums(rows), outcome_basis=question.outcome_basis, filtered=bool(question.filters),
                    known=known, visible=visible)
    return {"audience": "exact", **question.describe(), "figures": figures}


async def read(conn: asyncpg.Connection, question: Question, principal: Principal, via: str) -> dict:
    """``answer`` for a signed-in reader, and the read written to the access log (raises
    ``domain.NotInScope`` outside the reader's scope: nothing is read, nothing logged)."""
    reader = Reader(role=principal.role.value, teams=principal.teams)
    result = await answer(conn, question, reader)
    await store.log_read(conn, user_id=principal.user_id, role=principal.role.value,
                         party=principal.party.value if principal.party else None, via=via,
                         scope=question.scope.label, query=question.describe())
    return result
