"""Fault injection around a running platform, and the ledger that counts what came out.

The system: two instances of every service (separate processes), talking to the broker
through a cuttable TCP proxy, all on a fast development clock that stops at a known moment so
that the run comes to rest. The simulator plays the agencies and coordinators. While it runs,
``Injector`` kills and restarts service processes (SIGKILL), cuts every broker connection,
terminates the services' database connections, restarts the broker (full run only) and sends
poison messages. On a RabbitMQ cluster (``tools/cluster.py``) it also kills the node that leads
most of the run's quorum queues (SIGKILL) and brings it back. ``Ledger`` then counts, from
every service's own database, the broker and the simulator's answers, what was sent,
accepted, rejected, consulted, scheduled, fired and counted, and what was lost or applied twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aio_pika
import asyncpg

from shared.contracts import MAX_MESSAGE_BYTES
from shared.contracts.vocabulary import Party
from shared.platform.clock import Clock
from shared.platform.config import Settings
from shared.platform.consumer import REASON_HEADER
from shared.platform.topology import EVENTS, SUBSCRIPTIONS, Topology
from simulator.simulation import Simulation
from tests.support import broker as amqp
from tests.support.proxy import CuttableProxy
from tools.cluster import Cluster
from tools.launcher import SERVICES, ServiceProcesses

SPEED = 2 * 86400.0  # two simulated days a real second: six-month follow-ups fire in the run


@dataclass(frozen=True)
class Scale:
    referrals: int
    per_second: float
    kills: int
    cuts: int
    db_losses: int
    broker_restarts: int
    node_kills: int = 0  # on a cluster: a node killed (SIGKILL) and brought back

    @property
    def traffic_seconds(self) -> float:
        return self.referrals / self.per_second


SMALL = Scale(referrals=2000, per_second=25, kills=20, cuts=5, db_losses=2, broker_restarts=0)
FULL = Scale(referrals=10000, per_second=30, kills=40, cuts=8, db_losses=3, broker_restarts=2)
# the same traffic on a three-node cluster (tests/faults/test_cluster.py, `make faults` only)
CLUSTER = Scale(referrals=3000, per_second=25, kills=10, cuts=3, db_losses=1, broker_restarts=0, node_kills=2)


def instances() -> list[str]:
    return [name for service in SERVICES for name in (service, f"{service}-2")]


def clock_env(started_at: datetime, stops_at: datetime) -> dict[str, str]:
    return {
        "TRISAM_DEV_CLOCK_SPEED": str(SPEED),
        "TRISAM_DEV_CLOCK_STARTED_AT": started_at.isoformat(),
        "TRISAM_DEV_CLOCK_STOPS_AT": stops_at.isoformat(),
        "TRISAM_MEETING_CHECK_SECONDS": "0.5",
        "TRISAM_FOLLOWUP_CHECK_SECONDS": "0.5",
        "TRISAM_OUTBOX_POLL_SECONDS": "0.5",
        # quarters close as the clock runs: their public editions are made as they would be
        "TRISAM_METRICS_EDITION_CHECK_SECONDS": "1",
        "TRISAM_LOG_LEVEL": "INFO",
    }


# --------------------------------------------------------------------------- poison


@dataclass(frozen=True)
class Poison:
    name: str
    message_id: str
    dead_in: tuple[str, ...]  # the services whose dead-letter queue must hold it
    reason: str


async def send_poison(settings: Settings, agency, admin_url: str) -> tuple[list[Poison], list[str]]:
    """Every kind of bad message, as a careless or hostile sender would send it. Returns what
    must be dead-lettered, and the sends the broker itself refused (forged identities)."""
    ns = settings.namespace
    intake, events = f"{ns}.intake", f"{ns}.events"
    own_key = f"{agency.party.value}.SubmitReferral"
    poisons: list[Poison] = []

    async def as_agency(name, body: bytes, reason, *, user_id="self", routing_key=own_key):
        message_id = f"poison-{name}-{uuid.uuid4().hex[:8]}"
        await agency.publish(intake, routing_key, body, user_id=user_id, message_id=message_id, type="SubmitReferral")
        poisons.append(Poison(name, message_id, ("referral",), reason))

    def command(**overrides) -> bytes:
        body = amqp.envelope("SubmitReferral", {"agency_ref": "P-1"})
        body.update(overrides)
        return json.dumps(body).encode()

    await as_agency("bad_json", b"{this is not json", "bad_envelope")
    await as_agency("unknown_type", command(event_type="SubmitRefferal"), "unknown_type")
    await as_agency("unknown_version", command(version=9), "unknown_version")
    await as_agency("oversized", command(payload={"pad": "x" * (MAX_MESSAGE_BYTES + 10)}), "too_large")
    await as_agency("no_sender", command(), "sender_unknown", user_id=None)
    # a buggy service publishing an event that breaks its contract
    bad_event = amqp.envelope("CaseReferred", {"case_ref": 12345})
    await amqp.publish(admin_url, events, "CaseReferred", bad_event)
    poisons.append(
        Poison(
            "schema_violation",
            bad_event["event_id"],
            tuple(
                s
                for s, bindings in SUBSCRIPTIONS.items()
                if any(b.exchange == EVENTS and b.routing_key == "CaseReferred" for b in bindings)
            ),
            "schema_violation",
        )
    )
    # forged identities: another agency's user_id is refused by the broker itself; another
    # agency's routing key is refused by the broker where topic permissions are set (as in
    # production), and otherwise dead-lettered by the referral service
    refused = []
    try:
        await agency.publish(intake, own_key, command(), user_id="trisam-fk")
    except Exception as exc:  # PRECONDITION_FAILED closes the channel
        refused.append(f"forged_user_id: {type(exc).__name__}")
    try:
        await as_agency("other_partys_key", command(), "routing_key_mismatch", routing_key="FK.SubmitReferral")
    except Exception as exc:  # ACCESS_REFUSED
        refused.append(f"other_partys_key: {type(exc).__name__}")
    return poisons, refused


# --------------------------------------------------------------------------- faults


@dataclass
class Injector:
    processes: ServiceProcesses
    proxy: CuttableProxy
    settings: Settings
    rng: random.Random
    cluster: Cluster | None = None
    done: dict = field(default_factory=lambda: {"kill": 0, "cut": 0, "db_loss": 0, "broker_restart": 0, "node_kill": 0})
    node_kills: list[dict] = field(default_factory=list)  # what each node kill hit, for the report

    async def run(self, scale: Scale, over_seconds: float) -> None:
        plan = (
            [("kill", self.rng.uniform(3, over_seconds)) for _ in range(scale.kills)]
            + [("cut", self.rng.uniform(3, over_seconds)) for _ in range(scale.cuts)]
            + [("db_loss", self.rng.uniform(3, over_seconds)) for _ in range(scale.db_losses)]
            + [
                ("broker_restart", over_seconds * (i + 1) / (scale.broker_restarts + 1))
                for i in range(scale.broker_restarts)
            ]
            + [("node_kill", over_seconds * (i + 1) / (scale.node_kills + 1)) for i in range(scale.node_kills)]
        )
        started = time.monotonic()
        for kind, at in sorted(plan, key=lambda item: item[1]):
            await asyncio.sleep(max(0.0, at - (time.monotonic() - started)))
            await getattr(self, kind)()
            self.done[kind] += 1

    async def kill(self) -> None:
        victim = self.rng.choice(instances())
        self.processes.kill(victim)
        await asyncio.sleep(self.rng.uniform(0.2, 1.5))
        self.processes.start(victim)

    async def cut(self) -> None:
        self.proxy.cut()

    async def db_loss(self) -> None:
        conn = await asyncpg.connect(self.settings.database_url)
        try:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname LIKE $1 AND pid <> pg_backend_pid()",
                self.settings.namespace + "\\_%",
            )
        finally:
            await conn.close()

    async def broker_restart(self) -> None:
        def restart() -> None:
            for args in (["stop_app"], ["start_app"], ["await_startup"]):
                subprocess.run(["rabbitmqctl", "-q", *args], check=True, timeout=120, capture_output=True)

        await asyncio.to_thread(restart)

    async def node_kill(self) -> None:
        """Kill the cluster node that leads most of this run's quorum queues (SIGKILL: a crash),
        leave it down a few seconds while traffic goes on, start it again and wait until every
        queue of the run has its three replicas online again."""
        assert self.cluster is not None, "node kills need a cluster"
        cluster, prefix = self.cluster, self.settings.namespace + "."
        queues = await asyncio.to_thread(cluster.queues, prefix)
        led: dict[str, list[str]] = {node.name: [] for node in cluster.nodes}
        for queue in queues:
            led.setdefault(queue["leader"], []).append(queue["name"])
        most = max(len(names) for names in led.values())
        victim = cluster.node_named(self.rng.choice(sorted(n for n, names in led.items() if len(names) == most)))
        down = self.rng.uniform(3, 8)
        killed_at = time.monotonic()
        await asyncio.to_thread(cluster.kill, victim)
        await asyncio.sleep(down)
        await asyncio.to_thread(cluster.start_node, victim)
        back_at = time.monotonic()
        while True:
            queues = await asyncio.to_thread(cluster.queues, prefix)
            if all(len(q["online"]) == len(cluster.nodes) for q in queues):
                break
            if time.monotonic() - back_at > 120:
                raise AssertionError(f"replicas not back online 120 s after {victim.name} restarted: {queues}")
            await asyncio.sleep(1)
        self.node_kills.append(
            {
                "node": victim.name,
                "leader of": led[victim.name],
                "seconds down": round(back_at - killed_at, 1),
                "seconds until every replica online": round(time.monotonic() - back_at, 1),
                "new leaders": {q["name"]: q["leader"] for q in queues if q["name"] in led[victim.name]},
            }
        )


# --------------------------------------------------------------------------- at rest


async def _fetch(settings: Settings, service: str, sql: str, *args):
    conn = await asyncpg.connect(settings.service_database_url(service))
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def _val(settings: Settings, service: str, sql: str, *args):
    return (await _fetch(settings, service, sql, *args))[0][0]


async def queue_depths(settings: Settings, admin_url: str) -> dict[str, int]:
    topology = Topology.of(settings)
    parties = ("AF", "FK", "KOMMUN", "REGION")
    names = [q.name for s in SUBSCRIPTIONS for q in topology.event_queues(s)]
    names += [topology.agency_queue_name(p) for p in parties]
    names += [name for name in topology.all_queue_names() if ".intake." in name or name.endswith(".unredacted")]
    return {name: await amqp.message_count(admin_url, name) for name in names}


async def at_rest(settings: Settings, admin_url: str, *, timeout: float = 300) -> dict:
    """Wait until every queue is empty, every outbox sent and nothing changes for 3 s (nothing
    handled, nothing new to publish)."""
    deadline, calm, last = time.monotonic() + timeout, 0, None
    while time.monotonic() < deadline:
        try:
            depths = await queue_depths(settings, admin_url)
            pending = {
                s: await _val(settings, s, "SELECT count(*) FROM outbox WHERE sent_at IS NULL") for s in SERVICES
            }
            handled = {
                s: tuple(
                    (await _fetch(settings, s, "SELECT (SELECT count(*) FROM inbox), (SELECT count(*) FROM outbox)"))[0]
                )
                for s in SERVICES
            }
        except Exception:  # the broker restarting, a connection cut: look again
            await asyncio.sleep(1)
            continue
        state = (depths, pending, handled)
        quiet = not any(depths.values()) and not any(pending.values())
        calm = calm + 1 if quiet and state == last else 0
        if calm >= 3:
            return {"queues": depths, "outbox_pending": pending}
        last = state
        await asyncio.sleep(1)
    raise AssertionError(f"the system did not come to rest: queues {depths}, outboxes {pending}")


# --------------------------------------------------------------------------- ledger


async def dead_letters(settings: Settings, admin_url: str) -> dict[str, list[tuple[str, str]]]:
    """Each service's dead-letter queue: (message id, reason) of every message, left in place."""
    topology = Topology(settings.namespace)
    found: dict[str, list[tuple[str, str]]] = {}
    conn = await aio_pika.connect(admin_url)
    try:
        channel = await conn.channel()
        for service in SUBSCRIPTIONS:
            queue = await channel.get_queue(topology.dead_letter_queue_name(service), ensure=False)
            found[service] = []
            while (message := await queue.get(no_ack=False, fail=False)) is not None:
                found[service].append((message.message_id or "", str((message.headers or {}).get(REASON_HEADER))))
            await channel.close()  # unacked: back in the queue
            channel = await conn.channel()
    finally:
        await conn.close()
    return found


