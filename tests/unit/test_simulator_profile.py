"""The simulator's draws are what the platform accepts (or, on purpose, refuses)."""

from __future__ import annotations

import random
from collections import Counter
from datetime import date

import pydantic
from hypothesis import given, settings
from hypothesis import strategies as st

from services.followup.domain import Answers, record_problems
from services.meeting.routes import ConsultationBody
from services.referral.domain import ConsentGiven, identity_problems, referral_problems
from shared.contracts import SubmitReferral
from shared.contracts.vocabulary import FollowUpKind
from simulator.profile import Profile

TODAY = date(2026, 3, 2)
ADAPTER = pydantic.TypeAdapter(ConsultationBody)


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_referrals_are_valid_commands_except_the_intended_invalid_ones(seed):
    rng, profile = random.Random(seed), Profile(invalid_referrals=0.0)
    payload = profile.referral(rng, agency_ref="A-1", team_id="GAVLE-BRYNAS", today=TODAY, used=set())
    assert problems(payload) == []


def problems(payload: dict) -> list:
    command = SubmitReferral.model_validate(payload)
    found, _ = identity_problems(command.personnummer, command.protected_identity, TODAY)
    return found + referral_problems(
        team_id=command.team_id,
        known_teams={command.team_id},
        question=command.question,
        consents=[ConsentGiven.of(c) for c in command.consents],
        today=TODAY,
    )


def test_the_share_of_invalid_referrals_is_refused():
    rng, profile = random.Random(3), Profile(invalid_referrals=0.2)
    used: set[str] = set()
    refused = sum(
        bool(problems(profile.referral(rng, agency_ref=f"A-{i}", team_id="T", today=TODAY, used=used)))
        for i in range(1000)
    )
    assert 150 < refused < 250


def test_the_party_mix_and_missing_consent_follow_the_profile():
    rng, profile = random.Random(5), Profile()
    parties = Counter(profile.referring_party(rng).value for _ in range(4000))
    assert abs(parties["FK"] / 4000 - 0.35) < 0.03 and abs(parties["AF"] / 4000 - 0.25) < 0.03
    missing = sum(
        "FK"
        not in {
            c["party"] for c in profile.referral(rng, agency_ref="A", team_id="T", today=TODAY, used=set())["consents"]
        }
        for _ in range(2000)
    )
    assert abs(missing / 2000 - 0.1) < 0.03


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_consultation_records_and_follow_up_answers_are_accepted(seed):
    rng, profile = random.Random(seed), Profile(followup_response=1.0)
    ADAPTER.validate_python(profile.consultation(rng, held_on=TODAY))
    for kind in FollowUpKind:
        answers = profile.followup_answers(rng, kind=kind.value, today=TODAY)
        problems = record_problems(
            kind=kind,
            status="due",
            responsible="AF",
            by_party="AF",
            answers=Answers(
                **{"income_source": None, "readiness": None, "plan_status": None, **answers, "recorded_on": TODAY}
            ),
            held_on=date(2025, 9, 1),
            today=TODAY,
        )
        assert problems == []
