"""The messaging backbone's guarantees, proven on the real RabbitMQ and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import random

import asyncpg
import pytest

from services.metrics import app as metrics_app
from services.referral import app as referral_app
from shared.contracts import MAX_MESSAGE_BYTES, CaseClosed, CaseReferred
from shared.contracts.vocabulary import Party
from shared.platform.config import Settings
from shared.platform.consumer import DETAIL_HEADER, ORDERING_HEADER, REASON_HEADER
from shared.platform.runtime import ServiceSpec
from tests.support import broker as amqp
from tests.support.referrals import send_referral, submit_referral

pytestmark = pytest.mark.infra


async def referral_count(runtime) -> int:
    """CaseReferred events applied by the metrics service (its event log: one row per event)."""
    async with runtime.pool.acquire() as conn:
        return await conn.fetchval("SELECT count(*) FROM event_log WHERE event_type = 'CaseReferred'")


async def pending_outbox(runtime) -> list[asyncpg.Record]:
    async with runtime.pool.acquire() as conn:
        return await conn.fetch("SELECT * FROM outbox WHERE sent_at IS NULL ORDER BY id")


def case_referred_envelope(case_ref: str = "TS-TEST0000000001", **overrides) -> dict:
    payload = {
        "case_ref": case_ref,
        "team_id": "GAVLE-BRYNAS",
        "municipality": "Gävle",
        "referring_party": "AF",
        "gender": "WOMAN",
        "age_band": "35-44",
        "income_source": "SJUKPENNING",
        "consented_parties": ["AF", "FK"],
        "wishes_to_attend": True,
        "violence_question_asked": False,
        "reason_codes": [],
        "referred_at": "2026-11-02T10:00:00+00:00",
    }
    payload.update(overrides)
    return amqp.envelope("CaseReferred", payload, producer="referral")


async def test_crash_after_commit_before_publish_still_publishes_once(agencies, settings: Settings, runtimes):
    metrics = await runtimes(metrics_app.spec(settings), settings)

    # Referral instance A commits the case and its event, then "dies" before publishing:
    # its relay hangs in publish and the process is torn down.
    crashed = asyncio.Event()

    async def frozen_publish(_event):
        crashed.set()
        await asyncio.Event().wait()

    from shared.platform.runtime import Runtime

    instance_a = Runtime(referral_app.spec(settings), settings)
    instance_a._publish_pending = frozen_publish
    await instance_a.start()
    await send_referral(agencies[Party.AF], settings.namespace, submit_referral())
    await asyncio.wait_for(crashed.wait(), 20)
    async with instance_a.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM referrals") == 1
    await instance_a.stop()  # the claimed row's transaction rolls back with the connection

    await asyncio.sleep(0.5)
    assert await referral_count(metrics) == 0, "nothing may have been published by the crashed one"

    instance_b = await runtimes(referral_app.spec(settings), settings)
    await amqp.eventually(lambda: referral_count(metrics), what="the event published after restart")
    await amqp.eventually(lambda: _empty(pending_outbox(instance_b)), what="outbox drained")
    await asyncio.sleep(0.5)
    assert await referral_count(metrics) == 1


async def _empty(coro) -> bool:
    return len(await coro) == 0


async def test_same_event_delivered_twice_has_one_effect(agencies, settings: Settings, runtimes):
    metrics = await runtimes(metrics_app.spec(settings), settings)
    event = case_referred_envelope()
    for _ in range(2):
        await amqp.publish(settings.amqp_url, f"{settings.namespace}.events", "CaseReferred", event)
    await amqp.eventually(lambda: _duplicates_seen(metrics), what="the second delivery to be skipped as duplicate")
    assert await referral_count(metrics) == 1
    async with metrics.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM inbox") == 1
    assert await amqp.message_count(settings.amqp_url, f"{settings.namespace}.metrics") == 0


async def _duplicates_seen(runtime) -> bool:
    return runtime.metrics.duplicates.labels("metrics", "CaseReferred")._value.get() >= 1


async def test_poison_messages_are_dead_lettered_with_reason_and_the_next_is_processed(settings: Settings, runtimes):
    metrics = await runtimes(metrics_app.spec(settings), settings)
    events = f"{settings.namespace}.events"
    bad_schema = case_referred_envelope(gender="SOMETIMES")
    unknown_type = amqp.envelope("CaseTeleported", {"case_ref": "x"})
    unknown_version = case_referred_envelope()
    unknown_version["version"] = 99
    oversized = case_referred_envelope(reason_codes=["x" * MAX_MESSAGE_BYTES])
    poison = [
        (b"{this is not json", "bad_envelope"),
        (bad_schema, "schema_violation"),
        (unknown_type, "unknown_type"),
        (unknown_version, "unknown_version"),
        (oversized, "too_large"),
    ]
    for body, _reason in poison:
        await amqp.publish(settings.amqp_url, events, "CaseReferred", body)
    await amqp.publish(settings.amqp_url, events, "CaseReferred", case_referred_envelope("TS-GOOD000000000001"))

    await amqp.eventually(lambda: referral_count(metrics), what="the good message after the poison")
    dead_queue = f"{settings.namespace}.metrics.dead"
    await amqp.eventually(
        lambda: _count_is(settings.amqp_url, dead_queue, len(poison)),
        what="all poison messages in the dead-letter queue",
    )
    dead = await amqp.drain(settings.amqp_url, dead_queue)
    reasons = sorted(m.headers[REASON_HEADER] for m in dead)
    assert reasons == sorted(r for _, r in poison)
    assert all(m.headers[DETAIL_HEADER] for m in dead)
    assert all(m.delivery_mode.value == 2 for m in dead), "dead letters must be persistent"
    assert await referral_count(metrics) == 1
    assert await amqp.message_count(settings.amqp_url, f"{settings.namespace}.metrics") == 0


async def _count_is(url: str, queue: str, expected: int) -> bool:
    return await amqp.message_count(url, queue) == expected


def metrics_with_one_broken_case(settings: Settings) -> tuple[ServiceSpec, dict[str, int]]:
    """The metrics service whose CaseReferred handler fails for TS-BROKEN000000001 (a bug),
    and the calls of that handler per case."""
    real, calls = metrics_app.spec(settings), {}

    real_handler = real.handlers.get(CaseReferred)

    async def one_broken(event, uow):
        calls[event.case_ref] = calls.get(event.case_ref, 0) + 1
        if event.case_ref == "TS-BROKEN000000001":
            raise RuntimeError("bug in handler")
        await real_handler(event, uow)

    return ServiceSpec(
        name="metrics",
        description="metrics with a broken handler",
        migrations=real.migrations,
        handlers=real.handlers.replaced(CaseReferred, one_broken),
        unit_of_work=real.unit_of_work,
    ), calls


async def test_a_handler_that_keeps_failing_is_dead_lettered_after_bounded_attempts(settings: Settings, runtimes):
    spec, attempts = metrics_with_one_broken_case(settings)
    metrics = await runtimes(spec, settings)
    events = f"{settings.namespace}.events"
    await amqp.publish(settings.amqp_url, events, "CaseReferred", case_referred_envelope("TS-BROKEN000000001"))
    await amqp.publish(settings.amqp_url, events, "CaseReferred", case_referred_envelope("TS-FINE0000000001"))
    dead_queue = f"{settings.namespace}.metrics.dead"
    await amqp.eventually(lambda: _count_is(settings.amqp_url, dead_queue, 1), what="the failing message dead-lettered")
    await amqp.eventually(lambda: referral_count(metrics), what="the next message processed")
    [dead] = await amqp.drain(settings.amqp_url, dead_queue)
    assert dead.headers[REASON_HEADER] == "handler_error"
    assert "RuntimeError" in dead.headers[DETAIL_HEADER]
    # alone, exactly the bounded attempts; a batch it was in and that rolled back adds calls
    assert attempts["TS-BROKEN000000001"] >= settings.max_handler_attempts
    async with metrics.pool.acquire() as conn:  # the failed attempts left no inbox row behind
        assert await conn.fetchval("SELECT count(*) FROM inbox") == 1


async def test_deliveries_waiting_together_are_applied_in_one_transaction_and_a_failure_in_a_batch_costs_nothing(
    settings: Settings, runtimes
):
    settings = settings.model_copy(update={"consume_batch_size": 16})
    spec, _ = metrics_with_one_broken_case(settings)
    refs = [f"TS-BATCH{i:010d}" for i in range(200)]
    # the queue fills before the consumer starts, so deliveries wait together
    from shared.platform import topology as topo

    await topo.declare(settings.amqp_url, topo.Topology.of(settings))
    await amqp.publish_many(
        settings.amqp_url,
        f"{settings.namespace}.events",
        [("CaseReferred", case_referred_envelope(ref)) for ref in refs[:100]]
        + [("CaseReferred", case_referred_envelope("TS-BROKEN000000001"))]
        + [("CaseReferred", case_referred_envelope(ref)) for ref in refs[100:]],
    )
    metrics = await runtimes(spec, settings)

    async def all_applied():
        return await referral_count(metrics) == len(refs)

    await amqp.eventually(all_applied, timeout=60, what="every good delivery applied")
    await amqp.eventually(
        lambda: _count_is(settings.amqp_url, f"{settings.namespace}.metrics.dead", 1),
        what="the broken one dead-lettered",
    )
    batches = metrics.consumer.batches
    assert batches.applied > 0, "deliveries that waited together were applied in batches"
    assert batches.rolled_back > 0, "the broken one rolled its batches back"
    async with metrics.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM inbox") == len(refs)
        assert await conn.fetchval("SELECT count(DISTINCT payload->>'case_ref') FROM event_log") == len(refs)


async def test_an_unroutable_event_stays_pending_in_the_outbox(agencies, settings: Settings, runtimes):
    referral = await runtimes(referral_app.spec(settings), settings)
    # Nobody is bound to CaseReferred: the consumers' queues are gone.
    await amqp.delete_topology(
        settings.amqp_url, [f"{settings.namespace}.{s}" for s in ("meeting", "followup", "metrics")], []
    )
    await send_referral(agencies[Party.KOMMUN], settings.namespace, submit_referral())

    async def failed_at_least_twice():
        rows = await pending_outbox(referral)
        return rows and rows[0]["attempts"] >= 2 and rows

    rows = await amqp.eventually(failed_at_least_twice, what="repeated failed publishes")
    # the reply to the agency waits behind it: one case's events keep their order
    assert [r["event_type"] for r in rows] == ["CaseReferred", "ReferralAccepted"]
    assert rows[1]["attempts"] == 0
    print("last_error:", rows[0]["last_error"])
    assert "NO_ROUTE" in rows[0]["last_error"] or "returned" in rows[0]["last_error"].lower()

    # Once a consumer's queue is bound again (any service declares them all), it goes out, once.
    metrics = await runtimes(metrics_app.spec(settings), settings)
    await amqp.eventually(
        lambda: referral_count(metrics), timeout=30, what="the pending event delivered after a route appeared"
    )
    await amqp.eventually(lambda: _empty(pending_outbox(referral)), what="the reply sent too")
    await asyncio.sleep(0.5)
    assert await referral_count(metrics) == 1


async def test_events_of_one_case_keep_their_order(agencies, settings: Settings, runtimes):
    """The relay never sends a case's later event while an earlier one is pending."""
    from shared.platform import outbox

    referral = await runtimes(referral_app.spec(settings), settings)
    await referral.relay.stop()  # drive the relay by hand
    published: list[str] = []
    fail_first = {"left": 1}

    async def publish(event):
        if event.event_id and fail_first["left"] and json.loads(event.body)["payload"]["case_ref"] == "TS-A":
            fail_first["left"] -= 1
            raise RuntimeError("Basic.Return(reply_code=312, reply_text='NO_ROUTE')")
        published.append(json.loads(event.body)["payload"]["case_ref"] + ":" + str(event.id))

    relay = outbox.OutboxRelay(referral.pool, publish, max_backoff_seconds=0.01)
    async with referral.pool.acquire() as conn:
        for case in ("TS-A", "TS-B", "TS-A", "TS-B"):
            async with conn.transaction():
                await outbox.add(
                    conn,
                    CaseReferred.model_validate(case_referred_envelope(case)["payload"]),
                    producer="referral",
                    ordering_key=case,
                )
    await relay.relay_once()  # TS-A #1 is returned: TS-A #3 must wait; TS-B both go
    assert [p.split(":")[0] for p in published] == ["TS-B", "TS-B"]
    await asyncio.sleep(0.05)
    await relay.relay_once()
    assert [p.split(":")[0] for p in published] == ["TS-B", "TS-B", "TS-A", "TS-A"]
    ids_a = [int(p.split(":")[1]) for p in published if p.startswith("TS-A")]
    assert ids_a == sorted(ids_a)