async def ledger(settings: Settings, simulation: Simulation) -> dict:
    """The counts, each from the place that owns it."""
    t = simulation.tally
    s = settings
    count = lambda service, sql, *a: _val(s, service, sql, *a)  # noqa: E731
    return {
        "sent": len(t.sent),
        "accepted (answered)": len(t.accepted),
        "rejected (answered)": len(t.rejected),
        "referrals in referral": await count("referral", "SELECT count(*) FROM referrals"),
        "rejections in referral": await count("referral", "SELECT count(DISTINCT agency_ref) FROM rejections"),
        "cases in meeting": await count("meeting", "SELECT count(*) FROM cases"),
        "cases in followup": await count("followup", "SELECT count(*) FROM tracked_cases"),
        "referrals counted in metrics": await count(
            "metrics", "SELECT count(*) FROM case_facts WHERE referred_on IS NOT NULL"
        ),
        "consulted (coordinators)": len(t.consulted),
        "consulted in meeting": await count("meeting", "SELECT count(*) FROM consultations WHERE outcome = 'held'"),
        "consulted counted in metrics": await count(
            "metrics", "SELECT count(*) FROM case_facts WHERE consulted_on IS NOT NULL"
        ),
        "follow-ups scheduled": await count("followup", "SELECT count(*) FROM followups"),
        "follow-ups counted in metrics": await count("metrics", "SELECT count(*) FROM followup_facts"),
        "follow-ups fired": await count("followup", "SELECT count(*) FROM followups WHERE due_sent_at IS NOT NULL"),
        "follow-ups due (agencies)": len(t.followups_due),
        "follow-ups answered (agencies)": len(t.followups_answered),
        "follow-ups recorded (agencies)": len(t.followups_recorded),
        "follow-ups recorded in followup": await count(
            "followup", "SELECT count(DISTINCT followup_id) FROM followup_records"
        ),
        "meetings cancelled by coordinators": len(t.cancelled_meetings),
    }


