"""What the simulated agencies and coordinators do, as distributions (pure: no I/O).

Every draw comes from one seeded ``random.Random``, so a run can be repeated. The defaults
follow the domain brief: referrals from all four parties (not evenly: the board's goal is an
even spread, life is not), more women than men, ages 18–64, a few referrals without FK's
consent, the odd cancelled meeting, most individuals attending, most follow-ups answered.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta

from shared.contracts.vocabulary import (
    ActionType,
    IncomeSource,
    NotConsultedReason,
    Party,
    PlanStatus,
    Readiness,
    ReasonCode,
)

from .identities import random_adult

PUBLIC_SUPPORT = (
    IncomeSource.SJUKPENNING,
    IncomeSource.FORSORJNINGSSTOD,
    IncomeSource.A_KASSA,
    IncomeSource.AKTIVITETSSTOD,
)
SELF_SUFFICIENT = (IncomeSource.LON, IncomeSource.STUDIEMEDEL)


def _pick(rng: random.Random, weights: dict) -> object:
    keys = list(weights)
    return rng.choices(keys, weights=[weights[k] for k in keys])[0]


@dataclass(frozen=True)
class Profile:
    referrals_per_week: float = 25.0  # over all simulated teams (about 1,300 a year)
    party_mix: dict[Party, float] = field(
        default_factory=lambda: {Party.AF: 0.25, Party.FK: 0.35, Party.KOMMUN: 0.2, Party.REGION: 0.2}
    )
    women_share: float = 0.6
    ages: tuple[int, int] = (18, 64)
    income_at_referral: dict[IncomeSource, float] = field(
        default_factory=lambda: {
            IncomeSource.SJUKPENNING: 0.4,
            IncomeSource.FORSORJNINGSSTOD: 0.25,
            IncomeSource.A_KASSA: 0.1,
            IncomeSource.AKTIVITETSSTOD: 0.1,
            IncomeSource.INGEN: 0.1,
            IncomeSource.LON: 0.05,
        }
    )
    missing_fk_consent: float = 0.1  # referred without FK's consent (given later, mostly)
    consent_given_after_reminder: float = 0.8
    invalid_referrals: float = 0.02  # an agency system sends something the intake refuses
    cancellations: float = 0.05  # a meeting cancelled by the coordinator (staff absent)
    attendance: float = 0.85  # the individual attends the consultation
    not_consulted: float = 0.05  # the team decides not to consult a case
    followup_response: float = 0.85  # the responsible party records the follow-up
    reached: float = 0.9  # the individual is reached at a follow-up
    self_sufficient_at_six_months: float = 0.3  # of those reached, share with work or studies
    more_ready: float = 0.55

    # ------------------------------------------------------------------ draws

    def referring_party(self, rng: random.Random) -> Party:
        return _pick(rng, self.party_mix)

    def referral(self, rng: random.Random, *, agency_ref: str, team_id: str, today: date, used: set[str]) -> dict:
        """The payload of a SubmitReferral as the agency system sends it."""
        woman = rng.random() < self.women_share
        while (pnr := random_adult(rng, today, woman=woman, ages=self.ages)) in used:
            pass
        used.add(pnr)
        parties = [p for p in Party if not (p is Party.FK and rng.random() < self.missing_fk_consent)]
        payload = {
            "agency_ref": agency_ref,
            "personnummer": pnr,
            "team_id": team_id,
            "question": "Vilka insatser behövs för att komma närmare arbete eller studier?",
            "officer_id": f"handl-{rng.randint(1, 99):02d}",
            "consents": [
                {
                    "party": p.value,
                    "given_on": str(today - timedelta(days=rng.randint(1, 10))),
                    "form_ref": f"SAMTYCKE-{uuid.UUID(int=rng.getrandbits(128)).hex[:8]}",
                }
                for p in parties
            ],
            "income_source": _pick(rng, self.income_at_referral).value,
            "reason_codes": [rng.choice(list(ReasonCode)).value],
            "wishes_to_attend": True,
        }
        if rng.random() < self.invalid_referrals:
            payload["personnummer"] = pnr[:-1] + str((int(pnr[-1]) + 1) % 10)  # wrong check digit
        return payload

    def consultation(self, rng: random.Random, *, held_on: date) -> dict:
        """The coordinator's record of one case on a held meeting's agenda."""
        if rng.random() < self.not_consulted:
            return {"outcome": "not_consulted", "reason": rng.choice(list(NotConsultedReason)).value}
        return {
            "outcome": "held",
            "held_on": str(held_on),
            "parties_present": [p.value for p in Party],
            "individual_attended": rng.random() < self.attendance,
            "actions": [
                {
                    "type": rng.choice(list(ActionType)).value,
                    "responsible_party": rng.choice(list(Party)).value,
                    "due_on": str(held_on + timedelta(days=rng.randint(14, 60))),
                }
            ],
        }

    def followup_answers(self, rng: random.Random, *, kind: str, today: date) -> dict | None:
        """What the responsible party records when a follow-up is due, or None (no answer)."""
        if rng.random() >= self.followup_response:
            return None
        answers: dict = {"recorded_on": str(today), "reached": rng.random() < self.reached}
        if not answers["reached"]:
            return answers
        if kind == "plan_check":
            answers["plan_status"] = rng.choice(list(PlanStatus)).value
        else:
            income = (
                rng.choice(SELF_SUFFICIENT)
                if rng.random() < self.self_sufficient_at_six_months
                else rng.choice(PUBLIC_SUPPORT)
            )
            answers["income_source"] = income.value
            answers["readiness"] = (
                rng.choice((Readiness.MORE, Readiness.MUCH_MORE))
                if rng.random() < self.more_ready
                else rng.choice((Readiness.UNCHANGED, Readiness.LESS))
            ).value
        return answers
