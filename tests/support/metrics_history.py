"""A randomized event history as the metrics service receives it (seeded): teams and their
updates, meetings scheduled, cancelled (and on again), pre-meetings, and cases referred,
postponed, consulted or not, closed, with consents withdrawn, follow-ups scheduled, recorded,
corrected and cancelled. With ``awkward`` it also has what the log can hold in real life:
events of a case or meeting arriving out of order, facts sent twice (a later event of the same
fact with other values), corrections of a lower revision after a higher one, equal revisions,
a follow-up cancelled before it was scheduled, a consultation of a case never referred, and
referrals near midnight (their Swedish date is another day than UTC's).

Used by the rebuild's equivalence test and, at size, by the benchmark (``make bench``)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta

from shared.contracts import (
    CaseClosed,
    CaseNotConsulted,
    CasePostponed,
    CaseReferred,
    CaseScheduled,
    ConsentWithdrawn,
    ConsultationHeld,
    Contract,
    FollowUpCancelled,
    FollowUpCompleted,
    FollowUpScheduled,
    MeetingCancelled,
    MeetingScheduled,
    PreMeetingHeld,
    TeamUpdated,
)
from shared.contracts.meeting import PlanAction
from shared.contracts.vocabulary import (
    ActionType,
    AgeBand,
    CancellationReason,
    ExitReason,
    FollowUpKind,
    Gender,
    HostUnit,
    IncomeSource,
    NotConsultedReason,
    Party,
    PlanStatus,
    PostponementReason,
    Readiness,
)

START = date(2025, 1, 6)  # a Monday


def _at(day: date, hour: int = 9, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), UTC)


def history(seed: int, cases: int, *, teams: int = 6, awkward: bool = True) -> list[Contract]:
    """About 7 events per case (more with ``awkward``), in the order received."""
    rng = random.Random(seed)
    team_ids = [f"T{t:02d}" for t in range(teams)]
    municipality = {t: f"K{i % max(1, teams // 2)}" for i, t in enumerate(team_ids)}
    days = max(28, cases // max(1, teams))  # about one case per team and day
    timed: list[tuple[float, Contract]] = []  # (when it was sent, the event)

    def send(when: float, event: Contract) -> None:
        timed.append((when + (rng.uniform(-3, 3) if awkward and rng.random() < 0.15 else 0), event))

    for when, event in _teams(rng, team_ids, municipality, awkward):
        send(when, event)
    for team in team_ids:
        for when, event in _meetings(rng, team, municipality[team], days, awkward):
            send(when, event)
    for i in range(cases):
        team = team_ids[i % teams] if not (awkward and rng.random() < 0.02) else rng.choice(team_ids)
        for when, event in _case(rng, f"C{i:07d}", team, municipality[team], rng.uniform(0, days), awkward):
            send(when, event)
    timed.sort(key=lambda pair: pair[0])
    return [event for _, event in timed]


def _teams(rng: random.Random, team_ids: list[str], municipality: dict[str, str], awkward: bool) -> Iterator:
    places = sorted(set(municipality.values()))
    for team in team_ids:
        for revision in range(1, rng.randint(1, 3) + 1 if awkward else 2):
            for _ in range(2 if awkward and rng.random() < 0.2 else 1):  # an equal revision, another name
                yield (
                    rng.uniform(-1, 300),
                    TeamUpdated(
                        team_id=team,
                        team_name=f"Team {team} r{revision} {rng.randint(0, 9)}",
                        municipality=municipality[team] if rng.random() < 0.9 else rng.choice(places),
                        host_unit_type=HostUnit.HEALTH_CENTRE,
                        host_unit_name="VC",
                        cadence_weeks=2,
                        weekday=0,
                        meeting_time="13:00",
                        capacity=8,
                        cutoff_days=3,
                        fixed_parties=(Party.AF, Party.FK, Party.KOMMUN, Party.REGION),
                        revision=revision,
                        updated_at=_at(START),
                    ),
                )


def meeting_of(team: str, day: int) -> tuple[str, date]:
    """The team's fortnightly meeting on or after ``day`` (days from START)."""
    n = (day + 13) // 14
    return f"{team}-M{n:04d}", START + timedelta(days=14 * n)