async def test_a_publish_that_never_returns_does_not_hang_the_relay(agencies, settings: Settings, runtimes):
    """A publish waits for a lost connection to come back, which its confirm timeout does not
    cover: the relay bounds each publish, notes it failed and sends it again later."""
    from shared.platform import outbox

    referral = await runtimes(referral_app.spec(settings), settings)
    await referral.relay.stop()  # drive the relay by hand
    published: list[str] = []
    hang_first = {"left": 1}

    async def publish(event):
        if hang_first["left"]:
            hang_first["left"] -= 1
            await asyncio.Event().wait()  # a connection that never comes back
        published.append(json.loads(event.body)["payload"]["case_ref"])

    relay = outbox.OutboxRelay(referral.pool, publish, max_backoff_seconds=0.01, publish_timeout_seconds=0.3)
    async with referral.pool.acquire() as conn, conn.transaction():
        await outbox.add(
            conn,
            CaseReferred.model_validate(case_referred_envelope("TS-HUNG")["payload"]),
            producer="referral",
            ordering_key="TS-HUNG",
        )
    async with asyncio.timeout(5):
        assert await relay.relay_once() == 0  # given up after 0.3 s, not waited on
    async with referral.pool.acquire() as conn:
        error = await conn.fetchval("SELECT last_error FROM outbox WHERE sent_at IS NULL")
    assert error.startswith("TimeoutError")
    await asyncio.sleep(0.05)
    assert await relay.relay_once() == 1
    assert published == ["TS-HUNG"]


