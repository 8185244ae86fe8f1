"""The runtime's retry loop (``shared/platform/runtime.py``): background loops must not stop quietly."""

from __future__ import annotations

import asyncio
import time

import pytest

from shared.platform import runtime
from shared.platform.tasks import cancel_and_wait


async def test_a_cancellation_nobody_asked_for_is_retried_like_a_failure(monkeypatch):
    monkeypatch.setattr(runtime, "backoff_seconds", lambda *_: 0.0)
    attempts = []

    async def action():
        attempts.append(1)
        if len(attempts) == 1:
            raise asyncio.CancelledError()  # as a library may raise when a connection is lost under it
        if len(attempts) == 2:
            raise ConnectionError("lost")

    await asyncio.wait_for(runtime.retry_until_done("loop", action, max_delay=0.0), 5)
    assert len(attempts) == 3


async def test_cancelling_the_task_still_stops_it():
    started = asyncio.Event()

    async def action():
        started.set()
        await asyncio.sleep(60)

    task = asyncio.create_task(runtime.retry_until_done("loop", action, max_delay=0.0))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)


async def test_cancel_and_wait_stops_a_task_that_swallows_its_cancellation():
    async def swallows_once():
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            pass  # as 3.11's wait_for can, when what it waits for completes at that moment
        await asyncio.sleep(60)

    task = asyncio.create_task(swallows_once())
    await asyncio.sleep(0)
    assert await cancel_and_wait(task, timeout=2.0)
    assert task.cancelled()


async def test_cancel_and_wait_gives_up_on_a_task_that_never_ends_within_its_bound():
    release = asyncio.Event()

    async def refuses():
        while not release.is_set():
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(refuses())
    await asyncio.sleep(0)
    began = time.monotonic()
    assert not await cancel_and_wait(task, timeout=0.5)
    assert time.monotonic() - began < 1.0 and not task.done()
    release.set()
    task.cancel()
    await asyncio.wait({task}, timeout=1)
    assert task.done()


@pytest.mark.parametrize("batch_size", [1, 16])
async def test_a_stopping_consumer_applies_nothing_more_and_leaves_it_unacked(batch_size):
    """Once the service is stopping, a delivery (say the next event of a case whose earlier one
    was just left unacked) is neither applied nor acked: both come back, and the later one
    cannot overtake the earlier one."""
    from types import SimpleNamespace

    from shared.contracts import CaseClosed, envelope_for
    from shared.platform.consumer import Consumer
    from shared.platform.handlers import HandlerTable

    applied, settled = [], []

    def pool():
        raise AssertionError("a stopping consumer must not open a transaction")

    consumer = Consumer(
        service="test",
        handlers=HandlerTable("test"),
        unit_of_work=lambda conn, message: None,  # type: ignore[arg-type,return-value]
        broker=None,  # type: ignore[arg-type]
        topology=None,  # type: ignore[arg-type]
        pool=pool,  # type: ignore[arg-type]
        metrics=None,  # type: ignore[arg-type]
        batch_size=batch_size,
    )
    event = CaseClosed.model_validate({"case_ref": "TS-STOP", "reason": "MOVED", "closed_at": "2026-11-02T10:00:00Z"})

    async def handler(payload, uow):
        applied.append(payload)

    async def ack():
        settled.append("ack")

    message = SimpleNamespace(
        raw_message=SimpleNamespace(headers={}, routing_key="CaseClosed", user_id=None, exchange="x.events"),
        ack=ack,
    )
    consumer.stopping()
    await consumer._process(message, envelope_for(event, producer="referral"), event, handler)  # type: ignore[arg-type]
    await consumer.close()
    assert applied == [] and settled == []


async def test_deliveries_take_their_place_in_their_cases_line_in_delivery_order_whatever_order_they_start_in():
    """The broker delivered tags 1, 2, 3 of one case, but their tasks started 3, 1, 2 (as seen
    under load): they still take their turns 1, 2, 3."""
    from shared.platform.consumer import Arrivals, KeyedLocks

    arrivals, locks, applied = Arrivals(gap_seconds=5.0), KeyedLocks(), []

    async def deliver(tag: int) -> None:
        async with arrivals.turn(channel=1, tag=tag):
            ticket = locks.enqueue("TS-CASE")
        await ticket.wait()
        applied.append(tag)
        await asyncio.sleep(0.01)
        ticket.release()

    first = asyncio.create_task(deliver(1))  # the channel's first delivery is seen first
    await asyncio.sleep(0.01)
    await first
    tasks = [asyncio.create_task(deliver(tag)) for tag in (4, 2, 3)]
    await asyncio.wait_for(asyncio.gather(*tasks), 2)
    assert applied == [1, 2, 3, 4]


