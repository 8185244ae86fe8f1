"""Run the whole system locally: `make run` (python -m services.launcher).

Checks that RabbitMQ and PostgreSQL answer (and says how to start them if not), applies every
service's migrations, starts the four services as separate processes, waits until all are
ready, prints where to look, and stops them all on Ctrl-C. Tests use `ServiceProcesses` too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import date, datetime, timezone
from pathlib import Path
from urllib.parse import urlparse

import aio_pika
import asyncpg
import httpx

from services import broker_users
from shared.config import DEFAULT_HTTP_PORTS, Settings
from shared.db import prepare_database

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("referral", "meeting", "followup", "metrics")

HOW_TO_START = """
{problems}
Start the servers, then run `make run` again:
  - on Debian:   rabbitmq-server -detached
                 pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start
  - with Docker: docker compose up -d rabbitmq postgres
                 export TRISAM_AMQP_URL=amqp://trisam:trisam@127.0.0.1:5672/
  - elsewhere:   set TRISAM_AMQP_URL and TRISAM_DATABASE_URL to servers you have.
"""


class ServiceProcesses:
    """The four services as child processes, each on its own HTTP port, logs to files or stdout."""

    def __init__(self, settings: Settings, ports: dict[str, int] | None = None,
                 log_dir: Path | None = None, services=SERVICES, extra_env: dict | None = None):
        """``services``: the processes to run, by service name; ``meeting-2`` is a second
        instance of the meeting service (it needs its own port)."""
        self.settings = settings
        self.services = services
        self.ports = ports or {name: DEFAULT_HTTP_PORTS[name] for name in services}
        self.log_dir = log_dir
        self.extra_env = extra_env or {}
        self.procs: dict[str, subprocess.Popen] = {}
        if log_dir:
            log_dir.mkdir(parents=True, exist_ok=True)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def start(self, instance: str) -> None:
        service = instance.split("-")[0]
        env = {**os.environ, **self.extra_env,
               "PYTHONUNBUFFERED": "1",  # every log line in the file, also of a process that is killed
               "TRISAM_AMQP_URL": self.settings.amqp_url,
               "TRISAM_DATABASE_URL": self.settings.database_url,
               "TRISAM_NAMESPACE": self.settings.namespace,
               "TRISAM_AGENCY_USERS": json.dumps(self.settings.agency_users),
               "TRISAM_HTTP_PORT": str(self.ports[instance]),
               "TRISAM_METRICS_EDITION_CHECK_SECONDS": str(self.settings.metrics_edition_check_seconds),
               "TRISAM_REFERRAL_URL": "http://127.0.0.1:"
                                      f"{self.ports.get('referral', DEFAULT_HTTP_PORTS['referral'])}"}
        out = open(self.log_dir / f"{instance}.log", "ab") if self.log_dir else None
        self.procs[instance] = subprocess.Popen(
            [sys.executable, "-m", f"services.{service}"], env=env, cwd=ROOT,
            stdout=out, stderr=subprocess.STDOUT if out else None)

    def start_all(self) -> None:
        for service in self.services:
            self.start(service)

    def kill(self, service: str) -> None:
        self.procs[service].send_signal(signal.SIGKILL)
        self.procs[service].wait(10)

    def exited(self) -> list[str]:
        return [name for name, proc in self.procs.items() if proc.poll() is not None]

    async def wait_ready(self, timeout: float = 60.0, only: list[str] | None = None) -> float:
        started = time.monotonic()
        async with httpx.AsyncClient(timeout=2) as client:
            for service in only or self.services:
                while True:
                    if service in self.exited():
                        raise RuntimeError(f"{service} exited with code "
                                           f"{self.procs[service].returncode}")
                    try:
                        if (await client.get(self.url(service) + "/health/ready")).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    if time.monotonic() - started > timeout:
                        raise RuntimeError(f"{service} not ready within {timeout:.0f}s")
                    await asyncio.sleep(0.2)
        return time.monotonic() - started

    def logs(self) -> str:
        if not self.log_dir:
            return ""
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("*.log")))

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


async def unreachable(settings: Settings) -> list[str]:
    """What of RabbitMQ and PostgreSQL does not answer, in words (no credentials)."""
    problems = []
    for what, url, connect in (("RabbitMQ", settings.amqp_url, aio_pika.connect),
                               ("PostgreSQL", settings.database_url, asyncpg.connect)):
        try:
            conn = await asyncio.wait_for(connect(url), 10)
            await conn.close()
        except Exception as exc:
            where = urlparse(url)
            problems.append(f"{what} is not reachable at {where.hostname}:{where.port} "
                            f"({type(exc).__name__}: {exc})")
    return problems


def provision_agency_users(settings: Settings) -> None:
    """Create the development broker users (one per agency, one per service) on a local broker."""
    host = urlparse(settings.amqp_url).hostname
    if host not in ("127.0.0.1", "localhost") or not broker_users.rabbitmqctl_available():
        print("agency broker users: not created here (no local rabbitmqctl); load "
              "deploy/rabbitmq/definitions.json into your broker (see README)")
        return
    try:
        broker_users.apply_with_rabbitmqctl(broker_users.dev_users(settings.namespace))
        print(f"agency broker users: {settings.namespace}-af, -fk, -kommun, -region "
              f"(password <user>-dev)")
    except (RuntimeError, OSError) as exc:
        print(f"agency broker users: could not create them ({exc}); agencies' AMQP commands "
              f"will be refused until they exist. Try: sudo make run, or load "
              f"deploy/rabbitmq/definitions.json")


# `make demo` (or DEMO=1 make run): the platform's clock starts a year back and runs fast until
# it has caught up with real time, while the simulator plays the agencies and coordinators: the
# dashboard shows a year of activity within about two minutes. Its own namespace and databases.
DEMO_HISTORY_DAYS = 365
DEMO_PLAY_SECONDS = 90


def demo(settings: Settings) -> tuple[Settings, dict[str, str]]:
    """The demo's settings and the environment that gives every service the same fast clock."""
    namespace = settings.namespace if "TRISAM_NAMESPACE" in os.environ else "trisam_demo"
    started = datetime.now(timezone.utc)
    env = {"TRISAM_DEV_CLOCK_OFFSET_DAYS": str(-DEMO_HISTORY_DAYS),
           "TRISAM_DEV_CLOCK_SPEED": str(DEMO_HISTORY_DAYS * 86400 / DEMO_PLAY_SECONDS),
           "TRISAM_DEV_CLOCK_STARTED_AT": started.isoformat(),
           "TRISAM_MEETING_CHECK_SECONDS": "0.5", "TRISAM_FOLLOWUP_CHECK_SECONDS": "0.5",
           "TRISAM_METRICS_EDITION_CHECK_SECONDS": "2"}
    agency_users = {f"{namespace}-{p.lower()}": p for p in ("AF", "FK", "KOMMUN", "REGION")}
    os.environ.update(env)  # Settings() below and the simulator in this process read the same
    return Settings(namespace=namespace, agency_users=agency_users), env


