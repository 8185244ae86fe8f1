"""Public editions (use cases): making those that are due (load the exact figures of the county
and each municipality, apply the small-count rule of ``public``, store the edition frozen and
announce it as ``FiguresPublished``, in one unit of work), making them again after the
threshold or a definition changed (which ones: ``domain.editions_to_make_again``), a correction
made on purpose, and reading an edition (anyone may).
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

import structlog

from shared.contracts import FiguresPublished
from shared.platform.clock import STOCKHOLM, stockholm_date

from . import catalogue, domain, public
from .domain import Period, Scope
from .exact import Question, answer
from .uow import MetricsUnitOfWork

log = structlog.get_logger("metrics.editions")
OUTCOME_BASIS = "due"  # an edition is frozen when its period closes: outcomes by due date


class NoEdition(LookupError):
    """The period has no public edition (yet: one is made some days after it closes)."""


class ScopeUnknown(LookupError):
    """The edition has no figures of that municipality (nothing was ever counted there)."""


async def published(
    uow: MetricsUnitOfWork, period: Period, municipality: str | None, edition: int | None = None
) -> dict[str, Any]:
    """A public edition of a quarter or a year (the latest, or the one asked for), for the
    county or a municipality, as the API, CSV and the report page give it."""
    found = await uow.editions.latest(period.label, edition)
    if found is None:
        raise NoEdition(period.label)
    scope = municipality or public.COUNTY
    if scope not in found.figures:
        raise ScopeUnknown(f"no public figures for {municipality}")
    return {
        "audience": "public",
        "period": found.period,
        "from": found.period_start,
        "to": found.period_end,
        "edition": found.edition,
        "made_at": found.made_at,
        "reason": found.reason,
        "suppression_threshold": found.threshold,
        "scope": scope,
        "municipality": municipality,
        "scopes": sorted(found.figures),
        "outcome_basis": OUTCOME_BASIS,
        "figures": found.figures[scope],
    }


async def make(uow: MetricsUnitOfWork, period: Period, *, threshold: int, made_at: datetime, reason: str) -> int:
    """Make and store a new edition of a quarter or a year; returns its number. Run it in a
    REPEATABLE READ transaction: every figure of the edition from one snapshot."""
    if period.kind not in ("quarter", "year"):
        raise ValueError("public editions are of quarters and years")
    municipalities = await uow.cells.municipalities()
    scopes = [public.COUNTY, *municipalities]
    answers = await _answers(uow, period, scopes)
    values = public.counts_of(answers, scopes)
    quarters = None
    if period.kind == "year":
        quarters = [await _published(uow, q, scopes) for q in domain.quarters_of_year(period.start.year)]
    edition = public.protect(values, municipalities, threshold, quarters=quarters)
    figures = {scope: public.figures_of(edition, answers[scope], scope) for scope in scopes}
    number: int = await uow.editions.add(
        period,
        made_at=made_at,
        threshold=threshold,
        definitions_version=catalogue.DEFINITIONS_VERSION,
        reason=reason,
        counts=public.stored_counts(edition),
        figures=figures,
    )
    for scope in scopes:
        await uow.emit(
            FiguresPublished(
                period=period.label,
                period_start=period.start,
                period_end=period.end,
                edition=number,
                municipality=None if scope == public.COUNTY else scope,
                suppression_threshold=threshold,
                figures=figures[scope],
                reason=reason,
                made_at=made_at,
            ),
            ordering_key=f"edition:{period.label}",
        )
    log.info(
        "public edition made",
        period=period.label,
        edition=number,
        reason=reason,
        hidden=sum(1 for var in edition.hidden if "@" not in var[2]),
    )
    return number


async def _answers(uow: MetricsUnitOfWork, period: Period, scopes: list[str]) -> dict[str, dict[str, Any]]:
    result = {}
    for scope in scopes:
        question = Question(
            period, Scope(municipality=None if scope == public.COUNTY else scope), outcome_basis=OUTCOME_BASIS
        )
        result[scope] = (await answer(uow, question))["figures"]
    return result


async def _published(uow: MetricsUnitOfWork, period: Period, scopes: list[str]) -> dict[Any, Any]:
    """An earlier period's edition (its counts and marks); one never made counts as shown."""
    found = await uow.editions.latest(period.label)
    if found is not None:
        return public.loaded_counts(found.counts)
    return {var: (value, value) for var, value in public.counts_of(await _answers(uow, period, scopes), scopes).items()}


async def make_due(
    uow: MetricsUnitOfWork, *, today: date, grace_days: int, threshold: int, made_at: datetime, at_start: bool = False
) -> list[str]:
    """Make every edition that is due; at start also again those made with another threshold
    or older definitions (from scratch). One instance at a time; returns the periods made."""
    if not await uow.editions.lock():
        return []
    made = []
    latest = domain.latest_editions(await uow.editions.all())
    for period, reason in domain.editions_to_make_again(
        latest.values(), threshold=threshold, definitions_version=catalogue.DEFINITIONS_VERSION, at_start=at_start
    ):
        await make(uow, period, threshold=threshold, made_at=made_at, reason=reason)
        made.append(period.label)
    first, _ = await uow.cells.first_and_last_day()
    for period in domain.editions_due(first, today, grace_days, set(latest)):
        try:
            async with uow.savepoint():  # an edition that is not safe is not made; the others are
                await make(uow, period, threshold=threshold, made_at=made_at, reason="the period has closed")
        except public.NotSafe as exc:
            log.error(
                "public edition not made: the rule could not protect it", period=period.label, detail=str(exc)[:300]
            )
            continue
        made.append(period.label)
    return made


async def lag_seconds(uow: MetricsUnitOfWork, *, now: datetime, grace_days: int) -> float:
    """How long the oldest edition that is due has waited to be made (0: none waits): the
    publisher's lag, for its alert."""
    first, _ = await uow.cells.first_and_last_day()
    have = {edition.period for edition in await uow.editions.all()}
    due = domain.editions_due(first, stockholm_date(now), grace_days, have)
    if not due:
        return 0.0
    since = min(domain.edition_due_on(period, grace_days) for period in due)
    return max(0.0, (now - datetime.combine(since, time(), STOCKHOLM)).total_seconds())


async def correct(
    uow: MetricsUnitOfWork, period: Period, *, threshold: int, made_at: datetime, reason: str
) -> list[tuple[str, int]]:
    """A correction made on purpose: a new edition of the period, and of its year if that has
    one already (a year is tied to its quarters). Waits for any instance making editions."""
    await uow.editions.wait_for_lock()
    made = [(period.label, await make(uow, period, threshold=threshold, made_at=made_at, reason=reason))]
    year = domain.parse_period(str(period.start.year))
    if period.kind == "quarter" and await uow.editions.latest(year.label) is not None:
        made.append(
            (
                year.label,
                await make(
                    uow, year, threshold=threshold, made_at=made_at, reason=f"{reason} ({period.label} corrected)"
                ),
            )
        )
    return made


async def listing(uow: MetricsUnitOfWork) -> list[domain.EditionMade]:
    """Every public edition, newest period first: its period, number, when it was made and why."""
    return await uow.editions.all()
