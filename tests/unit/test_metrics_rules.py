"""The metrics rules without servers: what a case and a meeting count for, the figures summed
from those counts, periods, who may read what, and the catalogue's table in the docs."""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from services.metrics import catalogue, domain
from services.metrics.domain import CaseFacts, MeetingFacts, NotInScope, Reader, Scope, SixMonths
from services.metrics.figures import exact
from tests.support import county

D = date(2026, 4, 7)


def case(**facts) -> CaseFacts:
    base = dict(
        case_ref="C1",
        team_id="T1",
        municipality="Gävle",
        referring_party="FK",
        gender="WOMAN",
        age_band="25-34",
        income_at_referral="FORSORJNINGSSTOD",
        violence_question_asked=True,
        referred_on=D,
    )
    return CaseFacts(**{**base, **facts})


def measures(cells: Counter) -> Counter:
    return Counter({(m, detail, day): n for (m, detail, day, *_), n in cells.items()})


def test_a_referred_case_counts_as_referred_asked_and_in_the_queue_until_it_leaves():
    cells = measures(domain.case_cells(case()))
    assert cells == Counter({("referred", "", D): 1, ("violence_asked", "", D): 1, ("queue", "", D): 1})
    consulted = measures(
        domain.case_cells(
            case(consulted_on=date(2026, 5, 5), individual_attended=True, actions=("sip", "joint_mapping"))
        )
    )
    assert consulted[("queue", "", date(2026, 5, 5))] == -1  # left the queue that day
    assert consulted[("consulted", "", date(2026, 5, 5))] == 1 and consulted[("attended", "", date(2026, 5, 5))] == 1
    assert consulted[("lead", "28", date(2026, 5, 5))] == 1
    assert (
        consulted[("action", "sip", date(2026, 5, 5))] == consulted[("action", "joint_mapping", date(2026, 5, 5))] == 1
    )
    same_day = measures(domain.case_cells(case(closed_on=D)))  # in and out the same day: never waiting
    assert ("queue", "", D) not in same_day


def test_a_case_known_only_from_later_events_counts_what_is_known():
    cells = measures(
        domain.case_cells(CaseFacts("C2", team_id="T1", municipality="Gävle", referring_party="AF", consulted_on=D))
    )
    assert cells == Counter({("consulted", "", D): 1})  # no referral date yet: no lead time, no queue
    dims = next(iter(domain.case_cells(CaseFacts("C2", consulted_on=D))))[3:]
    assert dims == ("UNKNOWN",) * 6


def test_postponements_count_except_giving_way():
    cells = measures(domain.case_cells(case(postponements=((D, "consent_missing"), (D, "displaced")))))
    assert cells[("postponed", "consent_missing", D)] == 1 and ("postponed", "displaced", D) not in cells


@pytest.mark.parametrize(
    "followup,outcomes",
    [
        (SixMonths(date(2026, 11, 5)), {"outcome.due"}),
        (SixMonths(date(2026, 11, 5), cancelled=True), set()),
        (SixMonths(date(2026, 11, 5), recorded=True, reached=False), {"outcome.due", "outcome.recorded"}),
        (
            SixMonths(date(2026, 11, 5), recorded=True, reached=True, income_source="LON", readiness="more"),
            {
                "outcome.due",
                "outcome.recorded",
                "outcome.reached",
                "outcome.ps_referral",
                "outcome.fs_referral",
                "outcome.destination",
                "outcome.self_sufficient",
                "outcome.answered",
                "outcome.more_ready",
            },
        ),
        (
            SixMonths(
                date(2026, 11, 5),
                recorded=True,
                reached=True,
                income_source="FORSORJNINGSSTOD",
                readiness="not_answered",
            ),
            {
                "outcome.due",
                "outcome.recorded",
                "outcome.reached",
                "outcome.ps_referral",
                "outcome.ps_follow_up",
                "outcome.fs_referral",
                "outcome.destination",
            },
        ),
        (
            SixMonths(date(2026, 11, 5), recorded=True, reached=True, income_source=None, readiness="unchanged"),
            {
                "outcome.due",
                "outcome.recorded",
                "outcome.reached",
                "outcome.ps_referral",
                "outcome.fs_referral",
                "outcome.destination",
                "outcome.self_sufficient",
                "outcome.answered",
            },
        ),  # unknown income: self-sufficient
    ],
)
def test_six_month_outcomes_by_cohort_and_by_due_date(followup, outcomes):
    cells = measures(domain.case_cells(case(consulted_on=date(2026, 5, 5), followups=(followup,))))
    for basis, day in (("cohort", D), ("due", date(2026, 11, 5))):
        found = {m.removesuffix(f"@{basis}") for m, _, d in cells if m.endswith(f"@{basis}") and d == day}
        assert found == outcomes
    destination = [detail for m, detail, _ in cells if m == "outcome.destination@due"]
    assert destination in ([], [followup.income_source or "OKAND"])


def test_meetings_held_cancelled_and_pre_meetings():
    held = MeetingFacts("M1", "T1", "Gävle", D, pre_meeting_held_on=date(2026, 4, 3), cases_recorded=2)
    assert measures(domain.meeting_cells(held)) == Counter(
        {("meeting_held", "", D): 1, ("pre_meeting", "", date(2026, 4, 3)): 1}
    )
    assert measures(domain.meeting_cells(MeetingFacts("M2", "T1", "Gävle", D))) == Counter()  # nothing recorded
    assert measures(domain.meeting_cells(MeetingFacts("M3", "T1", "Gävle", D, "staff_absent"))) == Counter(
        {("meeting_cancelled", "staff_absent", D): 1}
    )
    assert measures(domain.meeting_cells(MeetingFacts("M4", "T1", "Gävle", D, "holiday"))) == Counter()