async def test_two_relays_never_publish_the_same_event_twice(agencies, settings: Settings, runtimes):
    from shared.platform import outbox

    referral = await runtimes(referral_app.spec(settings), settings)
    await referral.relay.stop()
    seen: list[str] = []

    async def publish(event):
        await asyncio.sleep(0.001)
        seen.append(str(event.event_id))

    async with referral.pool.acquire() as conn, conn.transaction():
        for i in range(300):
            await outbox.add(
                conn,
                CaseReferred.model_validate(case_referred_envelope(f"TS-{i}")["payload"]),
                producer="referral",
                ordering_key=f"TS-{i}",
            )
    relays = [outbox.OutboxRelay(referral.pool, publish, batch_size=25) for _ in range(3)]

    async def drain(relay):
        while await relay.relay_once():
            pass

    await asyncio.gather(*(drain(r) for r in relays))
    assert len(seen) == 300 and len(set(seen)) == 300
    assert await pending_outbox(referral) == []


@pytest.mark.timeout(300)
async def test_persistent_messages_survive_a_broker_restart(infra, agencies, settings: Settings, runtimes):
    if not infra.can_restart_broker():
        pytest.fail(
            "cannot restart the broker from this test (needs a local rabbitmqctl or a "
            "test container); the cut-connection test still runs"
        )
    metrics = await runtimes(metrics_app.spec(settings), settings)
    await metrics.stop()  # its queue stays, nobody consumes
    referral = await runtimes(referral_app.spec(settings), settings)
    rng = random.Random(7)
    for _ in range(20):
        await send_referral(agencies[Party.REGION], settings.namespace, submit_referral(rng))
    await amqp.eventually(
        lambda: _count_is(settings.amqp_url, f"{settings.namespace}.metrics", 20),
        what="20 events waiting in the metrics queue",
    )

    await asyncio.to_thread(infra.restart_broker)

    assert await amqp.message_count(settings.amqp_url, f"{settings.namespace}.metrics") == 20
    # The referral service reconnects by itself and goes on.
    for _ in range(5):
        await send_referral(agencies[Party.REGION], settings.namespace, submit_referral(rng))
    metrics = await runtimes(metrics_app.spec(settings), settings)
    await amqp.eventually(
        lambda: _count_at_least(metrics, 25), timeout=60, what="all 25 referrals counted after the restart"
    )
    await asyncio.sleep(0.5)
    assert await referral_count(metrics) == 25
    assert await pending_outbox(referral) == []


