"""Transactional outbox: write events with the state change, publish them afterwards.

``add`` is called inside the caller's transaction. The ``OutboxRelay`` publishes pending rows:

- wakes on LISTEN/NOTIFY (``outbox`` channel, sent on commit by ``add``) and also polls;
- claims rows with ``FOR UPDATE SKIP LOCKED`` so several instances can run side by side;
- never sends an event while an earlier event with the same ordering key (the case) is still
  pending (locked by another instance, backing off, or failed earlier in this batch), so one
  case's events keep their order across instances and retries. Ids follow insertion, so the
  writers of one case must serialise on it (lock the case row), which the services do;
- publishes persistent and mandatory with publisher confirms, a batch's confirms in flight
  together (one case's events in order, cases side by side); a returned (unroutable) or
  unconfirmed message is not marked sent but retried with exponential backoff;
- claims again at once only after a full batch; otherwise waits for the next NOTIFY (one per
  transaction, sent with the row itself) or the poll;
- never uses a "last id seen" cursor: sequence values commit out of order.

``add_many`` also numbers each event in the line of every service that receives it (its
ordering key and that service: 1, 2, 3, ...); the relay sends the numbers in the message's
headers and the consumer applies a line's events only in that order (``sequences``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import NamedTuple

import asyncpg
import structlog

from shared.contracts import Contract, Envelope, envelope_for
from shared.platform import tracing
from shared.platform.db import Conn
from shared.platform.tasks import cancel_and_wait
from shared.platform.topology import receivers

log = structlog.get_logger("outbox")

NOTIFY_CHANNEL = "outbox"

_CLAIM = """
WITH candidates AS (
    SELECT id, event_id, event_type, exchange, routing_key, ordering_key, correlation_id,
           body, occurred_at, attempts, trace_context, sequence
    FROM outbox o
    WHERE sent_at IS NULL AND next_attempt_at <= now()
      AND NOT EXISTS (  -- not behind an earlier event of its key that is backing off
          SELECT 1 FROM outbox waiting
          WHERE waiting.ordering_key = o.ordering_key AND waiting.sent_at IS NULL
            AND waiting.id < o.id AND waiting.next_attempt_at > now())
    ORDER BY id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
SELECT c.* FROM candidates c
WHERE NOT EXISTS (  -- an earlier pending event of the same key that is not in this batch
    SELECT 1 FROM outbox earlier
    WHERE earlier.ordering_key = c.ordering_key
      AND earlier.sent_at IS NULL
      AND earlier.id < c.id
      AND earlier.id NOT IN (SELECT id FROM candidates))
ORDER BY c.id
"""


class Outgoing(NamedTuple):
    """An event on its way into the outbox: its envelope and payload, its ordering key, and the
    trace context of the span that emitted it (W3C headers; None: none)."""

    envelope: Envelope
    payload: Contract
    ordering_key: str
    trace_context: dict[str, str] | None = None


async def add(
    conn: Conn,
    payload: Contract,
    *,
    producer: str,
    ordering_key: str,
    correlation_id: str | None = None,
    causation_id: str | None = None,
) -> Envelope:
    """Record an event in the outbox; must run inside the transaction of the state change."""
    envelope = envelope_for(payload, producer=producer, correlation_id=correlation_id, causation_id=causation_id)
    await add_envelope(conn, envelope, payload, ordering_key=ordering_key)
    return envelope


async def add_envelope(conn: Conn, envelope: Envelope, payload: Contract, *, ordering_key: str) -> None:
    """Record an enveloped event in the outbox, inside the caller's transaction (with the
    current span's trace context)."""
    await add_many(conn, [Outgoing(envelope, payload, ordering_key, tracing.headers_of() or None)])


async def add_many(conn: Conn, events: list[Outgoing]) -> None:
    """Record enveloped events (each with its ordering key and trace context), in this order,
    inside the caller's transaction: one round trip for all of them and the wake-up of the
    relays (PostgreSQL sends one notification per transaction however often it is asked, at
    commit)."""
    if not events:
        return
    if not conn.is_in_transaction():
        raise RuntimeError("outbox.add outside a transaction: the event could be lost")
    # each event's receivers, flattened: event i (1-based) to service r
    receiving = [
        (i, service)
        for i, e in enumerate(events, 1)
        for service in receivers(e.payload.exchange, e.payload.routing_key())
    ]
    await conn.execute(
        _ADD,
        [e.envelope.event_id for e in events],
        [e.envelope.event_type for e in events],
        [e.payload.exchange for e in events],
        [e.payload.routing_key() for e in events],
        [e.ordering_key for e in events],
        [e.envelope.correlation_id for e in events],
        [e.envelope.model_dump_json().encode() for e in events],
        [e.envelope.occurred_at for e in events],
        [json.dumps(e.trace_context) if e.trace_context else None for e in events],
        NOTIFY_CHANNEL,
        [i for i, _ in receiving],
        [service for _, service in receiving],
    )


# One statement: number each event in its receivers' lines (``outbox_sequence``, locked per line
# in a fixed order: two writers of one case wait for each other, never deadlock), then insert the
# rows, WITH ORDINALITY giving them their ids (the relay's order) in the order given, and wake
# the relays.
_ADD = """
WITH e AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                         $7::bytea[], $8::timestamptz[], $9::jsonb[])
         WITH ORDINALITY AS e(event_id, event_type, exchange, routing_key, ordering_key,
                              correlation_id, body, occurred_at, trace_context, n)
),
received AS (
    SELECT r.n, r.consumer, e.ordering_key
    FROM unnest($11::bigint[], $12::text[]) AS r(n, consumer) JOIN e USING (n)
),
counts AS (
    SELECT ordering_key, consumer, count(*) AS k FROM received GROUP BY ordering_key, consumer
),
lines AS (
    INSERT INTO outbox_sequence AS s (ordering_key, consumer, last_seq)
    SELECT ordering_key, consumer, k FROM counts ORDER BY ordering_key, consumer
    ON CONFLICT (ordering_key, consumer) DO UPDATE SET last_seq = s.last_seq + EXCLUDED.last_seq
    RETURNING ordering_key, consumer, last_seq
),
numbered AS (
    SELECT r.n, r.consumer,
           l.last_seq - c.k + row_number() OVER (PARTITION BY r.ordering_key, r.consumer ORDER BY r.n) AS seq
    FROM received r JOIN lines l USING (ordering_key, consumer) JOIN counts c USING (ordering_key, consumer)
),
sequences AS (
    SELECT n, jsonb_object_agg(consumer, seq) AS sequence FROM numbered GROUP BY n
),
added AS (
    INSERT INTO outbox (event_id, event_type, exchange, routing_key, ordering_key,
                        correlation_id, body, occurred_at, trace_context, sequence)
    SELECT e.event_id, e.event_type, e.exchange, e.routing_key, e.ordering_key,
           e.correlation_id, e.body, e.occurred_at, e.trace_context, q.sequence
    FROM e LEFT JOIN sequences q USING (n)
    ORDER BY e.n
    RETURNING 1)
SELECT pg_notify($10, '') FROM added LIMIT 1
"""


@dataclass(frozen=True)
class PendingEvent:
    id: int
    event_id: str
    event_type: str
    exchange: str
    routing_key: str
    ordering_key: str
    correlation_id: str
    body: bytes
    occurred_at: object
    attempts: int
    trace_context: dict[str, str] | None = None  # the W3C headers of the span that wrote it
    sequence: dict[str, int] | None = None  # its number in each receiving service's line of its key


Publish = Callable[[PendingEvent], Awaitable[None]]


def backoff_seconds(attempts: int, cap: float) -> float:
    delay: float = 0.5 * 2 ** max(0, attempts - 1)  # int ** int is typed Any (a negative power is a float)
    return min(cap, delay)


class OutboxRelay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        publish: Publish,
        *,
        batch_size: int = 200,
        poll_seconds: float = 1.0,
        max_backoff_seconds: float = 30.0,
        publish_timeout_seconds: float = 20.0,
        on_published: Callable[[PendingEvent], None] = lambda e: None,
        on_failed: Callable[[PendingEvent, BaseException], None] = lambda e, x: None,
    ):
        self._pool = pool
        self._publish = publish
        self._batch_size = batch_size
        self._poll = poll_seconds
        self._max_backoff = max_backoff_seconds
        self._publish_timeout = publish_timeout_seconds
        self._on_published = on_published
        self._on_failed = on_failed
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listen_conn: asyncpg.pool.PoolConnectionProxy | None = None
        self._claimed = 0  # rows claimed by the last round

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self, timeout: float = 2.0) -> None:  # noqa: ASYNC109  (a bound on stopping, not on waiting)
        """Stop the relay within about ``timeout`` seconds, whatever it is doing: a claimed
        batch not yet marked sent is rolled back with its connection and published again later
        (consumers are idempotent)."""
        await cancel_and_wait(self._task, timeout=timeout)
        self._task = None
        await self._unlisten()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def wake(self) -> None:
        self._wake.set()

    async def _listen(self) -> None:
        if self._listen_conn is not None and _usable(self._listen_conn):
            return
        await self._unlisten()  # a connection that was lost is given back first
        self._listen_conn = await self._pool.acquire()
        await self._listen_conn.add_listener(NOTIFY_CHANNEL, self._notified)

    def _notified(self, *_args: object) -> None:
        self._wake.set()

    async def _unlisten(self) -> None:
        conn, self._listen_conn = self._listen_conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.remove_listener(NOTIFY_CHANNEL, self._notified)
            with contextlib.suppress(Exception):
                await self._pool.release(conn, timeout=1.0)  # a hung one is terminated

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                await self._listen()
                await self.relay_once()
                failures = 0
                if self._claimed >= self._batch_size:
                    continue  # a full page was claimed: more are waiting (published or not)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database gone, etc.: retry with backoff, never die
                failures += 1
                log.warning(
                    "outbox relay cycle failed", error=type(exc).__name__, detail=str(exc)[:200], failures=failures
                )
                await self._unlisten()
                await asyncio.sleep(backoff_seconds(failures, self._max_backoff))
                continue
            # Rows committed while this batch was out woke us already (their NOTIFY), so the
            # wait returns at once; otherwise it waits for the next commit or the poll.
            # asyncio.timeout, not wait_for: in 3.11 wait_for can lose a cancellation that
            # arrives as the wake-up does, and the relay would never stop
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll):
                    await self._wake.wait()
            self._wake.clear()

    async def relay_once(self) -> int:
        """Publish one batch of due events; returns how many were published.

        The batch's events are published with their confirms in flight together: one case's
        events one after another (each waits for the confirm of the one before, so they keep
        their order), different cases side by side. A case whose event fails keeps its later
        events back (they go again, in order, on a later round)."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(_CLAIM, self._batch_size)
            self._claimed = len(rows)
            if not rows:
                return 0
            by_case: dict[str, list[PendingEvent]] = {}
            for row in rows:
                fields = dict(row)
                for column in ("trace_context", "sequence"):  # (asyncpg gives jsonb as its text)
                    if fields[column] is not None:
                        fields[column] = json.loads(fields[column])
                event = PendingEvent(**fields)
                by_case.setdefault(event.ordering_key, []).append(event)
            outcomes = await asyncio.gather(*(self._publish_in_order(events) for events in by_case.values()))
            done = [event.id for sent, _ in outcomes for event in sent]
            for _, failed in outcomes:
                if failed is not None:
                    event, exc = failed
                    await self._note_failure(conn, event, exc)
            if done:
                await conn.execute("UPDATE outbox SET sent_at = now() WHERE id = ANY($1::bigint[])", done)
        return len(done)

    async def _publish_in_order(
        self, events: list[PendingEvent]
    ) -> tuple[list[PendingEvent], tuple[PendingEvent, BaseException] | None]:
        """Publish one case's events in order; stop at the first that fails."""
        sent: list[PendingEvent] = []
        for event in events:
            try:
                # bounded as a whole: a publish also waits for a lost connection to come back,
                # which its own confirm timeout does not cover; a relay must never hang on it
                async with asyncio.timeout(self._publish_timeout):
                    await self._publish(event)
            except Exception as exc:
                self._on_failed(event, exc)
                return sent, (event, exc)
            sent.append(event)
            self._on_published(event)
        return sent, None

    async def _note_failure(
        self, conn: asyncpg.pool.PoolConnectionProxy, event: PendingEvent, exc: BaseException
    ) -> None:
        delay = backoff_seconds(event.attempts + 1, self._max_backoff)
        await conn.execute(
            """UPDATE outbox SET attempts = attempts + 1, last_error = $2,
                      next_attempt_at = now() + make_interval(secs => $3)
               WHERE id = $1""",
            event.id,
            f"{type(exc).__name__}: {exc}"[:500],
            delay,
        )
        log.warning(
            "outbox publish failed",
            event_type=event.event_type,
            correlation_id=event.correlation_id,
            attempts=event.attempts + 1,
            error=type(exc).__name__,
            retry_in_s=delay,
            refused_by_broker=_refused_by_broker(exc),
        )


def _usable(conn: asyncpg.pool.PoolConnectionProxy) -> bool:
    """Whether a pooled connection is still open. A pooled connection that was lost has been
    handed back to the pool by asyncpg, and asking it anything raises."""
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:
        return False


def _refused_by_broker(exc: BaseException) -> bool:
    """The broker answered (returned as unroutable, or nacked): the connection itself is fine."""
    text = str(exc)
    return "Basic.Return" in text or "NO_ROUTE" in text or type(exc).__name__ == "DeliveryError"
