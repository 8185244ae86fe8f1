"""`make bench`: the platform's figures on the real broker and database, in one run, against a
baseline measured in the same run. Prints a table and writes bench/results.json.

- baseline: plain aio-pika, persistent, confirmed publish and consume+ack at the same time;
- end to end: referrals submitted over AMQP (as an agency) until every one is accepted, on a
  team's queue in the meeting service and visible in the metrics service (four processes);
- latency at a fixed 100 referrals/s: submission to visible in metrics, p50 and p99;
- metrics API p95 with 1,000,000 cases in its projections;
- follow-up scheduler tick with 1,000,000 pending follow-ups;
- projection rebuild rate (events/s);
- peak resident memory of each service process.

Each figure is printed with its target (issue 7); none is a test. Uses its own namespace and
databases (``bench_<random>``) and removes them at the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

import aio_pika
import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# the benchmark starts its own services on this machine's servers: development (loopback), unless
# TRISAM_ENV says otherwise (the services default to production)
os.environ.setdefault("TRISAM_ENV", "dev")

from bench import followup_scheduler  # noqa: E402
from shared.platform.config import Settings  # noqa: E402
from tests.support.identities import random_adult  # noqa: E402  (generated test identities)
from tools.launcher import SERVICES, ServiceProcesses  # noqa: E402
from tools.launcher import drop_namespace as drop  # noqa: E402

OUT = Path(__file__).resolve().parent / "results.json"
# the services as measured: their defaults (group commit on), quiet logs, and no public editions
# during the run
BENCH_ENV = {"TRISAM_LOG_LEVEL": "WARNING", "TRISAM_METRICS_EDITION_GRACE_DAYS": "100000"}
# referrals spread over the county's teams, as they are in life
TEAMS = [t["team_id"] for t in json.loads((ROOT / "deploy" / "teams.json").read_text())["teams"]]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def baseline(amqp_url: str, n: int = 20_000) -> float:
    """Plain aio-pika: persistent publishes with confirms and a consumer acking, at once."""
    conn = await aio_pika.connect(amqp_url)
    try:
        channel = await conn.channel(publisher_confirms=True)
        consume_channel = await conn.channel()
        await consume_channel.set_qos(prefetch_count=200)
        name = f"bench_baseline_{secrets.token_hex(3)}"
        queue = await consume_channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
        done, received = asyncio.Event(), 0

        async def on_message(message):
            nonlocal received
            await message.ack()
            received += 1
            if received >= n:
                done.set()

        await queue.consume(on_message)
        body = b"x" * 600
        started = time.perf_counter()
        for start in range(0, n, 500):
            await asyncio.gather(
                *(
                    channel.default_exchange.publish(
                        aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=name
                    )
                    for _ in range(start, min(n, start + 500))
                )
            )
        await asyncio.wait_for(done.wait(), 300)
        elapsed = time.perf_counter() - started
        await queue.delete(if_unused=False, if_empty=False)
        return n / elapsed
    finally:
        await conn.close()


def referral(rng: random.Random, agency_ref: str, used: set[str], i: int = 0) -> dict:
    while (pnr := random_adult(rng)) in used:
        pass
    used.add(pnr)
    event_id = str(uuid.uuid4())
    return {
        "event_id": event_id,
        "event_type": "SubmitReferral",
        "version": 1,
        "occurred_at": datetime.now(UTC).isoformat(),
        "producer": "bench",
        "correlation_id": event_id,
        "payload": {
            "agency_ref": agency_ref,
            "personnummer": pnr,
            "team_id": TEAMS[i % len(TEAMS)],
            "question": "Vilket stöd behövs?",
            "officer_id": "bench",
            "consents": [
                {"party": p, "given_on": "2026-11-02", "form_ref": "F"} for p in ("AF", "FK", "KOMMUN", "REGION")
            ],
            "income_source": "SJUKPENNING",
        },
    }


class Agency:
    """Publishes SubmitReferral as the AF agency's broker user (here: guest, mapped to AF)."""

    def __init__(self, amqp_url: str, namespace: str):
        self.amqp_url, self.namespace = amqp_url, namespace

    async def __aenter__(self):
        self.conn = await aio_pika.connect(self.amqp_url)
        channel = await self.conn.channel(publisher_confirms=True)
        self.exchange = await channel.get_exchange(f"{self.namespace}.intake")
        return self

    async def __aexit__(self, *exc):
        await self.conn.close()

    async def send(self, command: dict) -> None:
        await self.exchange.publish(
            aio_pika.Message(
                json.dumps(command).encode(),
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=command["event_id"],
                type="SubmitReferral",
                content_type="application/json",
                user_id="guest",
            ),
            routing_key="AF.SubmitReferral",
        )


