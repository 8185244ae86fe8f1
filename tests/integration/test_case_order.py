"""A case's events are applied in their order, whatever order they arrive in: numbered per
receiving service by the producer's outbox, checked by the consumer inside its transaction
(``shared/platform/sequences.py``). On the real RabbitMQ and PostgreSQL, with two instances of
the metrics service, deliveries shuffled as requeues shuffle them, and an instance stopped
mid-handler so that its deliveries come back to the other one."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
from datetime import UTC, datetime

import asyncpg
import pytest

from services.metrics import app as metrics_app
from services.referral import app as referral_app
from shared.contracts import CaseClosed, CaseReferred, ConsentRecorded, ConsentWithdrawn
from shared.platform import outbox, sequences
from shared.platform import topology as topo
from shared.platform.config import Settings
from shared.platform.consumer import ORDERING_HEADER, REASON_HEADER
from shared.platform.sequences import PRODUCER_HEADER, SEQUENCE_HEADER
from shared.platform.topology import Topology
from tests.integration.test_messaging import case_referred_envelope
from tests.support import broker as amqp

pytestmark = pytest.mark.infra

# A case's line as the metrics service receives it from the referral service
LINE = ("CaseReferred", "ConsentWithdrawn", "ConsentRecorded", "CaseClosed")
NOW = "2026-11-02T10:00:00+00:00"


def event(event_type: str, case_ref: str) -> dict:
    payloads = {
        "CaseReferred": case_referred_envelope(case_ref, consented_parties=["AF", "FK", "KOMMUN"])["payload"],
        "ConsentWithdrawn": {
            "case_ref": case_ref,
            "party": "KOMMUN",
            "withdrawn_on": "2026-11-03",
            "on_behalf_of_individual": True,
            "recorded_by": "AF",
            "recorded_at": NOW,
        },
        "ConsentRecorded": {
            "case_ref": case_ref,
            "party": "KOMMUN",
            "given_on": "2026-11-04",
            "recorded_by": "AF",
            "recorded_at": NOW,
        },
        "CaseClosed": {"case_ref": case_ref, "reason": "PLAN_COMPLETED", "closed_at": NOW},
    }
    return amqp.envelope(event_type, payloads[event_type], producer="referral")


def numbered(case_ref: str, number: int) -> dict:
    """The headers the referral service's relay gives the case's ``number``-th event to metrics."""
    return {ORDERING_HEADER: case_ref, SEQUENCE_HEADER: {"metrics": number}, PRODUCER_HEADER: "referral"}


async def publish(settings: Settings, case_ref: str, number: int, body: dict | bytes | None = None) -> None:
    event_type = LINE[number - 1]
    await amqp.publish(
        settings.amqp_url,
        f"{settings.namespace}.events",
        event_type,
        body if body is not None else event(event_type, case_ref),
        headers=numbered(case_ref, number),
        type=event_type,
    )


async def applied_order(settings: Settings, case_ref: str) -> list[str]:
    """The case's events in the order the metrics service applied them (its event log; read on
    a connection of the test's own: the service's pool may be busy waiting)."""
    conn = await asyncpg.connect(settings.service_database_url("metrics"))
    try:
        rows = await conn.fetch(
            "SELECT event_type FROM event_log WHERE payload->>'case_ref' = $1 ORDER BY seq", case_ref
        )
    finally:
        await conn.close()
    return [r["event_type"] for r in rows]


async def skipped(settings: Settings) -> int:
    conn = await asyncpg.connect(settings.service_database_url("metrics"))
    try:
        return await sequences.skipped(conn, "metrics")
    finally:
        await conn.close()


def held_back(*runtimes) -> float:
    return sum(r.metrics.held_back.labels("metrics", t)._value.get() for r in runtimes for t in LINE)


async def test_the_outbox_numbers_each_event_in_every_receiving_services_line(settings: Settings, runtimes):
    referral = await runtimes(referral_app.spec(settings), settings)
    await referral.relay.stop()  # the rows stay to be read
    x, y = "TS-LINE00000000X", "TS-LINE00000000Y"
    at = datetime(2026, 11, 2, 10, tzinfo=UTC)
    referred = CaseReferred.model_validate(event("CaseReferred", x)["payload"])
    given = ConsentRecorded(case_ref=x, party="KOMMUN", given_on=at.date(), recorded_by="AF", recorded_at=at)
    closed = CaseClosed(case_ref=x, reason="PLAN_COMPLETED", closed_at=at)
    async with referral.pool.acquire() as conn:
        async with conn.transaction():  # one unit of work: several cases and events at once
            await outbox.add_many(
                conn,
                [
                    outbox.Outgoing(outbox.envelope_for(e, producer="referral"), e, key)
                    for e, key in ((referred, x), (referred.model_copy(update={"case_ref": y}), y), (given, x))
                ],
            )
        async with conn.transaction():  # a later one
            await outbox.add(conn, closed, producer="referral", ordering_key=x)
        async with conn.transaction():
            await outbox.add(conn, given, producer="referral", ordering_key=x)
        rows = await conn.fetch("SELECT event_type, ordering_key, sequence FROM outbox ORDER BY id")
    got = [(r["event_type"], r["ordering_key"], json.loads(r["sequence"])) for r in rows]
    assert got == [
        ("CaseReferred", x, {"meeting": 1, "followup": 1, "metrics": 1}),
        ("CaseReferred", y, {"meeting": 1, "followup": 1, "metrics": 1}),
        ("ConsentRecorded", x, {"meeting": 2, "followup": 2, "metrics": 2}),
        # CaseClosed does not go to the follow-up service: its line has no gap for it
        ("CaseClosed", x, {"referral": 1, "meeting": 3, "metrics": 3}),
        ("ConsentRecorded", x, {"meeting": 4, "followup": 3, "metrics": 4}),
    ]


@pytest.mark.timeout(180)
async def test_a_cases_events_are_applied_in_order_when_shuffled_and_across_a_stopped_instance(
    settings: Settings, runtimes
):
    real = metrics_app.spec(settings)
    victim = "TS-ORDERVICTIM001"
    hung = asyncio.Event()
    withdrawn = real.handlers.get(ConsentWithdrawn)

    async def hangs_on_the_victim(payload, uow):
        if payload.case_ref == victim:
            hung.set()
            await asyncio.Event().wait()  # until the instance is stopped
        await withdrawn(payload, uow)

    spec_a = dataclasses.replace(real, handlers=real.handlers.replaced(ConsentWithdrawn, hangs_on_the_victim))
    instance_a = await runtimes(spec_a, settings)
    await publish(settings, victim, 1)
    await publish(settings, victim, 2)
    await asyncio.wait_for(hung.wait(), 20)  # A applied 1 and hangs in 2, unacked

    instance_b = await runtimes(real, settings)
    # the victim's 3 and 4 go to either instance: at A they wait behind 2 in its case's line, at
    # B they are held back (2 is not applied)
    await publish(settings, victim, 3)
    await publish(settings, victim, 4)
    # 24 more cases, each case's four events published shuffled (as requeues shuffle them)
    rng = random.Random(16)
    others = [f"TS-ORDER{n:08d}" for n in range(24)]
    messages = [(case, number) for case in others for number in range(1, 5)]
    rng.shuffle(messages)
    await asyncio.gather(*(publish(settings, case, number) for case, number in messages))

    await asyncio.sleep(1.0)
    assert await applied_order(settings, victim) == ["CaseReferred"], "3 and 4 must wait for 2"
    await instance_a.stop()  # its unacked deliveries come back, to B

    async def all_applied() -> bool:
        orders = [await applied_order(settings, case) for case in [victim, *others]]
        return all(len(order) == 4 for order in orders)

    await amqp.eventually(all_applied, timeout=90, what="every case's four events applied")
    for case in [victim, *others]:
        assert await applied_order(settings, case) == list(LINE), case
    assert held_back(instance_a, instance_b) > 0, "the shuffled deliveries must have been held back"
    assert await skipped(settings) == 0
    assert await amqp.message_count(settings.amqp_url, f"{settings.namespace}.metrics.dead") == 0


@pytest.mark.timeout(120)
async def test_a_dead_lettered_event_passes_its_number_and_a_lost_one_holds_its_case_only_for_the_hold(
    settings: Settings, runtimes
):
    metrics = await runtimes(metrics_app.spec(settings), settings.model_copy(update={"sequence_hold_seconds": 3.0}))
    dead_queue = f"{settings.namespace}.metrics.dead"

    # a poison 2 is dead-lettered and gives up its number: 3 and 4 follow at once
    passed = "TS-PASSED0000001"
    await publish(settings, passed, 1)
    await publish(settings, passed, 2, b"{not json")
    await publish(settings, passed, 3)
    await publish(settings, passed, 4)
    await amqp.eventually(
        lambda: _is(applied_order(settings, passed), ["CaseReferred", "ConsentRecorded", "CaseClosed"]),
        timeout=2.5,  # less than the hold: nothing waited for the dead-lettered one
        what="the events after the dead-lettered one",
    )

    # 2 lost upstream: 3 waits the hold, then is applied and the gap counted
    lost = "TS-LOST000000001"
    await publish(settings, lost, 1)
    await publish(settings, lost, 3)
    await asyncio.sleep(1.0)
    assert await applied_order(settings, lost) == ["CaseReferred"], "3 is held back for 2"
    await amqp.eventually(
        lambda: _is(applied_order(settings, lost), ["CaseReferred", "ConsentRecorded"]),
        timeout=15,
        what="3 applied after the hold",
    )
    assert await skipped(settings) == 1
    assert metrics.metrics.sequence_gaps.labels("metrics")._value.get() == 1

    # 2 turns up after all: too late, dead-lettered for an operator, not applied out of order
    await publish(settings, lost, 2)
    await amqp.eventually(lambda: _count_is(settings, dead_queue, 2), what="the late one dead-lettered")
    dead = await amqp.drain(settings.amqp_url, dead_queue)
    assert sorted(m.headers[REASON_HEADER] for m in dead) == ["bad_envelope", "out_of_order"]
    assert await applied_order(settings, lost) == ["CaseReferred", "ConsentRecorded"]


async def _is(coro, expected) -> bool:
    return await coro == expected


async def _count_is(settings: Settings, queue: str, n: int) -> bool:
    return await amqp.message_count(settings.amqp_url, queue) == n


@pytest.mark.timeout(180)
async def test_partitions_keep_a_cases_events_in_one_queue_taken_by_one_instance_at_a_time(
    infra, settings: Settings, runtimes
):
    infra.enable_plugin("rabbitmq_consistent_hash_exchange")
    settings = settings.model_copy(update={"partitions": 4})
    topology = Topology.of(settings)
    partitions = [topology.partition_queue_name("metrics", i) for i in range(4)]
    started = []
    try:
        await topo.declare(settings.amqp_url, topology)
        cases = [f"TS-PART{n:09d}" for n in range(40)]
        for case in cases:
            await publish(settings, case, 1)
        depths = [await amqp.message_count(settings.amqp_url, name) for name in partitions]
        assert sum(depths) == 40 and all(depths), f"the cases spread over the partitions: {depths}"
        # the service's own queue now takes only operators' replays
        assert await amqp.message_count(settings.amqp_url, topology.queue_name("metrics")) == 0

        instance_a = await runtimes(metrics_app.spec(settings), settings)
        instance_b = await runtimes(metrics_app.spec(settings), settings)
        started += [instance_a, instance_b]

        async def referred(n: int) -> bool:
            return sum([len(await applied_order(settings, case)) >= 1 for case in cases]) == n

        await amqp.eventually(lambda: referred(40), what="every case referred")
        consumed = [r.metrics.consumed.labels("metrics", "CaseReferred")._value.get() for r in (instance_a, instance_b)]
        assert consumed == [40, 0], "one active consumer per partition: A came first and took them all"

        await instance_a.stop()  # B takes the partitions over
        for case in cases:
            await publish(settings, case, 2)

        async def withdrawn() -> bool:
            return all([await applied_order(settings, case) == list(LINE[:2]) for case in cases])

        await amqp.eventually(withdrawn, what="every case's second event, by B")
        assert instance_b.metrics.consumed.labels("metrics", "ConsentWithdrawn")._value.get() == 40
        assert held_back(instance_a, instance_b) == 0, "partitioned, nothing overtakes a case's earlier event"
    finally:
        for runtime in started:  # before their queues go: a consumer would declare its queue again
            await runtime.stop()
        # (the namespace's clean-up knows only the plain queues; this topology its partitions too)
        await amqp.delete_topology(settings.amqp_url, topology.all_queue_names(), topology.all_exchange_names())
