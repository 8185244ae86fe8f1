"""Event contracts: envelope, immutability, strictness, poison classification."""

import json
import uuid

import pydantic
import pytest

from shared.contracts import (
    MAX_MESSAGE_BYTES,
    CaseReferred,
    Envelope,
    PoisonMessage,
    SubmitReferral,
    decode,
    envelope_for,
    registered,
)
from shared.contracts.vocabulary import AgeBand, Gender, IncomeSource, Party


def a_case(**overrides) -> CaseReferred:
    fields = dict(
        case_ref="TS-X",
        team_id="T1",
        municipality="Gävle",
        referring_party=Party.AF,
        gender=Gender.WOMAN,
        age_band=AgeBand.A25_34,
        income_source=IncomeSource.A_KASSA,
        consented_parties=(Party.AF,),
        wishes_to_attend=None,
        violence_question_asked=False,
        reason_codes=(),
        referred_at="2026-11-01T09:00:00+00:00",
    )
    fields.update(overrides)
    return CaseReferred(**fields)


def test_round_trip_through_the_envelope():
    event = a_case()
    env = envelope_for(event, producer="referral", correlation_id="c-1", causation_id="e-0")
    decoded_env, payload = decode(env.model_dump_json().encode())
    assert payload == event
    assert decoded_env.event_type == "CaseReferred" and decoded_env.version == 1
    assert decoded_env.correlation_id == "c-1" and decoded_env.causation_id == "e-0"
    assert isinstance(decoded_env.event_id, uuid.UUID)


def test_payloads_are_immutable_and_strict():
    event = a_case()
    with pytest.raises(pydantic.ValidationError):
        event.case_ref = "other"  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        a_case(personnummer="whatever")  # unknown fields are refused


def test_names_and_versions_are_explicit_and_unique():
    assert registered()[("CaseReferred", 1)] is CaseReferred
    assert registered()[("SubmitReferral", 1)] is SubmitReferral


def test_no_event_but_the_intake_command_has_room_for_identity():
    for (name, _), model in registered().items():
        if name == "SubmitReferral":
            continue
        assert not {"personnummer", "question", "purpose"} & set(model.model_fields), name


@pytest.mark.parametrize(
    "body, reason",
    [
        (b"not json", "bad_envelope"),
        (b"{}", "bad_envelope"),
        (
            json.dumps(
                {
                    "event_id": str(uuid.uuid4()),
                    "event_type": "Nope",
                    "version": 1,
                    "occurred_at": "2026-01-01T00:00:00Z",
                    "producer": "x",
                    "correlation_id": "c",
                    "payload": {},
                }
            ).encode(),
            "unknown_type",
        ),
        (
            json.dumps(
                {
                    "event_id": str(uuid.uuid4()),
                    "event_type": "CaseReferred",
                    "version": 7,
                    "occurred_at": "2026-01-01T00:00:00Z",
                    "producer": "x",
                    "correlation_id": "c",
                    "payload": {},
                }
            ).encode(),
            "unknown_version",
        ),
        (
            json.dumps(
                {
                    "event_id": str(uuid.uuid4()),
                    "event_type": "CaseReferred",
                    "version": 1,
                    "occurred_at": "2026-01-01T00:00:00Z",
                    "producer": "x",
                    "correlation_id": "c",
                    "payload": {"case_ref": 1},
                }
            ).encode(),
            "schema_violation",
        ),
        (b" " * (MAX_MESSAGE_BYTES + 1), "too_large"),
    ],
)
def test_poison_is_classified_with_a_stable_reason(body, reason):
    with pytest.raises(PoisonMessage) as caught:
        decode(body)
    assert caught.value.reason == reason


def test_a_schema_error_never_echoes_the_input():
    env = envelope_for(a_case(), producer="t").model_dump(mode="json")
    env["payload"]["case_ref"] = {"secret": "19800517-9813"}
    with pytest.raises(PoisonMessage) as caught:
        decode(json.dumps(env).encode())
    assert "19800517" not in caught.value.detail


def test_envelope_requires_an_aware_timestamp():
    with pytest.raises(pydantic.ValidationError):
        Envelope(
            event_id=uuid.uuid4(),
            event_type="CaseReferred",
            version=1,
            occurred_at="2026-01-01T00:00:00",
            producer="x",
            correlation_id="c",
            payload={},
        )