def _meetings(rng: random.Random, team: str, municipality: str, days: int, awkward: bool) -> Iterator:
    for n in range(days // 14 + 3):
        meeting_id, day = f"{team}-M{n:04d}", START + timedelta(days=14 * n)
        facts = dict(meeting_id=meeting_id, team_id=team, municipality=municipality, meeting_date=day)
        when = 14.0 * n - 20

        def scheduled(at: float) -> tuple[float, Contract]:
            return at, MeetingScheduled(**facts, starts_at=_at(day, 13), cutoff_at=_at(day, 13), capacity=8)

        def cancelled(at: float, reason: CancellationReason) -> tuple[float, Contract]:
            return at, MeetingCancelled(**facts, reason=reason, cases_moved=0, cancelled_at=_at(day))

        yield scheduled(when)
        if rng.random() < 0.12:
            yield cancelled(when + 10, rng.choice(list(CancellationReason)))
            if rng.random() < 0.4:  # on again (a holiday removed), or cancelled for another reason
                yield scheduled(when + 11)
            if awkward and rng.random() < 0.2:
                yield cancelled(when + 12, rng.choice(list(CancellationReason)))
        if rng.random() < 0.5:
            for k in range(2 if awkward and rng.random() < 0.1 else 1):
                held = day - timedelta(days=rng.randint(1, 3) + k)
                # awkward: the pre-meeting may arrive before its meeting's scheduling
                yield (
                    (when - 1 if awkward and rng.random() < 0.1 else when + 13 + k),
                    PreMeetingHeld(**facts, held_on=held, recorded_at=_at(held)),
                )


def _case(rng: random.Random, case_ref: str, team: str, municipality: str, day: float, awkward: bool) -> Iterator:
    referred_at = _at(START, 0) + timedelta(days=day)
    if awkward and rng.random() < 0.1:  # near midnight: the Swedish date is the next day
        referred_at = _at(referred_at.date(), 23, rng.randint(0, 59))
    party = rng.choice(list(Party))
    income = rng.choice(list(IncomeSource))

    def referral(at: float) -> tuple[float, Contract]:
        return at, CaseReferred(
            case_ref=case_ref,
            team_id=team,
            municipality=municipality,
            referring_party=party if rng.random() < 0.9 else rng.choice(list(Party)),
            gender=rng.choice(list(Gender)),
            age_band=rng.choice(list(AgeBand)),
            income_source=income,
            consented_parties=tuple(Party),
            wishes_to_attend=None,
            violence_question_asked=rng.random() < 0.4,
            reason_codes=(),
            referred_at=referred_at,
        )

    never_referred = awkward and rng.random() < 0.02
    if not never_referred:
        yield referral(day)
        if awkward and rng.random() < 0.03:  # sent again, with other values
            yield referral(day + rng.uniform(0, 40))
    meeting_day = int(day) + 3
    meeting_id, meeting_date = meeting_of(team, meeting_day)
    yield (
        day + 0.1,
        CaseScheduled(
            case_ref=case_ref,
            team_id=team,
            meeting_id=meeting_id,
            meeting_date=meeting_date,
            starts_at=_at(meeting_date, 13),
            scheduled_at=referred_at,
        ),
    )
    for _ in range(rng.choice((0, 0, 0, 1, 2))):
        yield (
            float((meeting_date - START).days),
            CasePostponed(
                case_ref=case_ref,
                team_id=team,
                from_meeting_id=meeting_id,
                from_meeting_date=meeting_date,
                to_meeting_id=None,
                to_meeting_date=None,
                reason=rng.choice(list(PostponementReason)),
                postponed_at=_at(meeting_date),
            ),
        )
        meeting_day += 14
        meeting_id, meeting_date = meeting_of(team, meeting_day)
    if rng.random() < 0.05:
        withdrawn = (meeting_date - START).days - 2.0
        yield (
            withdrawn,
            ConsentWithdrawn(
                case_ref=case_ref,
                party=rng.choice(list(Party)),
                withdrawn_on=meeting_date - timedelta(days=2),
                on_behalf_of_individual=False,
                recorded_by=party,
                recorded_at=_at(meeting_date - timedelta(days=2)),
            ),
        )
    held_at = float((meeting_date - START).days) + 0.5
    if awkward and never_referred is False and rng.random() < 0.03:
        held_at = day - 0.5  # the consultation arrives before the referral
    outcome = rng.random()
    consulted = outcome < 0.8 or (awkward and outcome > 0.97)
    if consulted:
        for k in range(2 if awkward and rng.random() < 0.05 else 1):  # twice: other values
            yield (
                held_at + k,
                ConsultationHeld(
                    case_ref=case_ref,
                    team_id=team,
                    municipality=municipality,
                    meeting_id=meeting_id,
                    meeting_date=meeting_date,
                    held_on=meeting_date,
                    referring_party=party,
                    referred_at=referred_at,
                    parties_present=tuple(Party),
                    others_invited=(),
                    individual_attended=rng.random() < 0.7,
                    actions=tuple(
                        PlanAction(
                            type=rng.choice(list(ActionType)),
                            responsible_party=rng.choice(list(Party)),
                            due_on=meeting_date + timedelta(days=30),
                        )
                        for _ in range(rng.randint(0, 3))
                    ),
                    recorded_at=_at(meeting_date, 15),
                ),
            )
    if not consulted or (awkward and outcome > 0.96):
        yield (
            held_at,
            CaseNotConsulted(
                case_ref=case_ref,
                team_id=team,
                municipality=municipality,
                meeting_id=meeting_id,
                meeting_date=meeting_date,
                referring_party=party,
                reason=rng.choice(list(NotConsultedReason)),
                recorded_at=_at(meeting_date, 15),
            ),
        )
    closed = rng.random() < 0.12
    if closed:
        closed_day = held_at + rng.uniform(1, 200)
        for k in range(2 if awkward and rng.random() < 0.1 else 1):
            yield (
                closed_day + k,
                CaseClosed(
                    case_ref=case_ref,
                    reason=rng.choice(list(ExitReason)),
                    closed_at=_at(START, 22, 30) + timedelta(days=int(closed_day + k)),
                ),
            )
    if consulted:
        yield from _followups(rng, case_ref, team, municipality, party, meeting_date, held_at, closed, awkward)


def _followups(
    rng: random.Random,
    case_ref: str,
    team: str,
    municipality: str,
    party: Party,
    held_on: date,
    held_at: float,
    closed: bool,
    awkward: bool,
) -> Iterator:
    for kind, months in ((FollowUpKind.PLAN_CHECK, 2), (FollowUpKind.SIX_MONTHS, 6)):
        facts = dict(
            followup_id=f"{case_ref}.{kind.value}",
            case_ref=case_ref,
            team_id=team,
            municipality=municipality,
            kind=kind,
            referring_party=party,
            responsible_party=party,
            consultation_held_on=held_on,
        )
        due_on = held_on + timedelta(days=30 * months)
        due_at = held_at + 30 * months
        scheduled_at = held_at + 0.1
        if awkward and rng.random() < 0.03:
            scheduled_at = due_at + 5  # arrives after its record, or after its cancellation
        yield scheduled_at, FollowUpScheduled(**facts, due_on=due_on, scheduled_at=_at(held_on))
        if awkward and rng.random() < 0.03:  # scheduled again: the due date moved
            due_on += timedelta(days=7)
            yield scheduled_at + 1, FollowUpScheduled(**facts, due_on=due_on, scheduled_at=_at(held_on))
        if closed and rng.random() < 0.7:
            yield (
                due_at - (60 if awkward and rng.random() < 0.3 else 1),
                FollowUpCancelled(
                    followup_id=facts["followup_id"],
                    case_ref=case_ref,
                    kind=kind,
                    reason=ExitReason.MOVED,
                    cancelled_at=_at(due_on),
                ),
            )
            continue
        if rng.random() < 0.75:
            revisions = [1] + ([2] if rng.random() < 0.15 else []) + ([3] if awkward and rng.random() < 0.05 else [])
            if awkward and rng.random() < 0.05:
                revisions.append(revisions[-1])  # the same revision again, other values
            if awkward and len(revisions) > 1 and rng.random() < 0.3:
                rng.shuffle(revisions)  # a correction overtaken by a later one
            for k, revision in enumerate(revisions):
                reached = rng.random() < 0.85
                yield (
                    due_at + 2 + k,
                    FollowUpCompleted(
                        **facts,
                        due_on=due_on,
                        recorded_on=due_on + timedelta(days=k),
                        reached=reached,
                        income_source=rng.choice(list(IncomeSource)) if reached and rng.random() < 0.95 else None,
                        readiness=rng.choice(list(Readiness)) if reached and rng.random() < 0.9 else None,
                        plan_status=rng.choice(list(PlanStatus)) if rng.random() < 0.8 else None,
                        revision=revision,
                        recorded_by=party,
                        recorded_at=_at(due_on),
                    ),
                )


async def rebuilt_as_owner(settings):
    """A rebuild is the tables' owner's work (the service's own role may not drop or create a
    table): as ``python -m services.metrics rebuild`` and the start-up catch-up do it."""
    import asyncpg

    from services.metrics import rebuild

    async with asyncpg.create_pool(settings.service_database_url("metrics"), min_size=1, max_size=1) as pool:
        return await rebuild.rebuild(pool)
