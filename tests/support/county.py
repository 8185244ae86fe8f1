"""Generated county data for the metrics tests: cases with every attribute the figures use,
their cells (``domain.case_cells``), and the sums the store's one query would give, worked out
here in plain Python (the oracle the SQL is checked against)."""

from __future__ import annotations

import random
from collections import Counter
from datetime import date, timedelta

from services.metrics import catalogue, domain
from services.metrics.domain import CaseFacts, MeetingFacts, SixMonths
from services.metrics.figures import Sums

MUNICIPALITIES = (
    "Bollnäs",
    "Gävle",
    "Hofors",
    "Hudiksvall",
    "Ljusdal",
    "Nordanstig",
    "Ockelbo",
    "Ovanåker",
    "Sandviken",
    "Söderhamn",
)
COLUMNS = ("team_id", "municipality", "referring_party", "gender", "age_band", "income")


def teams(per_municipality: int = 3) -> dict[str, str]:
    """Team id -> municipality; Gävle has twice as many."""
    return {
        f"{m[:3].upper()}-{i + 1}": m
        for m in MUNICIPALITIES
        for i in range(per_municipality * (2 if m == "Gävle" else 1))
    }


def cases(rng: random.Random, n: int, start: date, days: int, team_of: dict[str, str]) -> list[CaseFacts]:
    """``n`` cases referred over ``days`` days from ``start``, most consulted, some followed up."""
    team_ids = sorted(team_of)
    weights = [5 if team_of[t] == "Gävle" else (1 if team_of[t] in ("Ockelbo", "Nordanstig") else 3) for t in team_ids]
    result = []
    for i in range(n):
        team = rng.choices(team_ids, weights)[0]
        referred = start + timedelta(days=rng.randrange(days))
        income = rng.choices(
            [v for v in catalogue.VALUES["income_at_referral"] if v != "UNKNOWN"], [3, 6, 2, 1, 1, 2, 6, 1, 1, 1, 1]
        )[0]
        consulted = referred + timedelta(days=rng.randint(7, 60)) if rng.random() < 0.8 else None
        followups = ()
        if consulted is not None and rng.random() < 0.7:
            recorded, reached = rng.random() < 0.85, rng.random() < 0.8
            followups = (
                SixMonths(
                    due_on=consulted + timedelta(days=182),
                    cancelled=rng.random() < 0.05,
                    recorded=recorded,
                    reached=reached if recorded else None,
                    income_source=rng.choice(catalogue.VALUES["income_at_follow_up"]) if recorded and reached else None,
                    readiness=rng.choice(["much_more", "more", "unchanged", "less", "not_answered"])
                    if recorded and reached
                    else None,
                ),
            )
        result.append(
            CaseFacts(
                case_ref=f"C{i:06d}",
                team_id=team,
                municipality=team_of[team],
                referring_party=rng.choices(catalogue.VALUES["referring_party"], [3, 2, 4, 3])[0],
                gender=rng.choices(catalogue.VALUES["gender"], [45, 53, 2])[0],
                age_band=rng.choice(catalogue.VALUES["age_band"][:5]),
                income_at_referral=income,
                violence_question_asked=rng.random() < 0.6,
                referred_on=referred,
                consulted_on=consulted,
                individual_attended=rng.random() < 0.4 if consulted else None,
                not_consulted_on=referred + timedelta(days=20) if consulted is None and rng.random() < 0.3 else None,
                closed_on=None,
                actions=tuple(rng.sample(catalogue.VALUES["action_type"], rng.randint(0, 3))) if consulted else (),
                postponements=(
                    (referred + timedelta(days=10), rng.choice(["consent_missing", "meeting_cancelled", "displaced"])),
                )
                if rng.random() < 0.15
                else (),
                followups=followups,
            )
        )
    return result


def meetings(rng: random.Random, start: date, days: int, team_of: dict[str, str]) -> list[MeetingFacts]:
    result = []
    for team, municipality in sorted(team_of.items()):
        for week in range(0, days, 14):
            cancelled = rng.choice([None] * 8 + ["no_cases", "staff_absent", "holiday"])
            result.append(
                MeetingFacts(
                    f"{team}-{week}",
                    team,
                    municipality,
                    start + timedelta(days=week),
                    cancelled_reason=cancelled,
                    pre_meeting_held_on=start + timedelta(days=week - 3) if rng.random() < 0.5 else None,
                    cases_recorded=0 if cancelled else rng.randint(0, 4),
                )
            )
    return result


def all_cells(case_list, meeting_list=()) -> Counter:
    total: Counter = Counter()
    for case in case_list:
        total.update(domain.case_cells(case))
    for meeting in meeting_list:
        total.update(domain.meeting_cells(meeting))
    return total


def sums(
    cells: Counter, start: date, end: date, filters: dict[str, list[str]] | None = None, outcome_basis: str = "cohort"
) -> Sums:
    """What ``store.Cells.sums`` answers (both of the queries ``exact.answer`` makes)."""
    filters = filters or {}
    measures = set(catalogue.measures(outcome_basis))
    rows: Counter = Counter()
    for (measure, detail, day, *dims), n in cells.items():
        if measure not in measures:
            continue
        if not (day <= end and (measure == "queue" or day >= start)):
            continue
        values = dict(zip(COLUMNS, dims, strict=False))
        if any(values[c] not in allowed for c, allowed in filters.items()):
            continue
        rows[(measure, detail, None, None)] += n
        for column in COLUMNS:
            rows[(measure, detail, _dimension(column), values[column])] += n
    return Sums([(*key, n) for key, n in rows.items()])


def _dimension(column: str) -> str:
    return {"team_id": "team", "income": "income_at_referral"}.get(column, column)
