"""The meeting rules, pure: calendar, cut-off, agenda planning, moves, consent, consultations."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from types import SimpleNamespace

import pytest

from services.meeting import domain
from services.meeting.domain import Move, Refused, Slot, TakenOff, TeamCalendar, Waiting
from shared.contracts.vocabulary import Party, PostponementReason
from shared.platform.clock import STOCKHOLM

TUESDAY = date(2026, 12, 1)
TEAM = TeamCalendar(
    team_id="T", cadence_weeks=2, weekday=1, meeting_time=time(9, 0), capacity=3, cutoff_days=5, anchor=TUESDAY
)


def at(day: date, hour: int = 12) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=STOCKHOLM)


def test_cutoff_is_days_before_the_start_at_the_same_swedish_time():
    assert domain.cutoff_at(TUESDAY, time(9, 0), 5) == datetime(2026, 11, 26, 9, 0, tzinfo=STOCKHOLM)
    # Summer time: 09:00 in Sweden is 07:00 UTC
    assert domain.starts_at(date(2026, 6, 2), time(9, 0)).astimezone(UTC).hour == 7


def test_calendar_follows_the_cadence_from_the_anchor_within_the_horizon():
    dates = domain.calendar_dates(TEAM, now=at(date(2026, 11, 20)), horizon_weeks=12, skip_dates=set())
    assert dates == [TUESDAY + timedelta(weeks=2 * k) for k in range(6)]
    assert all(d.weekday() == 1 for d in dates)


def test_calendar_leaves_out_skip_dates_and_meetings_past_their_cutoff():
    now = at(date(2026, 11, 27))  # after the cut-off of 1 December (26 Nov 09:00)
    dates = domain.calendar_dates(TEAM, now=now, horizon_weeks=7, skip_dates={date(2026, 12, 29)})
    assert dates == [date(2026, 12, 15), date(2027, 1, 12)]


def test_a_new_calendar_starts_on_the_first_weekday_whose_cutoff_is_ahead():
    # Thursday 3 Dec 10:00, cut-off 5 days: Wed 9 Dec's cut-off (4 Dec 10:00) is ahead
    assert domain.first_anchor(2, time(10, 0), 5, at(date(2026, 12, 3), 9)) == date(2026, 12, 9)
    # at 11:00 on 4 Dec that cut-off has passed: the week after
    assert domain.first_anchor(2, time(10, 0), 5, at(date(2026, 12, 4), 11)) == date(2026, 12, 16)
    assert domain.on_calendar(TEAM, date(2026, 12, 15)) and not domain.on_calendar(TEAM, date(2026, 12, 8))


def waiting(n: int) -> list[Waiting]:
    return [Waiting(f"C{i:03}", 100 + i, None) for i in range(n)]


def test_agenda_fills_meetings_in_date_order_to_capacity_first_come_first_served():
    slots = [Slot("M2", date(2026, 12, 15), 2), Slot("M1", date(2026, 12, 1), 3)]
    queue = waiting(7)
    plan = domain.plan_agenda(slots, list(reversed(queue)))
    assert [plan[c.case_ref] for c in queue] == ["M1", "M1", "M1", "M2", "M2", None, None]


def test_a_case_earlier_in_the_queue_goes_ahead_and_displaces_the_newest():
    slots = [Slot("M1", date(2026, 12, 1), 2), Slot("M2", date(2026, 12, 15), 2)]
    queue = waiting(4)
    current = {"C000": "M1", "C001": "M1", "C002": "M2", "C003": "M2"}
    queue = [Waiting(c.case_ref, c.queue_seq, current[c.case_ref]) for c in queue]
    # a case of a cancelled meeting, in the queue before all of them, comes back
    back = Waiting("OLD", 7, None)
    plan = domain.plan_agenda(slots, queue + [back])
    assert plan == {"OLD": "M1", "C000": "M1", "C001": "M2", "C002": "M2", "C003": None}
    dates = {"M1": date(2026, 12, 1), "M2": date(2026, 12, 15), "X": date(2026, 11, 17)}
    result = domain.moves(
        current | {"OLD": None}, plan, dates, {"OLD": TakenOff("X", PostponementReason.MEETING_CANCELLED)}
    )
    assert set(result) == {
        Move("OLD", "X", "M1", PostponementReason.MEETING_CANCELLED),
        Move("C001", "M1", "M2", PostponementReason.DISPLACED),
        Move("C003", "M2", None, PostponementReason.DISPLACED),
    }


def test_moving_to_an_earlier_meeting_or_a_first_meeting_is_only_scheduling():
    dates = {"M1": date(2026, 12, 1), "M2": date(2026, 12, 15)}
    result = domain.moves({"A": "M2", "B": None}, {"A": "M1", "B": "M2"}, dates, {})
    assert set(result) == {Move("A", "M2", "M1", None), Move("B", None, "M2", None)}
    assert all(m.scheduled for m in result)


def test_a_case_taken_off_and_not_waiting_is_announced_postponed_without_a_meeting():
    off = TakenOff("M1", PostponementReason.CONSENT_WITHDRAWN, (Party.FK,))
    [move] = domain.moves({}, {}, {"M1": date(2026, 12, 1)}, {"A": off})
    assert move == Move("A", "M1", None, PostponementReason.CONSENT_WITHDRAWN, (Party.FK,))
    assert not move.scheduled


def test_expected_date_beyond_the_calendar_counts_one_meeting_per_capacity():
    slots = [Slot("M1", date(2026, 12, 1), 3), Slot("M2", date(2026, 12, 15), 3)]
    kwargs = dict(
        open_slots=slots, cadence_weeks=2, capacity=3, last_meeting=date(2026, 12, 15), today=date(2026, 11, 20)
    )
    assert domain.expected_date(position=3, **kwargs) == date(2026, 12, 1)
    assert domain.expected_date(position=4, **kwargs) == date(2026, 12, 15)
    assert domain.expected_date(position=7, **kwargs) == date(2026, 12, 29)
    assert domain.expected_date(position=10, **kwargs) == date(2027, 1, 12)


def test_missing_and_withdrawn_consents():
    consents = {"AF": "given", "FK": "withdrawn", "REGION": "given"}
    assert domain.missing_consents(("AF", "FK", "KOMMUN", "REGION"), consents) == (Party.KOMMUN,)
    assert domain.held_back_by(consents, frozenset({"FK"})) == (Party.FK,)
    assert domain.held_back_by(consents, frozenset({"AF"})) == ()


def test_consultation_rules():
    ok = dict(
        meeting_status="closed",
        meeting_date=date(2026, 12, 1),
        case_status="queued",
        on_this_meeting=True,
        held_on=date(2026, 12, 1),
        today=date(2026, 12, 2),
        parties_present=("AF", "FK"),
        actions=(),
    )
    domain.check_consultation(**ok)
    for change, code in (
        (dict(meeting_status="open"), "agenda_open"),
        (dict(meeting_status="cancelled"), "meeting_cancelled"),
        (dict(on_this_meeting=False), "not_on_agenda"),
        (dict(case_status="consulted"), "not_on_agenda"),
        (dict(held_on=date(2026, 12, 3)), "held_on_in_future"),
        (dict(held_on=date(2026, 11, 30)), "held_before_meeting"),
        (dict(parties_present=("AF", "AF")), "party_repeated"),
        (dict(actions=(domain.ActionRecord("sip", "FK", date(2026, 11, 1)),)), "action_due_before_consultation"),
    ):
        with pytest.raises(Refused) as refused:
            domain.check_consultation(**{**ok, **change})
        assert refused.value.code == code


def test_cancellation_and_pre_meeting_rules():
    with pytest.raises(Refused, match="meeting_held"):
        domain.check_cancellable(
            status="closed", meeting_date=date(2026, 12, 1), today=date(2026, 12, 1), consultations=1
        )
    domain.check_cancellable(status="closed", meeting_date=date(2026, 12, 1), today=date(2026, 12, 1), consultations=0)
    with pytest.raises(Refused, match="pre_meeting_after_meeting"):
        domain.check_pre_meeting(
            status="closed", meeting_date=date(2026, 12, 1), held_on=date(2026, 12, 2), today=date(2026, 12, 3)
        )


def test_newcomers_are_placed_as_planning_the_whole_queue_again_would_place_them():
    """``place_newcomers`` reads only how many cases ahead are on each open meeting, not the
    queue: on a settled agenda it must give exactly what ``replan`` gives over the whole queue."""
    rng = random.Random(15)
    team = SimpleNamespace(team_id="T")
    now = at(date(2026, 11, 20))
    compared = 0
    for _ in range(400):
        meetings = [
            domain.Meeting(
                f"M{i}", "T", TUESDAY + timedelta(weeks=2 * i), now, now + timedelta(days=9), rng.randint(0, 4)
            )
            for i in range(rng.randint(0, 4))
        ]
        rng.shuffle(meetings)
        ahead = [Waiting(f"A{i:03}", i, None) for i in range(rng.randint(0, 14))]
        settled = domain.plan_agenda(domain.slots(meetings), ahead)
        ahead = [Waiting(w.case_ref, w.queue_seq, settled[w.case_ref]) for w in ahead]
        newcomers = [f"N{i}" for i in range(rng.randint(1, 4))]
        queue = ahead + [Waiting(ref, 100 + i, None) for i, ref in enumerate(newcomers)]
        whole = domain.replan(team, meetings, queue, {}, origin_dates={}, referring={}, now=now)  # type: ignore[arg-type]
        counts = Counter(w.meeting_id for w in ahead)
        assert domain.place_newcomers(team, meetings, counts, newcomers, now) == whole  # type: ignore[arg-type]
        compared += bool(whole.placements)
    assert compared > 100  # (most rounds placed someone)


def test_newcomers_on_an_agenda_that_is_not_settled_ask_for_the_whole_queue_to_be_planned():
    team = SimpleNamespace(team_id="T")
    now = at(date(2026, 11, 20))
    meeting = domain.Meeting("M1", "T", TUESDAY, now, now + timedelta(days=9), 3)
    # a case ahead waits although the meeting has room: it would move
    assert domain.place_newcomers(team, [meeting], {None: 1}, ["N1"], now) is None  # type: ignore[arg-type]
    # a case ahead is on a meeting that is not open
    assert domain.place_newcomers(team, [meeting], {"M0": 1}, ["N1"], now) is None  # type: ignore[arg-type]
    # settled: the newcomer takes the seat left
    plan = domain.place_newcomers(team, [meeting], {"M1": 2}, ["N1", "N2"], now)  # type: ignore[arg-type]
    assert plan is not None and [(p.case_ref, p.meeting_id) for p in plan.placements] == [("N1", "M1")]