async def count(url: str, sql: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


async def work_done(urls: dict[str, str]) -> dict[str, float]:
    """The work the services have done so far, counted, not timed: PostgreSQL round trips and
    commits (counted on their pooled connections) and events published, summed over services,
    and the round trips of each service (``round_trips.<service>``)."""
    totals = {"round_trips": 0.0, "commits": 0.0, "published": 0.0}
    names = {"trisam_db_round_trips": "round_trips", "trisam_db_commits": "commits"}
    async with httpx.AsyncClient(timeout=10) as client:
        for service, url in urls.items():
            totals[f"round_trips.{service}"] = 0.0
            for line in (await client.get(f"{url}/metrics")).text.splitlines():
                name, _, value = line.rpartition(" ")
                if name in names:
                    totals[names[name]] += float(value)
                    if name == "trisam_db_round_trips":
                        totals[f"round_trips.{service}"] += float(value)
                elif name.startswith("trisam_events_published_total{"):
                    totals["published"] += float(value)
    return totals


async def at_rest(settings: Settings, n: int, started: float) -> None:
    """Until every service holds the n cases and every outbox is empty."""
    tables = {"metrics": "case_facts WHERE referred_on IS NOT NULL", "meeting": "cases", "followup": "tracked_cases"}
    while True:
        counts = {
            s: await count(settings.service_database_url(s), f"SELECT count(*) FROM {t}") for s, t in tables.items()
        }
        pending = 0
        for service in SERVICES:
            pending += await count(
                settings.service_database_url(service), "SELECT count(*) FROM outbox WHERE sent_at IS NULL"
            )
        if min(counts.values()) >= n and pending == 0:
            return
        if time.perf_counter() - started > 600:
            raise RuntimeError(f"after 600 s: {counts} of {n} cases, {pending} events still in outboxes")
        await asyncio.sleep(0.2)


async def end_to_end(settings: Settings, n: int, urls: dict[str, str] | None = None) -> dict:
    rng, used = random.Random(7), set()
    commands = [referral(rng, f"B-{i}", used, i) for i in range(n)]
    before = await work_done(urls) if urls else None
    started = time.perf_counter()
    async with Agency(settings.amqp_url, settings.namespace) as agency:
        for start in range(0, n, 200):
            await asyncio.gather(*(agency.send(c) for c in commands[start : start + 200]))
    await at_rest(settings, n, started)
    result: dict = {"referrals": n, "seconds": time.perf_counter() - started}
    if urls and before is not None:
        after = await work_done(urls)
        result["per_referral"] = {k: (after[k] - before[k]) / n for k in after}
    return result


async def latency(settings: Settings, rate: int = 100, seconds: int = 15) -> dict:
    rng, used = random.Random(8), set()
    sent: dict[str, float] = {}
    metrics_db = settings.service_database_url("metrics")
    before = await count(metrics_db, "SELECT count(*) FROM event_log WHERE event_type = 'CaseReferred'")
    async with Agency(settings.amqp_url, settings.namespace) as agency:
        t0 = time.time()
        for i in range(rate * seconds):
            due = t0 + i / rate
            if (wait := due - time.time()) > 0:
                await asyncio.sleep(wait)
            ref = f"L-{i}"
            command = referral(rng, ref, used, i)
            sent[ref] = time.time()
            await agency.send(command)
    referral_db = settings.service_database_url("referral")
    deadline = time.time() + 180
    while (
        await count(metrics_db, "SELECT count(*) FROM event_log WHERE event_type = 'CaseReferred'") < before + len(sent)
        and time.time() < deadline
    ):
        await asyncio.sleep(0.2)
    conn = await asyncpg.connect(referral_db)
    try:
        refs = {
            r["case_ref"]: r["agency_ref"]
            for r in await conn.fetch("SELECT case_ref, agency_ref FROM referrals WHERE agency_ref LIKE 'L-%'")
        }
    finally:
        await conn.close()
    conn = await asyncpg.connect(metrics_db)
    try:
        rows = await conn.fetch(
            "SELECT payload->>'case_ref' AS case_ref, received_at FROM event_log WHERE event_type = 'CaseReferred'"
        )
    finally:
        await conn.close()
    values = sorted(
        (r["received_at"].timestamp() - sent[refs[r["case_ref"]]]) * 1000 for r in rows if r["case_ref"] in refs
    )
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "sent": len(sent),
        "p50_ms": statistics.median(values),
        "p99_ms": values[min(len(values) - 1, int(len(values) * 0.99))],
    }


