"""Public editions: which are due, making one (load the exact figures of the county and each
municipality, apply the small-count rule of ``public``, store it frozen and announce it as
``FiguresPublished``), and making them again after the threshold or a definition changed.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import asyncpg
import structlog

from shared.contracts import FiguresPublished
from shared.platform.outbox import Emitter

from . import catalogue, domain, public, store
from .domain import Period, Scope
from .exact import Question, answer

log = structlog.get_logger("metrics.editions")
OUTCOME_BASIS = "due"  # an edition is frozen when its period closes: outcomes by due date


def due(first_day: date | None, today: date, grace_days: int, have: set[str]) -> list[Period]:
    """The quarters and years that closed at least ``grace_days`` ago, from the one holding
    the first fact, that have no edition yet (a year after its four quarters)."""
    if first_day is None:
        return []
    closed_by = today - timedelta(days=grace_days)
    quarters = [q for q in domain.quarters_between(first_day, today) if q.end < closed_by]
    result = [q for q in quarters if q.label not in have]
    for year in sorted({q.start.year for q in quarters}):
        period = domain.parse_period(str(year))
        if period.end < closed_by and period.label not in have:
            result.append(period)
    return result


async def make(conn: asyncpg.Connection, period: Period, *, threshold: int, made_at: datetime,
               reason: str, producer: str = "metrics") -> int:
    """Make and store a new edition of a quarter or a year; returns its number. Run it in a
    REPEATABLE READ transaction: every figure of the edition from one snapshot."""
    if period.kind not in ("quarter", "year"):
        raise ValueError("public editions are of quarters and years")
    municipalities = await store.municipalities(conn)
    scopes = [public.COUNTY, *municipalities]
    answers = await _answers(conn, period, scopes)
    values = public.counts_of(answers, scopes)
    quarters = None
    if period.kind == "year":
        quarters = [await _published(conn, q, scopes) for q in domain.quarters_of_year(period.start.year)]
    edition = public.protect(values, municipalities, threshold, quarters=quarters)
    figures = {scope: public.figures_of(edition, answers[scope], scope) for scope in scopes}
    number = await store.save_edition(
        conn, period=period.label, start=period.start, end=period.end, made_at=made_at,
        threshold=threshold, definitions_version=catalogue.DEFINITIONS_VERSION, reason=reason,
        counts=public.stored_counts(edition), figures=figures)
    emit = Emitter(conn, producer).emit
    for scope in scopes:
        await emit(FiguresPublished(
            period=period.label, period_start=period.start, period_end=period.end, edition=number,
            municipality=None if scope == public.COUNTY else scope, suppression_threshold=threshold,
            figures=figures[scope], reason=reason, made_at=made_at),
            ordering_key=f"edition:{period.label}")
    log.info("public edition made", period=period.label, edition=number, reason=reason,
             hidden=sum(1 for var in edition.hidden if "@" not in var[2]))
    return number


async def _answers(conn: asyncpg.Connection, period: Period, scopes: list[str]) -> dict[str, dict]:
    result = {}
    for scope in scopes:
        question = Question(period, Scope(municipality=None if scope == public.COUNTY else scope),
                            outcome_basis=OUTCOME_BASIS)
        result[scope] = (await answer(conn, question))["figures"]
    return result


async def _published(conn: asyncpg.Connection, period: Period, scopes: list[str]) -> dict:
    """An earlier period's edition (its counts and marks); one never made counts as shown."""
    found = await store.latest_edition(conn, period.label, with_counts=True)
    if found is not None:
        return public.loaded_counts(found["counts"])
    return {var: (value, value) for var, value in public.counts_of(await _answers(conn, period, scopes),
                                                                   scopes).items()}


async def make_due(conn: asyncpg.Connection, *, today: date, grace_days: int, threshold: int,
                   made_at: datetime, at_start: bool = False) -> list[str]:
    """Make every edition that is due; at start also again those made with another threshold
    or older definitions (from scratch). One instance at a time; returns the periods made."""
    if not await store.lock_editions(conn):
        return []
    made = []
    latest: dict[str, dict] = {}
    for edition in await store.editions(conn):
        if edition["edition"] > latest.get(edition["period"], {"edition": 0})["edition"]:
            latest[edition["period"]] = edition
    # quarters before their year: a year is tied to its quarters' latest editions
    for period_label, edition in sorted(latest.items(), key=lambda kv: (kv[1]["period_end"], len(kv[0]) == 4)):
        changes = []
        if at_start and edition["threshold"] != threshold:
            changes.append(f"threshold changed from {edition['threshold']} to {threshold}")
        if edition["definitions_version"] < catalogue.DEFINITIONS_VERSION:  # never back to older ones
            changes.append("definitions changed")
        if changes:
            await make(conn, domain.parse_period(period_label), threshold=threshold, made_at=made_at,
                       reason="; ".join(changes))
            made.append(period_label)
    first, _ = await store.first_and_last_day(conn)
    for period in due(first, today, grace_days, set(latest)):
        try:
            async with conn.transaction():  # (a savepoint: an edition that is not safe is not made)
                await make(conn, period, threshold=threshold, made_at=made_at, reason="the period has closed")
        except public.NotSafe as exc:
            log.error("public edition not made: the rule could not protect it", period=period.label,
                      detail=str(exc)[:300])
            continue
        made.append(period.label)
    return made


async def correct(conn: asyncpg.Connection, period: Period, *, threshold: int, made_at: datetime,
                  reason: str) -> list[tuple[str, int]]:
    """A correction made on purpose: a new edition of the period, and of its year if that has
    one already (a year is tied to its quarters). Waits for any instance making editions."""
    await store.wait_for_editions_lock(conn)
    made = [(period.label, await make(conn, period, threshold=threshold, made_at=made_at, reason=reason))]
    year = domain.parse_period(str(period.start.year))
    if period.kind == "quarter" and await store.latest_edition(conn, year.label) is not None:
        made.append((year.label, await make(conn, year, threshold=threshold, made_at=made_at,
                                            reason=f"{reason} ({period.label} corrected)")))
    return made
