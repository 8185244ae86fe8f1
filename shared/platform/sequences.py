"""Per-case order that holds under requeues, kills and several instances: the consumer's side.

The producer's outbox numbers every event in the line of each service that receives it: the
line is (producer, ordering key, receiving service), the numbers 1, 2, 3, ... without gaps
(``outbox.add_many``). The relay sends them in the headers ``x-trisam-sequence`` (a table
``{service: number}``) and ``x-trisam-producer``.

The consumer moves its line (``inbox_sequence``) in the same transaction as the event's effect
and inbox row (``claim_in_turn``), and only by one: an event whose number is the next is applied;
one whose predecessor has not been applied yet (a requeue brought it back first, or another
instance still holds the predecessor) is **held back**: its transaction is rolled back, it
steps aside in its case's line and is tried again in place, never requeued in front of a
successor; one older than what was applied (it can only come after its number was given up, see
below) is dead-lettered as ``out_of_order`` for an operator.

Given up: an event held back longer than the hold (``TRISAM_SEQUENCE_HOLD_SECONDS``) is applied
anyway (``forced``) and the numbers it passes are counted in ``inbox_sequence.skipped`` and
``trisam_sequence_gaps_total``, logged as an error: its predecessor was lost upstream (say the
broker dead-lettered it at its delivery limit) and the case must not stop for ever. An
operator's replay of a dead letter is forced too. A dead-lettered event passes its number
(``pass_number``), so that its successors are not held back for it.

Messages without numbers (an agency's command, an event published before this version, the
fault run's deliberate second deliveries) are applied as before: in delivery order per case.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from shared.platform.db import Conn
from shared.platform.uow import Message

SEQUENCE_HEADER = "x-trisam-sequence"
PRODUCER_HEADER = "x-trisam-producer"


@dataclass(frozen=True)
class Place:
    """A delivery's place in its line: the producer, the ordering key (the case), its number."""

    producer: str
    ordering_key: str
    number: int
    forced: bool = False  # applied whatever came before it (a replay, or held past the hold)

    def forcing(self) -> Place:
        return replace(self, forced=True)


class Turn(enum.Enum):
    NEXT = "next"  # applied: the line moved to it
    EARLY = "early"  # an earlier number has not been applied: hold it back
    LATE = "late"  # its number was passed already


def place_of(headers: Mapping[str, Any] | None, consumer: str, ordering_key: object) -> Place | None:
    """The delivery's place in ``consumer``'s line, from its headers; None: not numbered."""
    headers = headers or {}
    numbers, producer = headers.get(SEQUENCE_HEADER), headers.get(PRODUCER_HEADER)
    if not isinstance(numbers, Mapping) or not producer or not ordering_key:
        return None
    number = numbers.get(consumer)
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        return None
    return Place(str(producer), str(ordering_key), number)


def headers_for(producer: str, sequence: Mapping[str, int] | None) -> dict[str, Any]:
    """The headers that carry an outbox row's numbers (none when it has none)."""
    return {SEQUENCE_HEADER: dict(sequence), PRODUCER_HEADER: producer} if sequence else {}


def _move_by_one(numbers: str) -> str:
    """The rule, once: the lines of ``numbers`` (a relation ``d`` of producer, ordering_key,
    number) move to the number when it is the next: a first number starts a line, any other moves
    it only from its predecessor. Returns the lines that moved."""
    return f"""
    INSERT INTO inbox_sequence AS s (consumer, producer, ordering_key, last_seq)
    SELECT $1, d.producer, d.ordering_key, d.number FROM {numbers}
    WHERE d.number = 1 OR EXISTS (
        SELECT 1 FROM inbox_sequence e
        WHERE e.consumer = $1 AND e.producer = d.producer AND e.ordering_key = d.ordering_key)
    ON CONFLICT (consumer, producer, ordering_key)
        DO UPDATE SET last_seq = EXCLUDED.last_seq, updated_at = now()
        WHERE s.last_seq = EXCLUDED.last_seq - 1
    RETURNING producer, ordering_key"""


# The deliveries' inbox rows and, for each new one that is numbered, its line moved by one. For
# each delivery: whether its inbox row is new, whether its line moved.
_CLAIM_IN_TURN = f"""
WITH d AS (
    SELECT * FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::bigint[])
         WITH ORDINALITY AS d(event_id, event_type, producer, ordering_key, number, n)
),
claimed AS (
    INSERT INTO inbox (consumer, event_id, event_type)
    SELECT $1, event_id, event_type FROM d
    ON CONFLICT DO NOTHING RETURNING event_id
),
moved AS ({_move_by_one("(SELECT * FROM d WHERE number IS NOT NULL AND event_id IN (SELECT event_id FROM claimed)) d")}
)
SELECT d.event_id IN (SELECT event_id FROM claimed) AS fresh,
       (d.producer, d.ordering_key) IN (SELECT producer, ordering_key FROM moved) AS moved
FROM d ORDER BY d.n
"""