async def delivery_gaps(settings: Settings) -> dict[str, dict[str, int]]:
    """For every consumer and every event type it is bound to: events published (in any
    producer's outbox) but not in its inbox (lost), and the other way round."""
    published: dict[str, set] = {}
    for producer in SERVICES:
        for row in await _fetch(
            settings, producer, "SELECT event_id, routing_key FROM outbox WHERE exchange = $1", EVENTS
        ):
            published.setdefault(row["routing_key"], set()).add(row["event_id"])
    gaps = {}
    for consumer, bindings in SUBSCRIPTIONS.items():
        for binding in bindings:
            if binding.exchange != EVENTS:
                continue
            received = {
                r["event_id"]
                for r in await _fetch(
                    settings,
                    consumer,
                    "SELECT event_id FROM inbox WHERE consumer = $1 AND event_type = $2",
                    consumer,
                    binding.routing_key,
                )
            }
            sent = published.get(binding.routing_key, set())
            if sent - received or received - sent:
                gaps[f"{consumer} <- {binding.routing_key}"] = {
                    "lost": len(sent - received),
                    "unknown": len(received - sent),
                }
    return gaps


async def case_order(settings: Settings) -> dict[str, int]:
    """Every case's events applied in their order by every service: each consumer's lines
    (``inbox_sequence``) stand at the last number their producer gave (``outbox_sequence``), and
    no number was ever passed over after the hold (``skipped``)."""
    given = {}
    for producer in SERVICES:
        for r in await _fetch(settings, producer, "SELECT ordering_key, consumer, last_seq FROM outbox_sequence"):
            given[(r["consumer"], producer, r["ordering_key"])] = r["last_seq"]
    applied, skipped = {}, 0
    for consumer in SUBSCRIPTIONS:
        for r in await _fetch(
            settings, consumer, "SELECT producer, ordering_key, last_seq, skipped FROM inbox_sequence"
        ):
            applied[(consumer, r["producer"], r["ordering_key"])] = r["last_seq"]
            skipped += r["skipped"]
    return {
        "lines": len(given),
        "lines not at their last number": sum(1 for line, last in given.items() if applied.get(line) != last),
        "lines unknown to their producer": len(applied.keys() - given.keys()),
        "numbers skipped": skipped,
    }


