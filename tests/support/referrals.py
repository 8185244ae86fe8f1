"""SubmitReferral commands as an agency system would send them (test data only)."""

from __future__ import annotations

import random
import uuid
from datetime import date

from tests.support.broker import envelope, publish
from tests.support.identities import random_adult


def submit_referral(rng: random.Random | None = None, *, team_id: str = "GAVLE-HC1",
                    agency_ref: str | None = None, **overrides) -> dict:
    rng = rng or random.Random()
    payload = {
        "agency_ref": agency_ref or f"AREF-{uuid.uuid4().hex[:12]}",
        "personnummer": random_adult(rng),
        "team_id": team_id,
        "question": "Vilket stöd behövs för att komma närmare arbete?",
        "consents": [{"party": p, "given_on": str(date(2026, 11, 2)), "form_ref": "SAMTYCKE-1"}
                     for p in ("AF", "FK", "KOMMUN", "REGION")],
        "wishes_to_attend": True,
        "income_source": "SJUKPENNING",
        "violence_question_asked": True,
        "officer_id": "officer-17",
    }
    payload.update(overrides)
    return envelope("SubmitReferral", payload, producer="agency-system")


async def send_referral(amqp_url: str, namespace: str, party: str, body: dict | bytes,
                        **props) -> None:
    await publish(amqp_url, f"{namespace}.intake", f"{party}.SubmitReferral", body, **props)
