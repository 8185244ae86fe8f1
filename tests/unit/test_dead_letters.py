"""Dead letters without I/O: where a replay counts as published, what the tool reads of a dead
letter, and that it never prints a personnummer."""

import json
import random
from types import SimpleNamespace

from shared.platform.consumer import Origin, origin_of, redacted
from shared.platform.dead_letters import DeadLetter, masked
from tests.support.identities import random_adult
from tests.support.privacy import personnummer_in


def delivery(exchange: str, routing_key: str, user_id: str | None, **headers) -> SimpleNamespace:
    return SimpleNamespace(exchange=exchange, routing_key=routing_key, user_id=user_id, headers=headers)


def test_a_replay_counts_as_published_where_the_dead_letter_first_was():
    replay = delivery(
        "",
        "ns.metrics",
        None,
        **{
            "x-trisam-replayed-by": "op-anna",
            "x-trisam-original-exchange": "ns.events",
            "x-trisam-original-routing-key": "CaseReferred",
            "x-trisam-original-user-id": "ns-svc-referral",
        },
    )
    assert origin_of(replay) == Origin("ns.events", "CaseReferred", "ns-svc-referral")


def test_the_headers_count_only_for_a_replay_through_the_default_exchange():
    forged = {"x-trisam-replayed-by": "x", "x-trisam-original-user-id": "ns-svc-followup"}
    through_events = delivery("ns.events", "CaseClosed", "ns-af", **forged)
    assert origin_of(through_events) == Origin("ns.events", "CaseClosed", "ns-af")
    no_replay = delivery("", "ns.metrics", None, **{"x-trisam-original-user-id": "ns-svc-followup"})
    assert origin_of(no_replay) == Origin("", "ns.metrics", None)


def test_the_tool_reads_a_redacted_command_as_not_replayable_and_without_identity():
    person = random_adult(random.Random(5))
    command = {"event_id": "e-1", "event_type": "SubmitReferral", "payload": {"personnummer": person}}
    message = SimpleNamespace(
        body=redacted(json.dumps(command).encode()),
        headers={
            "x-trisam-dead-letter-reason": "unknown_version",
            "x-trisam-dead-letter-detail": "SubmitReferral v7",
            "x-trisam-original-exchange": "ns.intake",
            "x-trisam-dead-lettered-at": "2026-12-07T10:00:00+00:00",
        },
        message_id="e-1",
        type="SubmitReferral",
    )
    letter = DeadLetter.of(message)
    assert (letter.id, letter.event_type, letter.reason, letter.redacted, letter.replayable) == (
        "e-1",
        "SubmitReferral",
        "unknown_version",
        True,
        False,
    )
    assert not personnummer_in(letter.body.decode())


def test_a_dead_letter_without_a_message_id_is_named_by_its_body():
    message = SimpleNamespace(body=b"{not json", headers={}, message_id=None, type=None)
    letter = DeadLetter.of(message)
    assert letter.id.startswith("sha-") and letter.reason == "?" and letter.replayable
    assert DeadLetter.of(message).id == letter.id


def test_personnummer_shaped_numbers_are_masked_and_ids_kept():
    person = random_adult(random.Random(9))
    event_id = "12345678-1234-1234-1234-123456789012"
    text = masked(f'{{"pnr": "{person}", "short": "{person[2:].replace("-", "")}", "id": "{event_id}"}}')
    assert not personnummer_in(text) and text.count("<masked>") == 2 and event_id in text
    assert masked("TS-BATCH0000000001 2026-12-07T10:00:00") == "TS-BATCH0000000001 2026-12-07T10:00:00"


def test_a_command_nested_past_the_parser_is_redacted_to_its_size():
    """(It once raised RecursionError, and the command went round the intake queue for ever.)"""
    deep = b'{"event_type": "SubmitReferral", "payload": {"question": ' + b"[" * 10_000 + b"]" * 10_000 + b"}}"
    assert json.loads(redacted(deep)) == {"redacted": True, "bytes": len(deep)}