async def _count_at_least(runtime, n: int) -> bool:
    return await referral_count(runtime) >= n


async def test_an_event_from_a_service_that_does_not_own_it_is_refused(infra, settings: Settings, runtimes):
    """Found by a review: any service could forge CaseClosed, which starts the erasure clock in
    referral. With the services' broker users known, a consumer takes an event only from the
    service that owns its type (the message's user_id, checked by RabbitMQ). The users here have
    no topic permissions (a broker set up without them): the consumer's check alone refuses."""
    import secrets as random_secrets
    from urllib.parse import urlparse

    from tests.support.agencies import rabbitmqctl_runner
    from tools import broker_users

    run = rabbitmqctl_runner(infra)
    prefix = settings.namespace.replace("_", "-")
    users = {s: (f"{prefix}-svc-{s}", random_secrets.token_hex(12)) for s in ("followup", "meeting")}
    vhost = urlparse(infra.amqp_url).path.lstrip("/") or "/"
    await asyncio.to_thread(
        broker_users.apply_with_rabbitmqctl,
        [broker_users.service_user(name, password, settings.namespace) for name, password in users.values()],
        vhost,
        run,
    )
    try:
        checked = settings.model_copy(
            update={"service_users": {"followup": users["followup"][0], "meeting": users["meeting"][0]}}
        )
        referral = await runtimes(referral_app.spec(checked), checked)

        def as_user(service: str) -> str:
            name, password = users[service]
            parts = urlparse(infra.amqp_url)
            return parts._replace(netloc=f"{name}:{password}@{parts.hostname}:{parts.port or 5672}").geturl()

        events = f"{settings.namespace}.events"
        closed = {"reason": "PLAN_COMPLETED", "closed_at": "2026-11-02T10:00:00+00:00"}
        forged = amqp.envelope("CaseClosed", {"case_ref": "TS-FORGED00000001", **closed}, producer="meeting")
        genuine = amqp.envelope("CaseClosed", {"case_ref": "TS-GENUINE0000001", **closed}, producer="followup")
        await amqp.publish(as_user("meeting"), events, "CaseClosed", forged, user_id=users["meeting"][0])
        await amqp.publish(as_user("followup"), events, "CaseClosed", genuine, user_id=users["followup"][0])

        dead_queue = f"{settings.namespace}.referral.dead"
        await amqp.eventually(lambda: _count_is(settings.amqp_url, dead_queue, 1), what="the forged event refused")

        async def genuine_taken() -> bool:
            async with referral.pool.acquire() as conn:
                return await conn.fetchval("SELECT count(*) FROM inbox WHERE event_type = 'CaseClosed'") == 1

        await amqp.eventually(genuine_taken, what="the genuine event taken")
        [dead] = await amqp.drain(settings.amqp_url, dead_queue)
        assert dead.headers[REASON_HEADER] == "sender_not_owner"
        assert json.loads(dead.body)["payload"]["case_ref"] == "TS-FORGED00000001"
    finally:
        await asyncio.to_thread(broker_users.delete_with_rabbitmqctl, [name for name, _ in users.values()], run)