async def duplicated_effects(settings: Settings, simulation: Simulation) -> dict[str, int]:
    """Effects that must happen once, counted where they would show twice."""
    dupes = {}
    once_per_case = ("CaseReferred", "CaseScheduled", "ConsultationHeld", "CaseNotConsulted", "CaseClosed")
    for service in SERVICES:
        for row in await _fetch(
            settings,
            service,
            """
                SELECT event_type, count(*) - count(DISTINCT ordering_key) AS extra FROM outbox
                WHERE event_type = ANY($1::text[]) AND event_type <> 'CaseScheduled'
                GROUP BY event_type""",
            list(once_per_case),
        ):
            if row["extra"]:
                dupes[f"{service}: {row['event_type']} twice for a case"] = row["extra"]
        for row in await _fetch(
            settings,
            service,
            """
                SELECT event_type, count(*) - count(DISTINCT ordering_key || body::text) AS extra
                FROM outbox WHERE event_type IN ('FollowUpDue') GROUP BY event_type""",
        ):
            if row["extra"]:
                dupes[f"{service}: {row['event_type']} twice"] = row["extra"]
    due_events = await _val(settings, "followup", "SELECT count(*) FROM outbox WHERE event_type = 'FollowUpDue'")
    fired = await _val(settings, "followup", "SELECT count(*) FROM followups WHERE due_sent_at IS NOT NULL")
    if due_events != fired:
        dupes["FollowUpDue events vs follow-ups fired"] = due_events - fired
    extra_due = sum(len(ids) - 1 for ids in simulation.tally.due_events.values() if len(ids) > 1)
    if extra_due:
        dupes["FollowUpDue received twice with different ids"] = extra_due
    overbooked = await _val(
        settings,
        "meeting",
        """
        SELECT count(*) FROM meetings m
        WHERE (SELECT count(*) FROM cases c WHERE c.meeting_id = m.meeting_id) > m.capacity""",
    )
    if overbooked:
        dupes["meetings booked over capacity"] = overbooked
    for service, sql in (
        ("referral", "SELECT count(*) - count(DISTINCT (referring_party, agency_ref)) FROM referrals"),
        ("metrics", "SELECT count(*) - count(DISTINCT event_id) FROM event_log"),
    ):
        if extra := await _val(settings, service, sql):
            dupes[f"{service}: {sql}"] = extra
    return dupes