def test_the_figures_from_cells_counts_shares_medians_and_breakdowns():
    cases = [
        case(case_ref="A", referring_party="AF", consulted_on=date(2026, 4, 17), individual_attended=True),
        case(case_ref="B", referring_party="AF", consulted_on=date(2026, 4, 27), violence_question_asked=False),
        case(case_ref="C", team_id="T2", municipality="Sandviken", gender="MAN", consulted_on=date(2026, 5, 27)),
    ]
    cells = county.all_cells(cases)
    f = exact(county.sums(cells, date(2026, 4, 1), date(2026, 6, 30)))
    assert f["cases_referred"]["value"] == 3
    assert f["cases_referred"]["by"]["referring_party"] == {"AF": 2, "FK": 1, "KOMMUN": 0, "REGION": 0}
    assert f["cases_referred"]["by"]["team"] == {"T1": 2, "T2": 1}
    assert f["violence_question_asked"]["value"] == 2 and f["violence_question_asked"]["share"] == round(2 / 3, 4)
    assert f["violence_question_asked"]["by"]["referring_party"]["AF"] == {"value": 1, "of": 2, "share": 0.5}
    assert f["individual_attended"] == {
        "value": 1,
        "of": 3,
        "share": round(1 / 3, 4),
        "by": f["individual_attended"]["by"],
    }
    assert f["lead_time_days"]["median"] == 20.0 and f["lead_time_days"]["n"] == 3  # 10, 20, 50 days
    assert f["lead_time_days"]["by"]["team"]["T1"] == {"median": 15.0, "n": 2}
    assert f["queue_at_end"]["value"] == 0
    april = exact(county.sums(cells, date(2026, 4, 1), date(2026, 4, 30)))
    assert april["queue_at_end"]["value"] == 1 and april["cases_consulted"]["value"] == 2
    filtered = exact(county.sums(cells, date(2026, 4, 1), date(2026, 6, 30), {"gender": ["MAN"]}), filtered=True)
    assert filtered["cases_referred"]["value"] == 1 and filtered["meetings_held"] == {"applies": False, "value": None}


def test_periods_and_ranges():
    assert domain.parse_period("2026Q3").start == date(2026, 7, 1) and domain.parse_period("2026Q3").kind == "quarter"
    assert domain.date_range(date(2026, 7, 1), date(2026, 9, 30)).label == "2026Q3"
    assert domain.date_range(date(2026, 7, 2), date(2026, 9, 30)).label == "2026-07-02..2026-09-30"
    assert [q.label for q in domain.quarters_between(date(2025, 11, 3), date(2026, 4, 1))] == [
        "2025Q4",
        "2026Q1",
        "2026Q2",
    ]
    for bad in ("2026Q5", "2026-13", "1999", "2026-09-30..2026-07-01", "soon"):
        with pytest.raises(domain.BadPeriod):
            domain.parse_period(bad)
    assert domain.median({}) is None and domain.median({3: 1, 9: 1}) == 6.0 and domain.median({2: 3, 7: 1}) == 2.0


def test_who_reads_what():
    teams = {"T1": "Gävle", "T2": "Gävle", "T3": "Sandviken"}
    board = Reader("board")
    coordinator = Reader("coordinator", frozenset({"T1"}))
    for scope in (Scope(), Scope("Sandviken"), Scope(teams=("T3",))):
        domain.check_scope(board, scope, teams)
    for scope in (Scope(), Scope("Gävle"), Scope(teams=("T1",))):
        domain.check_scope(coordinator, scope, teams)
    for scope in (Scope("Sandviken"), Scope(teams=("T2",)), Scope(teams=("T1", "T3"))):
        with pytest.raises(NotInScope):
            domain.check_scope(coordinator, scope, teams)
    with pytest.raises(NotInScope):
        domain.check_scope(Reader("auditor"), Scope(), teams)
    # outside their own teams, by whole quarter or year and unfiltered (no differencing by day)
    domain.check_scope(coordinator, Scope(teams=("T1",)), teams, period_kind="range", filtered=True)
    domain.check_scope(board, Scope("Gävle"), teams, period_kind="range", filtered=True)
    for kind, filtered in (("range", False), ("month", False), ("quarter", True)):
        with pytest.raises(NotInScope):
            domain.check_scope(coordinator, Scope("Gävle"), teams, period_kind=kind, filtered=filtered)
    assert domain.visible_breakdown(coordinator, "team", "T1", teams)
    assert not domain.visible_breakdown(coordinator, "team", "T2", teams)
    assert domain.visible_breakdown(coordinator, "municipality", "Gävle", teams)
    assert domain.visible_breakdown(coordinator, "gender", "MAN", teams)


def test_every_share_has_a_whole_declared_before_it_and_every_code_has_words():
    seen = set()
    for f in catalogue.FIGURES:
        assert f.base is None or f.base in seen, f.key
        assert f.kind != "share" or f.base, f.key
        seen.add(f.key)
        for dimension in f.by:
            assert dimension in catalogue.DIMENSION_NAMES
    for values in catalogue.VALUES.values():
        for code in values:
            assert code in catalogue.CODE_LABELS, code


def test_the_docs_table_of_figures_is_generated_from_the_catalogue():
    text = (Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text()
    start = text.index("<!-- figures:start -->") + len("<!-- figures:start -->")
    assert text[start : text.index("<!-- figures:end -->")] == "\n" + catalogue.docs_table(), (
        "docs/metrics.md is stale: run python -m services.metrics docs"
    )