async def drop_namespace(settings: Settings) -> None:
    """Remove a namespace's databases and its broker topology, messages and all."""
    from shared.topology import Topology, delete

    topology = Topology(settings.namespace)
    await delete(settings.amqp_url, topology.all_queue_names(), topology.all_exchange_names())
    conn = await asyncpg.connect(settings.database_url)
    try:
        for service in SERVICES:
            await conn.execute(f'DROP DATABASE IF EXISTS "{settings.database_name(service)}" WITH (FORCE)')
    finally:
        await conn.close()


async def fresh_demo_namespace(settings: Settings) -> None:
    """Each demo plays its year from scratch: the demo's own namespace (never another) is
    emptied first, so that two demos' histories do not pile up."""
    if settings.namespace == "trisam_demo":
        await drop_namespace(settings)
        print(f"demo: namespace {settings.namespace} emptied for a fresh year")


async def play_demo(settings: Settings, processes: "ServiceProcesses") -> None:
    """The simulator, in this process, until stopped; a line of progress every 10 s."""
    from simulator.cli import county_teams, dev_agencies
    from simulator.simulation import Simulation

    simulation = Simulation(settings, agencies=dev_agencies(settings),
                            meeting_urls=[processes.url("meeting")], teams=county_teams())
    await simulation.start()
    referring = asyncio.create_task(simulation.refer(10**9))
    try:
        while not referring.done():
            tally = simulation.tally
            print(f"demo: platform date {simulation.today()}: {len(tally.accepted)} referrals accepted, "
                  f"{len(tally.consulted)} consulted, {len(tally.followups_due)} follow-ups due, "
                  f"{len(tally.followups_recorded)} recorded", flush=True)
            await asyncio.sleep(10)
        referring.result()
    finally:
        referring.cancel()
        await simulation.stop()


async def main() -> int:
    settings = Settings()
    demo_env: dict[str, str] = {}
    if os.environ.get("DEMO"):
        settings, demo_env = demo(settings)
    if problems := await unreachable(settings):
        print(HOW_TO_START.format(problems="\n".join(problems)), file=sys.stderr)
        return 1
    provision_agency_users(settings)
    if demo_env:
        await fresh_demo_namespace(settings)
    for service in SERVICES:
        applied = await prepare_database(settings.database_url, settings.database_name(service),
                                         ROOT / "services" / service / "migrations")
        print(f"database {settings.database_name(service)}: "
              f"{len(applied)} migration(s) applied" if applied else
              f"database {settings.database_name(service)}: up to date")
    processes = ServiceProcesses(settings, extra_env=demo_env)
    processes.start_all()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        seconds = await processes.wait_ready(timeout=60)
        print(f"\nTrisam is running (namespace {settings.namespace!r}); all four services ready "
              f"in {seconds:.1f}s.\n")
        for name in SERVICES:
            base = processes.url(name)
            print(f"  {name:9} health {base}/health/ready   metrics {base}/metrics   "
                  f"API docs {base}/docs")
        print(f"\n  dashboard: {processes.url('metrics')}/  (public figures; sign in as the board for "
              f"exact ones: development sign-in on the page)")
        print(f"  event catalogue:    docs/events.md and docs/asyncapi/*.json")
        print(f"  agencies publish SubmitReferral to exchange '{settings.namespace}.intake' "
              f"with routing key '<PARTY>.SubmitReferral'")
        print("\nCtrl-C stops everything.\n")
        demo_task = asyncio.create_task(play_demo(settings, processes)) if demo_env else None
        if demo_task:
            print(f"  DEMO: a year of history plays in about {DEMO_PLAY_SECONDS} s; dashboard "
                  f"{processes.url('metrics')}/\n")
        while not stop.is_set():
            if demo_task and demo_task.done() and demo_task.exception():
                print(f"demo failed: {demo_task.exception()!r}", file=sys.stderr)
                return 1
            if dead := processes.exited():
                print(f"service(s) exited: {', '.join(dead)}; stopping", file=sys.stderr)
                return 1
            with contextlib.suppress(TimeoutError):  # (not wait_for: it can lose a cancellation in 3.11)
                async with asyncio.timeout(1.0):
                    await stop.wait()
        return 0
    except RuntimeError as exc:
        print(f"start-up failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if demo_env and "demo_task" in locals() and demo_task:
            demo_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await demo_task
        processes.stop_all()
        print("stopped.")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