# --------------------------------------------------------------------------- replay


async def cells_disagreeing_with_the_facts(settings: Settings) -> dict[str, int]:
    """The metrics service keeps the cells its figures are summed from up to date event by
    event (the difference of each case's and meeting's cells before and after). At rest they
    must equal the cells worked out afresh from the facts: returns every cell that differs."""
    from collections import Counter

    from services.metrics import rebuild as metrics_rebuild

    conn = await asyncpg.connect(settings.service_database_url("metrics"))
    try:
        expected = await metrics_rebuild.cells_of_facts(conn)
        stored = Counter(
            {
                (
                    r["measure"],
                    r["detail"],
                    r["day"],
                    r["team_id"],
                    r["municipality"],
                    r["referring_party"],
                    r["gender"],
                    r["age_band"],
                    r["income"],
                ): r["n"]
                for r in await conn.fetch("SELECT * FROM figure_cells")
            }
        )
    finally:
        await conn.close()
    return {
        str(k): stored.get(k, 0) - expected.get(k, 0)
        for k in set(stored) | set(expected)
        if stored.get(k, 0) != expected.get(k, 0)
    }


async def state_digest(settings: Settings) -> dict[str, tuple[int, str]]:
    """Every table of every service: its row count and a digest of its rows."""
    digest = {}
    for service in SERVICES:
        tables = [
            r["tablename"]
            for r in await _fetch(settings, service, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ]
        for table in sorted(tables):
            row = (
                await _fetch(
                    settings,
                    service,
                    f"""
                SELECT count(*), md5(coalesce(string_agg(md5(t::text), '' ORDER BY md5(t::text)), ''))
                FROM "{table}" t""",
                )
            )[0]
            digest[f"{service}.{table}"] = (row[0], row[1])
    return digest


async def replay_every_event(settings: Settings, admin_url: str) -> int:
    """Publish every event every service ever published once more, exactly as it was."""
    ns, replayed = settings.namespace, 0
    conn = await aio_pika.connect(admin_url)
    try:
        channel = await conn.channel(publisher_confirms=True)
        events = await channel.get_exchange(f"{ns}.{EVENTS}", ensure=False)
        for service in SERVICES:
            rows = await _fetch(
                settings,
                service,
                "SELECT event_id, event_type, routing_key, "
                "ordering_key, body FROM outbox WHERE exchange = $1 "
                "ORDER BY id",
                EVENTS,
            )
            for start in range(0, len(rows), 200):
                await asyncio.gather(
                    *(
                        events.publish(
                            aio_pika.Message(
                                bytes(r["body"]),
                                message_id=str(r["event_id"]),
                                type=r["event_type"],
                                content_type="application/json",
                                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                                headers={"x-trisam-ordering-key": r["ordering_key"]},
                            ),
                            routing_key=r["routing_key"],
                        )
                        for r in rows[start : start + 200]
                    )
                )
            replayed += len(rows)
    finally:
        await conn.close()
    return replayed


# --------------------------------------------------------------------------- the run


async def fault_run(
    settings: Settings,
    agencies: dict,
    admin_url: str,
    scale: Scale,
    rng: random.Random,
    *,
    proxy: CuttableProxy,
    artifact: str,
    cluster: Cluster | None = None,
) -> dict:
    """The whole run: two instances of every service (through ``proxy``, which the injector
    cuts), the simulator's traffic while the faults happen, poison, then at rest the ledger, the
    replay, and the report (printed, and written to test-artifacts/``artifact``). ``admin_url``:
    the test's own view of the broker (queue depths, dead letters, the replay)."""
    from simulator.cli import county_teams
    from tests.support.system import ARTIFACTS, free_port

    # TRISAM_FAULTS_PARTITIONS > 1: every service's events through partition queues, one
    # instance consuming each at a time (the broker needs the consistent-hash exchange plugin)
    settings = settings.model_copy(update={"partitions": int(os.environ.get("TRISAM_FAULTS_PARTITIONS", "1"))})
    services = settings.model_copy(update={"amqp_url": proxy.url_for(settings.amqp_url)})

    # the platform's clock: fast from now, stopping after the traffic and faults, so that the
    # run comes to rest with every follow-up that was due fired
    started = datetime.now(UTC)
    run_seconds = scale.traffic_seconds + 45
    stops = started + timedelta(seconds=run_seconds * SPEED)
    clock = Clock(speed=SPEED, started_at=started, stops_at=stops)
    names = instances()
    processes = ServiceProcesses(
        services,
        ports={name: free_port() for name in names},
        services=names,
        log_dir=ARTIFACTS / settings.namespace,
        extra_env={**clock_env(started, stops), "TRISAM_PARTITIONS": str(settings.partitions)},
    )
    processes.start_all()
    simulation = Simulation(
        settings,
        agencies={p: (a.amqp_url, a.user) for p, a in agencies.items()},
        meeting_urls=[processes.url("meeting"), processes.url("meeting-2")],
        teams=county_teams(),
        seed=rng.randrange(2**32),
        clock=clock,
    )
    injector = Injector(processes, proxy, settings, rng, cluster=cluster)
    report: dict = {"scale": scale.__dict__}
    try:
        await processes.wait_ready(timeout=120)
        await simulation.start()
        faults = asyncio.create_task(injector.run(scale, scale.traffic_seconds))
        traffic = asyncio.create_task(simulation.refer(scale.referrals, per_second=scale.per_second))
        await asyncio.sleep(scale.traffic_seconds * 0.4)
        poisons, refused = await send_poison(settings, agencies[Party.AF], admin_url)
        await asyncio.gather(traffic, faults)

        # every process back, the clock run out, the coordinators done: then at rest
        for name in names:
            if processes.procs[name].poll() is not None:
                processes.start(name)
        await processes.wait_ready(timeout=120)
        await asyncio.sleep(max(0.0, (stops - clock.now()).total_seconds() / SPEED) + 5)
        await simulation.stop_coordinating()
        report["at rest"] = await at_rest(settings, admin_url)
        await simulation.stop()

        report["faults"] = injector.done
        if cluster is not None:
            report["node kills"] = injector.node_kills
        report["ledger"] = await ledger(settings, simulation)
        report["lost deliveries"] = await delivery_gaps(settings)
        report["duplicated effects"] = await duplicated_effects(settings, simulation)
        report["case order"] = await case_order(settings)
        report["dead letters"] = await dead_letters(settings, admin_url)
        report["poison"] = [p.__dict__ for p in poisons]
        report["refused by the broker"] = refused

        # the figures' cells, kept up to date event by event, equal those worked out afresh
        report["metrics cells that differ from the facts"] = await cells_disagreeing_with_the_facts(settings)
        # replay: every event once more changes nothing
        before = await state_digest(settings)
        report["replayed events"] = await replay_every_event(settings, admin_url)
        await at_rest(settings, admin_url)
        after = await state_digest(settings)
        report["changed by the replay"] = sorted(t for t in before if before[t] != after.get(t))
    finally:
        await simulation.stop()
        processes.stop_all()
        if settings.partitions > 1:  # (the namespace's clean-up knows only the plain queues)
            topology = Topology.of(settings)
            await amqp.delete_topology(admin_url, topology.all_queue_names(), topology.all_exchange_names())
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / artifact).write_text(json.dumps(report, indent=2, default=str) + "\n")
    print("\n" + json.dumps(report, indent=2, default=str))
    return report


