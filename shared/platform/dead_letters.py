"""Dead-letter operations on one service: read its dead-letter queue without losing a message,
replay a dead letter to that service after the fix, discard one with a written reason. Every
replay and discard is recorded in the service's own database (``dead_letter_actions``: who,
when, why; append-only), which is also their count (the service's ``/metrics``).

The command line is ``tools/dead_letters.py``; the runbook ``docs/operations.md``.

Reading: a queue cannot be browsed in AMQP 0-9-1, so ``DeadLetterQueue`` takes every message
(``basic.get``), holds them unacknowledged on one channel, acks only those acted on, and gives
all others back (``nack`` with requeue) when it closes, or the broker does when the
connection is lost. A dead-letter queue has no delivery limit, so nothing given back is ever
dropped; their order in the queue may change (they are listed by the time they were
dead-lettered).

Replay: the message goes straight to the service's own queue (the default exchange), not to
the exchange it first came through: other services bound to the same routing key handled it
already. It keeps its body, so its ``event_id`` and the service's inbox key: replayed twice, it
is applied once. The consumer takes it as published where it first was (``consumer.origin_of``).
An agency's command cannot be replayed: its content was redacted when it was dead-lettered (it
may hold identity); its agency was told (``CommandDeadLettered``) and sends it again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import aio_pika
import asyncpg
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage

from shared.contracts import INTAKE
from shared.platform.consumer import (
    DEAD_LETTERED_AT_HEADER,
    DETAIL_HEADER,
    ORIGINAL_EXCHANGE_HEADER,
    REASON_HEADER,
    REPLAYED_BY_HEADER,
)
from shared.platform.db import Conn
from shared.platform.topology import Topology

# At most this many are read at once (a larger backlog is worked through in rounds)
READ_LIMIT = 10_000
# Headers of a delivery that must not travel on with a replay: the broker's own (counts and
# deaths: the replay starts afresh) and the last dead-lettering's
_NOT_REPLAYED = re.compile(r"^(x-delivery-count|x-death|x-first-death-.*|x-last-death-.*|x-trisam-dead-letter.*)$")


class DeadLetterError(RuntimeError):
    """An operation that cannot be done, with what to do instead (shown to the operator)."""


@dataclass
class DeadLetter:
    """One message in a dead-letter queue, held unacknowledged while the queue is open."""

    id: str  # its message_id (the event_id), or "sha-<hash of the body>" when it has none
    event_type: str | None
    case_ref: str | None
    reason: str
    detail: str
    dead_lettered_at: datetime | None
    redacted: bool
    original_exchange: str
    headers: dict[str, Any]
    body: bytes
    message: AbstractIncomingMessage

    @property
    def replayable(self) -> bool:
        return not self.redacted and not self.original_exchange.endswith(f".{INTAKE}")

    @classmethod
    def of(cls, message: AbstractIncomingMessage) -> DeadLetter:
        headers = dict(message.headers or {})
        document = _json_object(message.body)
        payload = document.get("payload") if isinstance(document.get("payload"), dict) else {}
        case_ref = payload.get("case_ref") if isinstance(payload, dict) else None
        event_type = document.get("event_type") or message.type
        return cls(
            id=message.message_id or "sha-" + hashlib.sha256(message.body).hexdigest()[:16],
            event_type=event_type if isinstance(event_type, str) else None,
            case_ref=case_ref if isinstance(case_ref, str) and case_ref != "<redacted>" else None,
            reason=_text(headers.get(REASON_HEADER)) or "?",
            detail=_text(headers.get(DETAIL_HEADER)),
            dead_lettered_at=_time(headers.get(DEAD_LETTERED_AT_HEADER)),
            redacted=document.get("redacted") is True,
            original_exchange=_text(headers.get(ORIGINAL_EXCHANGE_HEADER)),
            headers=headers,
            body=message.body,
            message=message,
        )


class DeadLetterQueue:
    """A service's dead-letter queue, opened to be worked on: ``letters`` holds every message in
    it (up to ``READ_LIMIT``), oldest first; those acted on leave it, all others go back when
    the block ends."""

    def __init__(self, amqp_url: str, topology: Topology, service: str) -> None:
        self.amqp_url = amqp_url
        self.topology = topology
        self.service = service
        self.queue_name = topology.dead_letter_queue_name(service)
        self.letters: list[DeadLetter] = []
        self.more_waiting = False  # more than READ_LIMIT were there
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None

    async def __aenter__(self) -> DeadLetterQueue:
        try:
            self._connection = await aio_pika.connect(self.amqp_url, timeout=10)
        except Exception as exc:
            raise DeadLetterError(f"cannot connect to the broker: {type(exc).__name__}: {exc}") from None
        try:
            # confirms and returns: a replay that reaches no queue raises instead of vanishing
            self._channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
            try:
                queue = await self._channel.get_queue(self.queue_name, ensure=True)
            except aio_pika.exceptions.ChannelNotFoundEntity:
                raise DeadLetterError(
                    f"no queue {self.queue_name}: is {self.service!r} a service of namespace "
                    f"{self.topology.namespace!r} (TRISAM_NAMESPACE), and has it run?"
                ) from None
            while len(self.letters) < READ_LIMIT:
                message = await queue.get(no_ack=False, fail=False)
                if message is None:
                    break
                self.letters.append(DeadLetter.of(message))
            else:
                self.more_waiting = True
        except BaseException:
            await self._close()
            raise
        self.letters.sort(key=lambda letter: letter.dead_lettered_at or datetime.min.replace(tzinfo=UTC))
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._close()

    async def _close(self) -> None:
        """Every message not acted on goes back to the queue (also, by the broker, if this fails)."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            for letter in self.letters:
                if not letter.message.processed:
                    with contextlib.suppress(Exception):
                        await letter.message.nack(requeue=True)
        finally:
            await connection.close()

    def select(self, letter_id: str | None = None, *, reason: str | None = None) -> list[DeadLetter]:
        """The dead letters with this id (every copy; a unique prefix of it will do), or all with
        this dead-letter reason code."""
        if (letter_id is None) == (reason is None):
            raise DeadLetterError("name one dead letter by its id, or all of one reason code (not both)")
        if reason is not None:
            chosen = [letter for letter in self.letters if letter.reason == reason]
            if not chosen:
                raise DeadLetterError(f"no dead letter with reason {reason!r} in {self.queue_name}")
            return chosen
        assert letter_id is not None
        exact = [letter for letter in self.letters if letter.id == letter_id]
        if exact:
            return exact
        found = [letter for letter in self.letters if letter.id.startswith(letter_id)]
        if len({letter.id for letter in found}) > 1:
            raise DeadLetterError(f"{letter_id!r} is the start of several ids: give more of it")
        if not found:
            raise DeadLetterError(f"no dead letter {letter_id!r} in {self.queue_name}")
        return found

    async def replay(self, letters: Sequence[DeadLetter], db: Conn, *, who: str, why: str) -> list[DeadLetter]:
        """Send each back to the service's own queue, and record it; it then leaves the
        dead-letter queue. Returns those that cannot be replayed (redacted commands), left
        where they are."""
        for letter in letters:
            if not letter.replayable:
                continue
            async with db.transaction():  # recorded if and only if it was sent
                await record(db, "replay", letter, who=who, why=why)
                await self._send_to_service(letter, who)
            await letter.message.ack()
        return [letter for letter in letters if not letter.replayable]

    async def discard(self, letters: Sequence[DeadLetter], db: Conn, *, who: str, why: str) -> None:
        """Remove each from the dead-letter queue for good, after recording it with the reason."""
        if not why.strip():
            raise DeadLetterError("a discard needs a written reason (--reason)")
        for letter in letters:
            async with db.transaction():
                await record(db, "discard", letter, who=who, why=why)
            await letter.message.ack()

    async def _send_to_service(self, letter: DeadLetter, who: str) -> None:
        assert self._channel is not None
        headers = {key: value for key, value in letter.headers.items() if not _NOT_REPLAYED.match(key)}
        headers[REPLAYED_BY_HEADER] = who
        headers["x-trisam-replayed-at"] = datetime.now(UTC).isoformat()
        original = letter.message
        await self._channel.default_exchange.publish(
            aio_pika.Message(
                letter.body,
                headers=headers,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=original.message_id,
                correlation_id=original.correlation_id,
                type=original.type,
                content_type=original.content_type,
                timestamp=original.timestamp,
            ),
            routing_key=self.topology.queue_name(self.service),
            mandatory=True,
            timeout=10,
        )