async def test_a_delivery_that_never_comes_holds_the_next_ones_only_briefly():
    from shared.platform.consumer import Arrivals

    arrivals, admitted = Arrivals(gap_seconds=0.2), []

    async def deliver(tag: int) -> None:
        async with arrivals.turn(channel=1, tag=tag):
            admitted.append(tag)

    await deliver(1)
    started = time.monotonic()
    await asyncio.wait_for(asyncio.gather(deliver(4), deliver(3)), 2)  # 2 never comes
    assert admitted == [1, 3, 4] and time.monotonic() - started < 1.0
    await deliver(5)  # and then it goes on without waiting
    assert admitted[-1] == 5


async def test_a_waiting_place_in_a_line_that_is_given_up_passes_the_turn_on():
    from shared.platform.consumer import KeyedLocks

    locks = KeyedLocks()
    first, second, third = (locks.enqueue("k") for _ in range(3))
    second.release()  # cancelled while waiting
    first.release()
    await asyncio.wait_for(third.wait(), 1)
    third.release()
    assert locks._lines == {}


def test_an_agencys_commands_on_one_case_wait_in_that_cases_line_like_its_events():
    """Events carry their case in a header (set by the relay); an agency's command names its case
    in its payload. Both put a delivery in the case's line; a new referral (no case yet) and a
    poison message in none."""
    from types import SimpleNamespace

    from shared.contracts import CaseClosed, PoisonMessage, RecordConsent, envelope_for
    from shared.platform.consumer import ORDERING_HEADER, Decoded, _ordering_key_of

    def message(headers):
        return SimpleNamespace(raw_message=SimpleNamespace(headers=headers))

    record = RecordConsent.model_validate(
        {"case_ref": "TS-ONE", "party": "FK", "given_on": "2026-11-01", "form_ref": "F"}
    )
    closed = CaseClosed.model_validate({"case_ref": "TS-TWO", "reason": "MOVED", "closed_at": "2026-11-02T10:00:00Z"})
    as_command = Decoded(envelope_for(record, producer="AF"), record, handler=None)  # type: ignore[arg-type]
    as_event = Decoded(envelope_for(closed, producer="referral"), closed, handler=None)  # type: ignore[arg-type]
    assert _ordering_key_of(message({}), as_command) == "TS-ONE"  # type: ignore[arg-type]
    assert _ordering_key_of(message(None), as_command) == "TS-ONE"  # type: ignore[arg-type]
    assert _ordering_key_of(message({ORDERING_HEADER: "TS-TWO"}), as_event) == "TS-TWO"  # type: ignore[arg-type]
    assert _ordering_key_of(message({}), PoisonMessage("bad_json", "x")) is None  # type: ignore[arg-type]


async def test_a_batch_handler_gets_its_contracts_deliveries_of_a_transaction_at_once_in_delivery_order():
    """``handlers.on_batch``: consecutive deliveries of the batch handler's contracts go to it
    together with one unit of work; any other delivery to its own handler, alone; a delivery of
    the batch handler's contracts applied alone (a batch split, or group commit off) goes to it
    as a list of one."""
    from shared.contracts import CaseClosed, CasePostponed, TeamUpdated, envelope_for
    from shared.platform.consumer import Consumer, Delivery, _runs
    from shared.platform.handlers import HandlerTable, Received
    from shared.platform.uow import Message, PostgresUnitOfWork

    table, calls = HandlerTable("test"), []

    @table.on_batch(CaseClosed, CasePostponed)
    async def in_batches(received: list[Received], uow) -> None:
        calls.append(("batch", [r.event.case_ref for r in received], [r.message.envelope.event_id for r in received]))

    @table.on(TeamUpdated)
    async def alone(event, uow) -> None:
        calls.append(("alone", event.team_id, uow.message.envelope.event_id))

    consumer = Consumer(
        service="test",
        handlers=table,
        unit_of_work=lambda conn, message: PostgresUnitOfWork(conn, "test", message=message),
        broker=None,  # type: ignore[arg-type]
        topology=None,  # type: ignore[arg-type]
        pool=None,  # type: ignore[arg-type]
        metrics=None,  # type: ignore[arg-type]
    )

    def delivery(event) -> Delivery:
        handler = table.handler_for(event)
        assert handler is not None
        return Delivery(Message(envelope_for(event, producer="referral")), event, handler)

    def closed(case_ref: str) -> CaseClosed:
        return CaseClosed.model_validate({"case_ref": case_ref, "reason": "MOVED", "closed_at": "2026-11-02T10:00:00Z"})

    postponed = CasePostponed.model_construct(case_ref="TS-C")  # (only its class and case count here)
    team = TeamUpdated.model_construct(team_id="T1")
    deliveries = [delivery(closed("TS-A")), delivery(closed("TS-B")), delivery(postponed), delivery(team)]
    deliveries.append(delivery(closed("TS-D")))
    for run in _runs(deliveries):
        await consumer._handle_run(None, run, len(deliveries))  # type: ignore[arg-type]
    ids = [d.message.envelope.event_id for d in deliveries]
    assert calls == [
        ("batch", ["TS-A", "TS-B", "TS-C"], ids[:3]),
        ("alone", "T1", ids[3]),
        ("batch", ["TS-D"], ids[4:]),
    ]