def assert_balanced(report: dict, scale: Scale) -> None:
    """The faults happened, and the ledger balances: nothing lost, nothing applied twice."""
    done, ledger, refused = report["faults"], report["ledger"], report["refused by the broker"]
    # the faults really happened
    assert done["kill"] >= scale.kills and done["cut"] >= scale.cuts
    assert done["db_loss"] >= scale.db_losses
    assert done["broker_restart"] >= scale.broker_restarts
    assert done["node_kill"] >= scale.node_kills
    assert refused[0].startswith("forged_user_id"), f"a forged user_id must be refused: {refused}"
    # every referral answered, exactly once in every service
    assert ledger["sent"] == scale.referrals
    assert ledger["accepted (answered)"] + ledger["rejected (answered)"] == ledger["sent"], "lost referrals"
    assert ledger["rejected (answered)"] > 0 and ledger["accepted (answered)"] > scale.referrals * 0.9
    accepted = ledger["accepted (answered)"]
    for place in ("referrals in referral", "cases in meeting", "cases in followup", "referrals counted in metrics"):
        assert ledger[place] == accepted, place
    assert ledger["rejections in referral"] == ledger["rejected (answered)"]
    # consultations and follow-ups
    assert ledger["consulted (coordinators)"] > 0
    assert (
        ledger["consulted in meeting"] == ledger["consulted (coordinators)"] == ledger["consulted counted in metrics"]
    )
    assert ledger["follow-ups scheduled"] == 2 * ledger["consulted in meeting"]  # plan check, six months
    assert ledger["follow-ups counted in metrics"] == ledger["follow-ups scheduled"]
    assert ledger["follow-ups fired"] > 0
    assert ledger["follow-ups due (agencies)"] == ledger["follow-ups fired"]
    assert (
        ledger["follow-ups recorded (agencies)"]
        == ledger["follow-ups answered (agencies)"]
        == ledger["follow-ups recorded in followup"]
    )
    # nothing lost between services, nothing applied twice
    assert report["lost deliveries"] == {}, report["lost deliveries"]
    assert report["duplicated effects"] == {}, report["duplicated effects"]
    # every case's events applied in their order everywhere, none passed over
    order = report["case order"]
    assert order["lines"] > accepted, order
    assert order["lines not at their last number"] == order["lines unknown to their producer"] == 0, order
    assert order["numbers skipped"] == 0, order
    # the dead-letter queues hold exactly the poison, each with its reason
    expected = sorted((service, p["message_id"], p["reason"]) for p in report["poison"] for service in p["dead_in"])
    found = sorted((service, mid, reason) for service, items in report["dead letters"].items() for mid, reason in items)
    assert found == expected
    # at rest: queues drained, outboxes empty; and the replay changed nothing
    assert not any(report["at rest"]["queues"].values())
    assert not any(report["at rest"]["outbox_pending"].values())
    assert report["replayed events"] > accepted
    assert report["changed by the replay"] == [], f"replaying every event changed {report['changed by the replay']}"
    cells = report["metrics cells that differ from the facts"]
    assert cells == {}, cells