async def metrics_api_p95(settings: Settings, url: str, cases: int = 1_000_000) -> dict:
    """The board's exact quarterly figures over HTTP with ``cases`` cases in the service's
    database: facts written directly, their cells worked out by the service's own rebuild (in
    one transaction, so the running service never sees them half-built)."""
    from services.metrics import rebuild
    from shared.platform.auth import mint_token, signing_key

    conn = await asyncpg.connect(settings.service_database_url("metrics"))
    try:
        async with conn.transaction():
            await conn.execute(f"""
                INSERT INTO case_facts (case_ref, team_id, municipality, referring_party, gender, age_band,
                                        income_at_referral, violence_question_asked, referred_at, referred_on,
                                        consulted_on)
                SELECT 'M' || g, 'T' || (g % 40), 'K' || (g % 10), (ARRAY['AF','FK','KOMMUN','REGION'])[1 + g % 4],
                       (ARRAY['MAN','WOMAN'])[1 + g % 2], '25-34', 'SJUKPENNING', g % 3 = 0,
                       TIMESTAMPTZ '2022-01-01' + make_interval(mins => g * 2),
                       DATE '2022-01-01' + (g * 2 / 1440), DATE '2022-01-01' + (g * 2 / 1440) + 30
                FROM generate_series(1, {cases}) g""")
            started = time.perf_counter()
            await rebuild.rebuild_cells(conn)
            cells_seconds = time.perf_counter() - started
        await conn.execute("ANALYZE figure_cells")
        cells = await conn.fetchval("SELECT count(*) FROM figure_cells")
    finally:
        await conn.close()
    board = {"Authorization": "Bearer " + mint_token(signing_key(settings), user_id="bench", party=None, role="board")}
    times = []
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for i in range(40):
            period = f"{2022 + i % 4}Q{1 + (i // 4) % 4}"
            started = time.perf_counter()
            answer = await client.get("/api/v1/figures", params={"period": period}, headers=board)
            times.append((time.perf_counter() - started) * 1000)
            answer.raise_for_status()
    times.sort()
    return {
        "cases": cases,
        "cells": cells,
        "cells_seconds": round(cells_seconds, 1),
        "requests": len(times),
        "p50_ms": statistics.median(times),
        "p95_ms": times[int(len(times) * 0.95) - 1],
    }