# Forced: the line moves to the number (never back), counting the numbers it passes.
_FORCED = """
INSERT INTO inbox_sequence AS s (consumer, producer, ordering_key, last_seq, skipped)
SELECT $1, d.producer, d.ordering_key, d.number, d.number - 1
FROM unnest($2::text[], $3::text[], $4::bigint[]) AS d(producer, ordering_key, number)
ON CONFLICT (consumer, producer, ordering_key)
    DO UPDATE SET last_seq = greatest(s.last_seq, EXCLUDED.last_seq),
                  skipped = s.skipped + greatest(EXCLUDED.last_seq - s.last_seq - 1, 0),
                  updated_at = now()
"""

_LAST = """
SELECT producer, ordering_key, last_seq FROM inbox_sequence
WHERE consumer = $1 AND (producer, ordering_key) IN (SELECT * FROM unnest($2::text[], $3::text[]))
"""


def _columns(places: list[Place]) -> tuple[list[str], list[str], list[int]]:
    return [p.producer for p in places], [p.ordering_key for p in places], [p.number for p in places]


async def claim_in_turn(
    conn: Conn, consumer: str, messages: list[Message], places: list[Place | None]
) -> tuple[list[bool], list[Turn | None]]:
    """Record the messages in ``consumer``'s inbox and move the lines of the new ones that are
    numbered (each of another line), in one statement, inside the transaction that applies
    them. For each: whether it is new (False: handled before, or an earlier message of this
    list with the same inbox key), and its turn (None: not new, or not numbered). A second
    statement only when some are forced or not the next."""
    if any(m.inbox_id is None for m in messages):
        raise RuntimeError("a message without an inbox key cannot be claimed")
    if not messages:
        return [], []
    regular = [None if p is None or p.forced else p for p in places]
    rows = await conn.fetch(
        _CLAIM_IN_TURN,
        consumer,
        [m.inbox_id for m in messages],
        [m.envelope.event_type for m in messages],
        [p.producer if p else None for p in regular],
        [p.ordering_key if p else None for p in regular],
        [p.number if p else None for p in regular],
    )
    fresh: list[bool] = []
    seen: set[object] = set()
    for message, row in zip(messages, rows, strict=True):
        fresh.append(row["fresh"] and message.inbox_id not in seen)
        seen.add(message.inbox_id)
    turns: list[Turn | None] = [None] * len(messages)
    missed: list[int] = []
    forced: list[int] = []
    for i, (place, row) in enumerate(zip(places, rows, strict=True)):
        if place is None or not fresh[i]:
            continue
        if place.forced:
            forced.append(i)
        elif row["moved"]:
            turns[i] = Turn.NEXT
        else:
            missed.append(i)
    if missed:
        last = {
            (r["producer"], r["ordering_key"]): r["last_seq"]
            for r in await conn.fetch(_LAST, consumer, *_columns([places[i] for i in missed])[:2])  # type: ignore[misc]
        }
        for i in missed:
            p = places[i]
            assert p is not None
            turns[i] = Turn.LATE if p.number <= last.get((p.producer, p.ordering_key), 0) else Turn.EARLY
    if forced:
        await conn.execute(_FORCED, consumer, *_columns([places[i] for i in forced]))  # type: ignore[misc]
        for i in forced:
            turns[i] = Turn.NEXT
    return fresh, turns


_PASS = _move_by_one("(SELECT $2::text AS producer, $3::text AS ordering_key, $4::bigint AS number) d")


async def pass_number(conn: Conn, consumer: str, place: Place) -> bool:
    """A dead-lettered event gives its number up, so that its successors are not held back for
    it: the line moves past it if it was the next. Whether it moved."""
    moved = await conn.fetchval(_PASS, consumer, place.producer, place.ordering_key, place.number)
    return moved is not None


async def skipped(conn: Conn, consumer: str) -> int:
    """Numbers this service never applied, its lines together (0 in a healthy system)."""
    total = await conn.fetchval("SELECT coalesce(sum(skipped), 0) FROM inbox_sequence WHERE consumer = $1", consumer)
    return int(total)