async def test_a_failing_handler_is_retried_in_place_and_the_case_keeps_its_order(settings: Settings, runtimes):
    """Found by counting: a requeued message comes back behind the case's next event (quorum
    queues redeliver returned messages apart), so the next was applied first. A handler that
    fails is now retried in place, holding the case's turn."""
    real = metrics_app.spec(settings)
    applied: list[str] = []
    failures = {"left": 2}
    referred, closed = real.handlers.get(CaseReferred), real.handlers.get(CaseClosed)

    async def flaky_referred(event, uow):
        if failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("a passing fault")
        await referred(event, uow)
        applied.append("CaseReferred")

    async def noted_closed(event, uow):
        await closed(event, uow)
        applied.append("CaseClosed")

    handlers = real.handlers.replaced(CaseReferred, flaky_referred).replaced(CaseClosed, noted_closed)
    spec = ServiceSpec(
        name="metrics",
        description="metrics, flaky",
        migrations=real.migrations,
        handlers=handlers,
        unit_of_work=real.unit_of_work,
    )
    await runtimes(spec, settings)
    case_ref, events = "TS-ORDER000000001", f"{settings.namespace}.events"
    key = {ORDERING_HEADER: case_ref}
    await amqp.publish(settings.amqp_url, events, "CaseReferred", case_referred_envelope(case_ref), headers=key)
    closure = {"case_ref": case_ref, "reason": "PLAN_COMPLETED", "closed_at": "2026-11-03T10:00:00+00:00"}
    await amqp.publish(settings.amqp_url, events, "CaseClosed", amqp.envelope("CaseClosed", closure), headers=key)

    async def both() -> bool:
        return len(applied) == 2

    await amqp.eventually(both, what="both events applied")
    assert applied == ["CaseReferred", "CaseClosed"] and failures["left"] == 0