async def rebuild_rate(settings: Settings, cases: int) -> dict:
    """The set-based rebuild of the running metrics service's projections, from its event log
    with a generated history of ``cases`` cases added (``tests/support/metrics_history``: about
    7 events a case, corrections, cancellations and closures among them). The history is
    written straight into the event log with COPY, not made by the services (33,000 referrals at
    about 100/s, and months of simulated time for their meetings and follow-ups); the rebuild
    then reads the whole log, the run's own events included, and swaps its tables in under the
    running service."""
    from services.metrics import projections, rebuild
    from tests.support.metrics_history import history

    events = history(11, cases, teams=len(TEAMS))
    now = datetime.now(UTC)
    rows = [(uuid.uuid4(), e.name, e.version, now, json.dumps(e.model_dump(mode="json"))) for e in events]
    del events
    pool = await asyncpg.create_pool(settings.service_database_url("metrics"), min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            await conn.copy_records_to_table(
                "event_log", columns=["event_id", "event_type", "version", "occurred_at", "payload"], records=rows
            )
            await conn.execute("ANALYZE event_log")
            logged = await conn.fetchval("SELECT count(*) FROM event_log")
            projected = await conn.fetchval(
                "SELECT count(*) FROM event_log WHERE event_type = ANY($1)", [c.name for c in projections.PROJECTIONS]
            )
        started, cpu = time.perf_counter(), time.process_time()
        rebuilt = await rebuild.rebuild(pool)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        async with pool.acquire() as conn:
            cells = await conn.fetchval("SELECT count(*) FROM figure_cells")
    finally:
        await pool.close()
    return {
        "generated": len(rows),
        "logged": logged,
        "events": rebuilt.events,  # of the projected contracts: what the rate counts
        "projected_in_log": projected,
        "applied_after": rebuilt.applied_after,
        "cells": cells,
        "seconds": elapsed,
        "python_cpu_seconds": cpu,
        "events_per_s": rebuilt.events / elapsed if elapsed else 0,
        "load_average_1m": os.getloadavg()[0],
    }


def peak_memory_mb(processes: ServiceProcesses) -> dict:
    result = {}
    for name, proc in processes.procs.items():
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text()
            kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM"))
            result[name] = kb / 1024
        except (OSError, StopIteration):
            result[name] = None
    return result


# The sizes of a full run, and of the quick run `make test` makes (seconds, no targets checked:
# it only shows that the benchmark still runs; its figures mean nothing).
FULL = {
    "baseline": 20_000,
    "referrals": 2000,
    "rate": 100,
    "seconds": 15,
    "api_cases": 1_000_000,
    "pending": (1_000, 1_000_000),
    "rebuild_cases": 33_000,  # about 205,000 events of the projected contracts (240,000 logged)
}
QUICK = {
    "baseline": 500,
    "referrals": 40,
    "rate": 20,
    "seconds": 2,
    "api_cases": 2_000,
    "pending": (100, 1_000),
    "rebuild_cases": 100,
}


async def main(quick: bool = False) -> dict:
    size = QUICK if quick else FULL
    out = OUT.with_name("results-quick.json") if quick else OUT
    base = Settings()
    settings = base.model_copy(update={"namespace": f"bench_{secrets.token_hex(3)}", "agency_users": {"guest": "AF"}})
    results: dict = {"measured_at": datetime.now(UTC).isoformat(), "quick": quick}
    print("baseline (plain aio-pika) ...", flush=True)
    results["baseline_msgs_per_s"] = await baseline(settings.amqp_url, size["baseline"])
    ports = {name: free_port() for name in SERVICES}
    processes = ServiceProcesses(
        settings, ports=ports, log_dir=ROOT / "bench" / "logs" / settings.namespace, extra_env=BENCH_ENV
    )
    processes.start_all()
    try:
        await processes.wait_ready(timeout=120)
        print("end to end ...", flush=True)
        e2e = await end_to_end(settings, size["referrals"], {name: processes.url(name) for name in SERVICES})
        results["end_to_end"] = {**e2e, "referrals_per_s": e2e["referrals"] / e2e["seconds"]}
        print(f"latency at {size['rate']}/s ...", flush=True)
        results["latency_at_100_per_s"] = await latency(settings, size["rate"], size["seconds"])
        print(f"metrics API with {size['api_cases']:,} cases ...", flush=True)
        results["metrics_api"] = await metrics_api_p95(settings, processes.url("metrics"), size["api_cases"])
        # after the API's figures: the generated history's cells would weigh on them (its 33,000
        # cases have more cells than the API's million); the rebuild drops the API's cases (facts
        # written without events)
        print(f"rebuild, {size['rebuild_cases']:,} generated cases written straight into the event log ...", flush=True)
        results["rebuild"] = await rebuild_rate(settings, size["rebuild_cases"])
        if not quick and results["rebuild"]["events"] < 200_000:
            raise RuntimeError(f"the rebuild is measured over at least 200,000 events: {results['rebuild']}")
        results["peak_memory_mb"] = peak_memory_mb(processes)
    finally:
        processes.stop_all()
        await drop(settings)
    print("end to end with two instances of every service ...", flush=True)
    results["end_to_end_two_instances"] = await two_instances(base, size["referrals"])
    print("end to end with two instances of every service, 4 partition queues each ...", flush=True)
    results["end_to_end_two_instances_partitioned"] = await two_instances_partitioned(base, size["referrals"])
    print(f"follow-up tick with {size['pending'][-1]:,} pending ...", flush=True)
    followup_scheduler.PENDING = size["pending"]
    results["followup_tick"] = await followup_scheduler.run()
    report(results)
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"written to {out}")
    return results