def not_replayable(letters: Iterable[DeadLetter]) -> str:
    ids = ", ".join(sorted({letter.id for letter in letters}))
    return (
        f"not replayed: {ids} is an agency's command, whose content was redacted when it was "
        f"dead-lettered (it may hold personal data), so there is nothing to send again. Its agency "
        f"was told on its own queue (CommandDeadLettered) and sends it again; discard it here "
        f"with a reason once that is done"
    )


async def record(db: Conn, action: str, letter: DeadLetter, *, who: str, why: str) -> None:
    await db.execute(
        """INSERT INTO dead_letter_actions (action, message_id, event_type, case_ref, reason, detail,
                                            dead_lettered_at, who, why)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
        action,
        letter.id,
        letter.event_type,
        letter.case_ref,
        letter.reason,
        letter.detail,
        letter.dead_lettered_at,
        who,
        why,
    )


async def history(db: Conn, limit: int = 50) -> list[asyncpg.Record]:
    """The latest replays and discards, newest first."""
    return list(
        await db.fetch(
            """SELECT id, action, message_id, event_type, case_ref, reason, who, why, acted_at
               FROM dead_letter_actions ORDER BY id DESC LIMIT $1""",
            limit,
        )
    )


async def action_counts(db: Conn) -> dict[tuple[str, str], int]:
    """Replays and discards so far, per (action, dead-letter reason)."""
    rows = await db.fetch("SELECT action, reason, count(*) AS n FROM dead_letter_actions GROUP BY action, reason")
    return {(row["action"], row["reason"]): row["n"] for row in rows}


async def connect_service_database(database_url: str, database: str) -> asyncpg.Connection:
    """The service's own database (where its actions are recorded), or a clear error."""
    from shared.platform.config import with_database

    try:
        conn = await asyncpg.connect(with_database(database_url, database), timeout=10)
    except asyncpg.InvalidCatalogNameError:
        raise DeadLetterError(f"no database {database}: has the service run in this namespace?") from None
    except (OSError, asyncpg.PostgresError) as exc:
        raise DeadLetterError(f"cannot connect to the database {database}: {type(exc).__name__}: {exc}") from None
    if await conn.fetchval("SELECT to_regclass('dead_letter_actions')") is None:
        await conn.close()
        raise DeadLetterError(
            f"the database {database} has no dead_letter_actions table yet: start the service of this "
            f"version once (it applies its migrations at start)"
        )
    return conn


# Anything that could be a personnummer (a date, four digits, the check digit right), outside
# event ids: masked in what the tool prints, in case a sender put one where it does not belong
_PERSONNUMMER_LIKE = re.compile(r"(?<!\d)(?:19|20)?(\d{6})[-+]?(\d{4})(?!\d)")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def masked(text: str) -> str:
    """``text`` with every personnummer-like number replaced by ``<masked>`` (ids kept)."""
    parts, last = [], 0
    for match in _UUID.finditer(text):
        parts.append(_PERSONNUMMER_LIKE.sub(_mask, text[last : match.start()]))
        parts.append(match.group(0))
        last = match.end()
    parts.append(_PERSONNUMMER_LIKE.sub(_mask, text[last:]))
    return "".join(parts)


def _mask(match: re.Match[str]) -> str:
    ten = match.group(1) + match.group(2)
    month, day = int(ten[2:4]), int(ten[4:6])
    digits = [int(c) * (2 - i % 2) for i, c in enumerate(ten)]
    luhn = sum(d - 9 if d > 9 else d for d in digits) % 10 == 0
    return "<masked>" if luhn and 1 <= month <= 12 and 1 <= day % 60 <= 31 else match.group(0)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return {}
    return document if isinstance(document, dict) else {}


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def _time(value: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(_text(value))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
