"""Domain events for the metrics tests, made from generated facts (``tests/support/county``):
what the other services would publish for those cases and meetings. The metrics service
must then hold exactly those facts, and answer the figures they give."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time

from services.metrics.domain import CaseFacts, MeetingFacts
from tests.support import county
from tests.support.broker import envelope

QUARTER = "2026Q2"
QUARTER_START = date(2026, 4, 1)


def _e(event_type: str, /, **payload) -> dict:
    return envelope(event_type, payload, producer="test")


def _at(day: date, hour: int = 8) -> str:
    return datetime.combine(day, time(hour), UTC).isoformat()


def meeting_id(team: str, day: date) -> str:
    return f"{team}-{day:%Y%m%d}"


def county_quarter(seed: int = 8, cases: int = 320) -> tuple[list[CaseFacts], list[MeetingFacts]]:
    """A county's quarter (2026Q2): ``cases`` referrals over its 91 days in ten municipalities,
    with many small cells; their consultations, follow-ups and meetings."""
    rng = random.Random(seed)
    team_of = county.teams(2)
    case_list = county.cases(rng, cases, QUARTER_START, 91, team_of)
    return case_list, meetings_of(case_list, team_of, rng)


def meetings_of(case_list: list[CaseFacts], team_of: dict[str, str], rng: random.Random) -> list[MeetingFacts]:
    """The meetings the cases were consulted at, a few cancelled ones, some pre-meetings."""
    recorded: dict[str, int] = {}
    for case in case_list:
        day = case.consulted_on or case.not_consulted_on
        if day is not None:
            key = meeting_id(case.team_id, day)
            recorded[key] = recorded.get(key, 0) + 1
    meetings = []
    for key, n in sorted(recorded.items()):
        team, day = key.rsplit("-", 1)[0], datetime.strptime(key.rsplit("-", 1)[1], "%Y%m%d").date()
        meetings.append(MeetingFacts(key, team, team_of[team], day, None, day if rng.random() < 0.5 else None, n))
    for i, team in enumerate(sorted(team_of)):
        if i % 3 == 0:
            day = date(2026, 5, 1 + i % 28)
            meetings.append(
                MeetingFacts(
                    f"{team}-C{i}", team, team_of[team], day, ["no_cases", "staff_absent", "holiday", "other"][i % 4]
                )
            )
    return meetings


def events_from_facts(case_list: list[CaseFacts], meetings: list[MeetingFacts]) -> list[dict]:
    events = []
    for m in meetings:
        events.append(
            _e(
                "MeetingScheduled",
                meeting_id=m.meeting_id,
                team_id=m.team_id,
                municipality=m.municipality,
                meeting_date=str(m.meeting_date),
                starts_at=_at(m.meeting_date),
                cutoff_at=_at(m.meeting_date),
                capacity=8,
            )
        )
        if m.cancelled_reason:
            events.append(
                _e(
                    "MeetingCancelled",
                    meeting_id=m.meeting_id,
                    team_id=m.team_id,
                    municipality=m.municipality,
                    meeting_date=str(m.meeting_date),
                    reason=m.cancelled_reason,
                    cases_moved=0,
                    cancelled_at=_at(m.meeting_date),
                )
            )
        if m.pre_meeting_held_on:
            events.append(
                _e(
                    "PreMeetingHeld",
                    meeting_id=m.meeting_id,
                    team_id=m.team_id,
                    municipality=m.municipality,
                    meeting_date=str(m.meeting_date),
                    held_on=str(m.pre_meeting_held_on),
                    recorded_at=_at(m.pre_meeting_held_on),
                )
            )
    for c in case_list:
        events.append(
            _e(
                "CaseReferred",
                case_ref=c.case_ref,
                team_id=c.team_id,
                municipality=c.municipality,
                referring_party=c.referring_party,
                gender=c.gender,
                age_band=c.age_band,
                income_source=c.income_at_referral,
                consented_parties=[c.referring_party],
                wishes_to_attend=None,
                violence_question_asked=bool(c.violence_question_asked),
                reason_codes=[],
                referred_at=_at(c.referred_on),
            )
        )
        for day, reason in c.postponements:
            events.append(
                _e(
                    "CasePostponed",
                    case_ref=c.case_ref,
                    team_id=c.team_id,
                    from_meeting_id=meeting_id(c.team_id, day),
                    from_meeting_date=str(day),
                    to_meeting_id=None,
                    to_meeting_date=None,
                    reason=reason,
                    missing_parties=[],
                    postponed_at=_at(day),
                )
            )
        if c.consulted_on:
            events.append(
                _e(
                    "ConsultationHeld",
                    case_ref=c.case_ref,
                    team_id=c.team_id,
                    municipality=c.municipality,
                    meeting_id=meeting_id(c.team_id, c.consulted_on),
                    meeting_date=str(c.consulted_on),
                    held_on=str(c.consulted_on),
                    referring_party=c.referring_party,
                    referred_at=_at(c.referred_on),
                    parties_present=["AF", "FK", "KOMMUN", "REGION"],
                    others_invited=[],
                    individual_attended=bool(c.individual_attended),
                    actions=[{"type": a, "responsible_party": "KOMMUN", "due_on": "2027-01-15"} for a in c.actions],
                    recorded_at=_at(c.consulted_on, 12),
                )
            )
        if c.not_consulted_on:
            events.append(
                _e(
                    "CaseNotConsulted",
                    case_ref=c.case_ref,
                    team_id=c.team_id,
                    municipality=c.municipality,
                    meeting_id=meeting_id(c.team_id, c.not_consulted_on),
                    meeting_date=str(c.not_consulted_on),
                    referring_party=c.referring_party,
                    reason="handled_elsewhere",
                    recorded_at=_at(c.not_consulted_on, 12),
                )
            )
        for f in c.followups:
            common = dict(
                followup_id=f"{c.case_ref}.six_months",
                case_ref=c.case_ref,
                team_id=c.team_id,
                municipality=c.municipality,
                kind="six_months",
                referring_party=c.referring_party,
                responsible_party=c.referring_party,
                consultation_held_on=str(c.consulted_on),
                due_on=str(f.due_on),
            )
            events.append(_e("FollowUpScheduled", **common, scheduled_at=_at(c.consulted_on)))
            if f.cancelled:
                events.append(
                    _e(
                        "FollowUpCancelled",
                        followup_id=common["followup_id"],
                        case_ref=c.case_ref,
                        kind="six_months",
                        reason="MOVED",
                        cancelled_at=_at(f.due_on),
                    )
                )
            elif f.recorded:
                events.append(
                    _e(
                        "FollowUpCompleted",
                        **common,
                        recorded_on=str(f.due_on),
                        reached=bool(f.reached),
                        income_source=f.income_source,
                        readiness=f.readiness,
                        plan_status=None,
                        revision=1,
                        recorded_by=c.referring_party,
                        recorded_at=_at(f.due_on),
                    )
                )
    return events