async def two_instances_partitioned(base: Settings, referrals: int) -> dict:
    """Two instances of every service with 4 partition queues each (a case's events in one
    queue, one instance consuming it at a time); needs RabbitMQ's consistent-hash exchange,
    enabled here where the broker is this machine's."""
    try:
        if shutil.which("rabbitmq-plugins") and urlparse(base.amqp_url).hostname in ("127.0.0.1", "localhost"):
            subprocess.run(
                ["rabbitmq-plugins", "enable", "rabbitmq_consistent_hash_exchange"],
                check=True,
                capture_output=True,
                timeout=120,
            )
        return await two_instances(base, referrals, partitions=4)
    except Exception as exc:  # (say why, and go on with the other figures)
        return {"not_measured": f"{type(exc).__name__}: {str(exc)[:200]}"}


async def two_instances(base: Settings, referrals: int, partitions: int = 1) -> dict:
    """The same end-to-end run with eight processes: does throughput hold when scaled out?"""
    settings = base.model_copy(
        update={"namespace": f"bench_{secrets.token_hex(3)}", "agency_users": {"guest": "AF"}, "partitions": partitions}
    )
    names = [name for service in SERVICES for name in (service, f"{service}-2")]
    processes = ServiceProcesses(
        settings,
        ports={name: free_port() for name in names},
        services=names,
        log_dir=ROOT / "bench" / "logs" / settings.namespace,
        extra_env={**BENCH_ENV, "TRISAM_PARTITIONS": str(partitions)},
    )
    processes.start_all()
    try:
        await processes.wait_ready(timeout=120)
        e2e = await end_to_end(settings, referrals)
    finally:
        processes.stop_all()
        await drop(settings)
    return {**e2e, "referrals_per_s": e2e["referrals"] / e2e["seconds"]}


def partitioned_row(two: dict, one_per_s: float) -> tuple[str, str, str, str]:
    label = "  two instances, 4 partition queues each"
    if "referrals_per_s" not in two:
        return (label, "not measured", "holds or rises", two.get("not_measured", ""))
    rate = two["referrals_per_s"]
    return (label, f"{rate:.0f} /s", "holds or rises", "met" if rate >= 0.9 * one_per_s else "NOT MET")


def per_referral_rows(work: dict) -> list[tuple[str, str, str, str]]:
    """The work of one referral, counted (round trips and commits on the services' pooled
    connections, background loops included; events published by their relays)."""
    if not work:
        return []
    trips, commits, published = work["round_trips"], work["commits"], work["published"]
    return [
        ("  PostgreSQL round trips per referral", f"{trips:.1f}", "<= 12", "met" if trips <= 12 else "NOT MET"),
        ("  commits per referral", f"{commits:.2f}", "<= 2", "met" if commits <= 2 else "NOT MET"),
        ("  events published per referral", f"{published:.2f}", "", ""),
        *(
            (f"    round trips in {key.partition('.')[2]}", f"{value:.1f}", "", "")
            for key, value in work.items()
            if key.startswith("round_trips.")
        ),
    ]


