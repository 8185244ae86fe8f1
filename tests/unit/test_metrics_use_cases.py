"""The metrics use cases on the in-memory unit of work (``tests/fakes/metrics.py``), without
servers: an exact read checks the reader's scope and logs the read (a refused one is neither
read nor logged), only an auditor lists the access log, and the public editions are made when
their period has closed, made again when the threshold or the definitions changed, announced
for the county and each municipality, and read by anyone.

What is SQL and nothing else (summing the cells by GROUPING SETS, the projections' upserts,
the rebuild from the event log) is left to ``tests/integration/test_metrics.py``.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime

import pytest

from services.metrics import domain, editions, exact, projections
from services.metrics.domain import CaseFacts, EditionMade, NotAllowed, NotInScope, Scope
from services.metrics.exact import Question
from services.metrics.handlers import handlers
from services.metrics.store import Team
from shared.contracts import (
    CaseReferred,
    CaseScheduled,
    ConsultationHeld,
    FiguresPublished,
    MeetingCancelled,
    TeamUpdated,
)
from shared.contracts.vocabulary import Party
from shared.platform.auth import Principal, Role
from tests.fakes.metrics import FakeMetricsUnitOfWork

Q2 = domain.parse_period("2026Q2")
TEAMS = [Team("GÄV-1", "Gävle 1", "Gävle"), Team("GÄV-2", "Gävle 2", "Gävle"), Team("OCK-1", "Ockelbo", "Ockelbo")]
MADE_AT = datetime(2026, 8, 15, 6, 0, tzinfo=UTC)

BOARD = Principal(user_id="board-chair", party=None, role=Role.BOARD, teams=frozenset())
COORDINATOR = Principal(user_id="coord-1", party=Party.REGION, role=Role.COORDINATOR, teams=frozenset({"GÄV-1"}))
AUDITOR = Principal(user_id="audit-1", party=Party.REGION, role=Role.AUDITOR, teams=frozenset())


def county_cells() -> Counter[domain.Cell]:
    """Eight cases in Gävle (six in GÄV-1, two in GÄV-2) and three in Ockelbo, referred in 2026Q2."""
    cells: Counter[domain.Cell] = Counter()
    for i, team in enumerate(["GÄV-1"] * 6 + ["GÄV-2"] * 2 + ["OCK-1"] * 3):
        municipality = next(t.municipality for t in TEAMS if t.team_id == team)
        cells.update(
            domain.case_cells(
                CaseFacts(
                    f"C{i}",
                    team_id=team,
                    municipality=municipality,
                    referring_party="FK" if i % 2 else "AF",
                    gender="WOMAN",
                    age_band="25-34",
                    income_at_referral="LON",
                    violence_question_asked=i % 3 == 0,
                    referred_on=date(2026, 4, 7 + i),
                )
            )
        )
    return cells


def county() -> FakeMetricsUnitOfWork:
    return FakeMetricsUnitOfWork(teams=TEAMS, cells=county_cells())


# --------------------------------------------------------------------------- exact reads


async def test_the_board_reads_the_whole_county_every_team_and_the_read_is_logged():
    uow = county()
    question = Question(Q2)
    result = await exact.read(uow, question, BOARD, "api")
    referred = result["figures"]["cases_referred"]
    assert result["audience"] == "exact" and result["period"] == "2026Q2" and referred["value"] == 11
    assert referred["by"]["team"] == {"GÄV-1": 6, "GÄV-2": 2, "OCK-1": 3}
    assert referred["by"]["municipality"] == {"Gävle": 8, "Ockelbo": 3}
    [read] = uow.access_log.reads
    assert (read.user_id, read.role, read.party, read.via, read.scope) == (
        "board-chair",
        "board",
        None,
        "api",
        "county",
    )
    assert read.query == question.describe()


async def test_a_coordinator_reads_their_own_team_and_sees_only_their_lines_of_the_county():
    uow = county()
    own = await exact.read(uow, Question(Q2, Scope(teams=("GÄV-1",))), COORDINATOR, "report")
    assert own["figures"]["cases_referred"]["value"] == 6
    whole = await exact.read(uow, Question(Q2), COORDINATOR, "api")
    assert whole["figures"]["cases_referred"]["value"] == 11  # the county's total
    assert whole["figures"]["cases_referred"]["by"]["team"] == {"GÄV-1": 6}  # but no other team's line
    assert whole["figures"]["cases_referred"]["by"]["municipality"] == {"Gävle": 8}
    assert [(r.scope, r.via, r.party) for r in uow.access_log.reads] == [
        ("team:GÄV-1", "report", "REGION"),
        ("county", "api", "REGION"),
    ]


@pytest.mark.parametrize(
    "question",
    [
        Question(Q2, Scope(teams=("GÄV-2",))),  # another team, even of their own municipality
        Question(Q2, Scope(municipality="Ockelbo")),  # another municipality
        Question(domain.parse_period("2026-05")),  # the county by month: a day at a time is another team's cases
        Question(Q2, filters={"gender": "WOMAN"}),  # or filtered
    ],
)
async def test_a_coordinator_outside_their_scope_is_refused_and_nothing_is_logged(question):
    uow = county()
    with pytest.raises(NotInScope):
        await exact.read(uow, question, COORDINATOR, "api")
    assert uow.access_log.reads == []


async def test_only_an_auditor_lists_the_access_log_latest_first():
    uow = county()
    await exact.read(uow, Question(Q2), BOARD, "api")
    await exact.read(uow, Question(Q2, Scope(teams=("GÄV-1",))), COORDINATOR, "csv")
    await exact.read(uow, Question(Q2), BOARD, "report")
    reads = await exact.access_log(uow, AUDITOR)
    assert [(r.user_id, r.via) for r in reads] == [
        ("board-chair", "report"),
        ("coord-1", "csv"),
        ("board-chair", "api"),
    ]
    assert [r.via for r in await exact.access_log(uow, AUDITOR, None, "board-chair", 1)] == ["report"]
    for reader in (BOARD, COORDINATOR):
        with pytest.raises(NotAllowed):
            await exact.access_log(uow, reader)


# --------------------------------------------------------------------------- public editions


async def test_a_closed_quarter_gets_its_edition_after_the_grace_days_announced_for_every_scope():
    uow = county()
    early = await editions.make_due(uow, today=date(2026, 7, 20), grace_days=30, threshold=5, made_at=MADE_AT)
    assert early == [] and uow.events == []  # closed, but the grace days (late recordings) are not over
    made = await editions.make_due(uow, today=date(2026, 8, 15), grace_days=30, threshold=5, made_at=MADE_AT)
    assert made == ["2026Q2"]
    [edition] = uow.editions.made
    assert (edition.edition, edition.threshold, edition.reason) == (1, 5, "the period has closed")
    announced = uow.of_type(FiguresPublished)
    assert [e.municipality for e in announced] == [None, "Gävle", "Ockelbo"]
    assert set(uow.ordering_keys) == {"edition:2026Q2"}
    shown = await editions.published(uow, Q2, "Ockelbo")
    assert shown["audience"] == "public" and shown["edition"] == 1 and shown["scopes"] == ["Gävle", "Ockelbo", "county"]
    assert shown["figures"]["cases_referred"]["value"] == "<5"  # three cases: not shown exactly
    assert "team" not in shown["figures"]["cases_referred"].get("by", {})
    again = await editions.make_due(uow, today=date(2026, 8, 16), grace_days=30, threshold=5, made_at=MADE_AT)
    assert again == [] and len(uow.editions.made) == 1  # frozen: not made twice


async def test_a_new_threshold_makes_the_edition_again_at_start_only():
    uow = county()
    await editions.make_due(uow, today=date(2026, 8, 15), grace_days=30, threshold=5, made_at=MADE_AT)
    later = await editions.make_due(uow, today=date(2026, 8, 16), grace_days=30, threshold=3, made_at=MADE_AT)
    assert later == []  # the threshold is a setting: read at start
    at_start = await editions.make_due(
        uow, today=date(2026, 8, 16), grace_days=30, threshold=3, made_at=MADE_AT, at_start=True
    )
    assert at_start == ["2026Q2"]
    latest = await editions.published(uow, Q2, None)
    assert (latest["edition"], latest["suppression_threshold"]) == (2, 3)
    assert latest["reason"] == "threshold changed from 5 to 3"
    assert (await editions.published(uow, Q2, None, 1))["suppression_threshold"] == 5  # the first stays readable


async def test_the_publishers_lag_is_how_long_the_oldest_due_edition_has_waited():
    uow = county()
    before = datetime(2026, 7, 30, 12, 0, tzinfo=UTC)  # Q2 closed, the grace days not over
    assert await editions.lag_seconds(uow, now=before, grace_days=30) == 0.0
    # due from 31 July (30 June + 30 days of grace), 00:00 in Sweden (22:00 UTC the day before)
    lag = await editions.lag_seconds(uow, now=MADE_AT, grace_days=30)
    assert lag == (MADE_AT - datetime(2026, 7, 30, 22, 0, tzinfo=UTC)).total_seconds()
    await editions.make_due(uow, today=date(2026, 8, 15), grace_days=30, threshold=5, made_at=MADE_AT)
    assert await editions.lag_seconds(uow, now=MADE_AT, grace_days=30) == 0.0


async def test_another_instance_making_editions_means_none_are_made_here():
    uow = county()
    uow.editions.locked_elsewhere = True
    assert await editions.make_due(uow, today=date(2026, 8, 15), grace_days=30, threshold=5, made_at=MADE_AT) == []
    assert uow.editions.made == [] and uow.events == []


async def test_a_correction_is_a_new_dated_edition_with_its_reason():
    uow = county()
    await editions.make_due(uow, today=date(2026, 8, 15), grace_days=30, threshold=5, made_at=MADE_AT)
    made = await editions.correct(uow, Q2, threshold=5, made_at=MADE_AT, reason="late recordings corrected")
    assert made == [("2026Q2", 2)]  # the year has no edition yet: only the quarter
    assert (await editions.published(uow, Q2, None))["reason"] == "late recordings corrected"


async def test_reading_an_edition_that_is_not_there():
    uow = county()
    with pytest.raises(editions.NoEdition):
        await editions.published(uow, Q2, None)
    await editions.make_due(uow, today=date(2026, 8, 15), grace_days=30, threshold=5, made_at=MADE_AT)
    with pytest.raises(editions.ScopeUnknown):
        await editions.published(uow, Q2, "Sandviken")  # nothing was ever counted there


def test_which_editions_are_due_a_year_after_its_quarters():
    due = domain.editions_due(date(2025, 11, 3), date(2026, 2, 10), 30, have={"2025Q3"})
    assert [p.label for p in due] == ["2025Q4", "2025"]
    assert domain.editions_due(None, date(2026, 2, 10), 30, have=set()) == []


def test_which_editions_are_made_again_quarters_before_their_year():
    def made(period: str, edition: int, threshold: int = 5, definitions: int = 1) -> EditionMade:
        p = domain.parse_period(period)
        return EditionMade(period, edition, p.start, p.end, MADE_AT, threshold, definitions, "the period has closed")

    latest = domain.latest_editions(
        [made("2025", 1), made("2025Q4", 1), made("2025Q4", 2, threshold=3), made("2025Q3", 1, definitions=0)]
    )
    assert {p: e.edition for p, e in latest.items()} == {"2025": 1, "2025Q4": 2, "2025Q3": 1}
    again = domain.editions_to_make_again(latest.values(), threshold=5, definitions_version=1, at_start=True)
    assert [(p.label, why) for p, why in again] == [
        ("2025Q3", "definitions changed"),
        ("2025Q4", "threshold changed from 3 to 5"),
    ]
    later = domain.editions_to_make_again(latest.values(), threshold=5, definitions_version=1, at_start=False)
    assert [p.label for p, _ in later] == ["2025Q3"]  # older definitions: always, never back to them


# --------------------------------------------------------------------------- projections


def test_projections_are_keyed_by_contract_class_and_every_one_is_consumed():
    assert all(isinstance(c, type) for c in projections.PROJECTIONS)
    assert set(projections.PROJECTIONS) <= set(handlers.contracts)
    assert CaseScheduled in handlers.contracts and CaseScheduled not in projections.PROJECTIONS  # logged only
    assert {CaseReferred, ConsultationHeld, MeetingCancelled, TeamUpdated} <= set(projections.PROJECTIONS)
