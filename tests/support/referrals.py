"""SubmitReferral commands as an agency system would send them (test data only)."""

from __future__ import annotations

import json
import random
import uuid
from datetime import date

from tests.support.agencies import Agency
from tests.support.broker import envelope
from tests.support.identities import random_adult

TEAM = "GAVLE-BRYNAS"  # a team of deploy/teams.json


def submit_referral(
    rng: random.Random | None = None, *, team_id: str = TEAM, agency_ref: str | None = None, **overrides
) -> dict:
    rng = rng or random.Random()
    payload = {
        "agency_ref": agency_ref or f"AREF-{uuid.uuid4().hex[:12]}",
        "personnummer": random_adult(rng),
        "team_id": team_id,
        "question": "Vilket stöd behövs för att komma närmare arbete?",
        "consents": [
            {"party": p, "given_on": str(date(2026, 11, 2)), "form_ref": "SAMTYCKE-1"}
            for p in ("AF", "FK", "KOMMUN", "REGION")
        ],
        "wishes_to_attend": True,
        "income_source": "SJUKPENNING",
        "reason_codes": ["SJUKSKRIVEN_MED_INTYG"],
        "violence_question_asked": True,
        "officer_id": "officer-17",
    }
    payload.update(overrides)
    return envelope("SubmitReferral", payload, producer="agency-system")


async def send_command(
    agency: Agency, namespace: str, body: dict | bytes, *, command: str | None = None, **props
) -> None:
    """Publish a command to the intake exchange as the agency, routing key <PARTY>.<Command>."""
    if isinstance(body, dict):
        command = command or body["event_type"]
        props.setdefault("message_id", body["event_id"])
        props.setdefault("type", body["event_type"])
        body = json.dumps(body).encode()
    await agency.publish(f"{namespace}.intake", f"{agency.party.value}.{command}", body, **props)


async def send_referral(agency: Agency, namespace: str, body: dict | bytes, **props) -> None:
    await send_command(agency, namespace, body, command="SubmitReferral", **props)