async def test_a_units_events_go_to_the_outbox_in_one_statement_in_order_and_the_inbox_claims_a_list(
    settings: Settings, runtimes
):
    """The consumer's set-based writes: the inbox rows of a batch in one statement (the same
    message twice in one list is new once), and the events emitted by a unit of work, kept until
    its flush, in the outbox in the order they were emitted (the relay's order)."""
    import uuid

    from shared.contracts import envelope_for
    from shared.platform.uow import Message, PostgresUnitOfWork, claim_all

    referral = await runtimes(referral_app.spec(settings), settings)
    await referral.relay.stop()
    cases = [f"TS-ORDER{i:08d}" for i in range(30)]
    events = [CaseReferred.model_validate(case_referred_envelope(case)["payload"]) for case in cases]
    async with referral.pool.acquire() as conn:
        async with conn.transaction():
            uow = PostgresUnitOfWork(conn, "referral")
            uow.defer_outbox()
            for event in events:
                await uow.emit(event, ordering_key=event.case_ref)
            assert await conn.fetchval("SELECT count(*) FROM outbox") == 0  # kept until the flush
            await uow.flush()
        rows = await conn.fetch("SELECT event_id, ordering_key FROM outbox ORDER BY id")
        assert [r["ordering_key"] for r in rows] == cases
        assert [r["event_id"] for r in rows] == [e.event_id for e in uow.emitted]

        seen_before, new = (
            Message(envelope_for(events[i], producer="referral"), inbox_id=uuid.uuid4()) for i in range(2)
        )
        async with conn.transaction():
            assert await claim_all(conn, "test", [seen_before]) == [True]
        async with conn.transaction():
            assert await claim_all(conn, "test", [seen_before, new, new]) == [False, True, False]
        assert await conn.fetchval("SELECT count(*) FROM inbox WHERE consumer = 'test'") == 2


async def test_the_broker_lets_a_service_publish_only_its_own_events_and_read_only_its_own_queues(
    infra, settings: Settings, runtimes
):
    """Least privilege on the broker itself: the meeting service's user is refused when it
    publishes CaseClosed (the follow-up service's; topic permissions) and when it reads an
    agency's queue or another service's queue; it declares the topology and reads its own. The
    follow-up service's user publishes CaseClosed."""
    import secrets as random_secrets
    from urllib.parse import urlparse

    import aio_pika

    from shared.platform import topology as topo
    from tests.support.agencies import rabbitmqctl_runner
    from tools import broker_users

    run = rabbitmqctl_runner(infra)
    assert run is not None, "rabbitmqctl is needed to create the users"
    await topo.declare(settings.amqp_url, topo.Topology.of(settings))
    prefix = settings.namespace.replace("_", "-")
    users = {s: (f"{prefix}-svc-{s}", random_secrets.token_hex(12)) for s in ("followup", "meeting")}
    vhost = urlparse(infra.amqp_url).path.lstrip("/") or "/"
    await asyncio.to_thread(
        broker_users.apply_with_rabbitmqctl,
        [broker_users.service_user(name, pw, settings.namespace, service) for service, (name, pw) in users.items()],
        vhost,
        run,
    )

    def as_user(service: str) -> str:
        name, password = users[service]
        parts = urlparse(infra.amqp_url)
        return parts._replace(netloc=f"{name}:{password}@{parts.hostname}:{parts.port or 5672}").geturl()

    events = f"{settings.namespace}.events"
    closed = amqp.envelope(
        "CaseClosed",
        {"case_ref": "TS-FORGED00000001", "reason": "PLAN_COMPLETED", "closed_at": "2026-11-02T10:00:00+00:00"},
    )
    try:
        with pytest.raises(Exception, match="ACCESS_REFUSED"):
            await amqp.publish(as_user("meeting"), events, "CaseClosed", closed)
        await amqp.publish(as_user("followup"), events, "CaseClosed", closed)  # its own: goes
        await amqp.publish(as_user("meeting"), events, "CaseScheduled", closed)  # one of its own keys

        # it declares and binds the whole topology (as every service does at start) and reads its
        # own queues; no agency's queue, no other service's queue or dead letters
        await topo.declare(as_user("meeting"), topo.Topology.of(settings))
        for own in (f"{settings.namespace}.meeting", f"{settings.namespace}.meeting.dead"):
            conn = await aio_pika.connect(as_user("meeting"))
            try:
                await (await (await conn.channel()).get_queue(own, ensure=False)).get(fail=False)
            finally:
                await conn.close()
        for other in ("agency.AF", "followup", "followup.dead", "referral.intake.AF", "aggregates.dashboard"):
            conn = await aio_pika.connect(as_user("meeting"))
            try:
                channel = await conn.channel()
                with pytest.raises(Exception, match="ACCESS_REFUSED"):
                    queue = await channel.get_queue(f"{settings.namespace}.{other}", ensure=False)
                    await queue.get(fail=False)
            finally:
                await conn.close()
    finally:
        await asyncio.to_thread(broker_users.delete_with_rabbitmqctl, [name for name, _ in users.values()], run)