def report(r: dict) -> None:
    e2e, lat, api = r["end_to_end"], r["latency_at_100_per_s"], r["metrics_api"]
    tick = r["followup_tick"]
    ratio = e2e["referrals_per_s"] / r["baseline_msgs_per_s"]
    rows = [
        ("baseline: plain aio-pika publish+consume", f"{r['baseline_msgs_per_s']:.0f} msg/s", "(reference)", ""),
        ("end to end: referrals/s", f"{e2e['referrals_per_s']:.0f} /s", "", ""),
        ("  ratio to the baseline", f"{ratio:.3f}", ">= 0.10", "met" if ratio >= 0.10 else "NOT MET"),
        (
            "  two instances of every service",
            f"{r['end_to_end_two_instances']['referrals_per_s']:.0f} /s",
            "holds or rises",
            "met" if r["end_to_end_two_instances"]["referrals_per_s"] >= 0.9 * e2e["referrals_per_s"] else "NOT MET",
        ),
        partitioned_row(r.get("end_to_end_two_instances_partitioned", {}), e2e["referrals_per_s"]),
        *per_referral_rows(e2e.get("per_referral", {})),
        ("latency at 100/s, p50", f"{lat.get('p50_ms', float('nan')):.1f} ms", "", ""),
        (
            "latency at 100/s, p99",
            f"{lat.get('p99_ms', float('nan')):.1f} ms",
            "<= 50 ms",
            "met" if lat.get("p99_ms", 1e9) <= 50 else "NOT MET",
        ),
        (
            "metrics API p95, exact quarter, 1,000,000 cases",
            f"{api['p95_ms']:.0f} ms",
            "<= 50 ms",
            "met" if api["p95_ms"] <= 50 else "NOT MET",
        ),
        ("  their cells worked out afresh (rebuild)", f"{api['cells_seconds']:.0f} s, {api['cells']} cells", "", ""),
        (
            "follow-up tick, 1,000,000 pending",
            f"{tick['results'][-1]['tick_ms_median']:.0f} ms (x{tick['ratio']:.2f} of 1,000 pending)",
            "flat",
            "met" if tick["ratio"] < 1.5 else "NOT MET",
        ),
        (
            f"projection rebuild, set-based, {r['rebuild']['events']:,} events",
            f"{r['rebuild']['events_per_s']:,.0f} events/s",
            ">= 50,000",
            "met" if r["rebuild"]["events_per_s"] >= 50_000 else "NOT MET",
        ),
    ]
    rows.append(
        (
            "  (a generated history COPYed into the log)",
            f"{r['rebuild']['seconds']:.1f} s, load {r['rebuild']['load_average_1m']:.1f}",
            "",
            "",
        )
    )
    for name, mb in r["peak_memory_mb"].items():
        rows.append(
            (
                f"peak memory, {name}",
                f"{mb:.0f} MB" if mb else "?",
                "<= 200 MB",
                "met" if mb and mb <= 200 else "NOT MET",
            )
        )
    width = max(len(row[0]) for row in rows)
    print(f"\n{'figure':<{width}}  {'measured':>28}  {'target':>10}  ")
    for name, measured, target, verdict in rows:
        print(f"{name:<{width}}  {measured:>28}  {target:>10}  {verdict}")


async def work_of_one_referral(n: int) -> dict:
    """Only the end-to-end step, for its counted work per referral (``--work N``: N referrals):
    the quick way to see what a change to the services' statements saves."""
    settings = Settings().model_copy(
        update={"namespace": f"bench_{secrets.token_hex(3)}", "agency_users": {"guest": "AF"}}
    )
    processes = ServiceProcesses(
        settings,
        ports={name: free_port() for name in SERVICES},
        log_dir=ROOT / "bench" / "logs" / settings.namespace,
        extra_env=BENCH_ENV,
    )
    processes.start_all()
    try:
        await processes.wait_ready(timeout=120)
        e2e = await end_to_end(settings, n, {name: processes.url(name) for name in SERVICES})
    finally:
        processes.stop_all()
        await drop(settings)
    print(f"{n} referrals in {e2e['seconds']:.1f} s ({n / e2e['seconds']:.0f} /s)")
    for name, measured, target, verdict in per_referral_rows(e2e["per_referral"]):
        print(f"{name:<40} {measured:>8} {target:>6} {verdict}")
    return e2e


if __name__ == "__main__":
    if "--work" in sys.argv[1:]:
        asyncio.run(work_of_one_referral(int(sys.argv[sys.argv.index("--work") + 1])))
    else:
        asyncio.run(main(quick="--quick" in sys.argv[1:]))
