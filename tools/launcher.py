"""Run the whole system locally: `make run` (python -m tools.launcher).

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
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import aio_pika
import asyncpg
import httpx

from shared.platform import db, tls
from shared.platform.config import DEFAULT_HTTP_PORTS, Settings, load_settings
from shared.platform.db import prepare_database
from tools import broker_users

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("referral", "meeting", "followup", "metrics")  # the event services, each with its database
WORKSPACE = "workspace"  # the people's pages: no database, no broker; calls the services over HTTP
PROCESSES = (*SERVICES, WORKSPACE)

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

    def __init__(
        self,
        settings: Settings,
        ports: dict[str, int] | None = None,
        log_dir: Path | None = None,
        services=SERVICES,
        extra_env: dict | None = None,
    ):
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
        return f"{self.settings.http_scheme}://127.0.0.1:{self.ports[service]}"

    def client(self, service: str | None = None, **kwargs) -> httpx.AsyncClient:
        """An HTTP client for the services (at ``service``'s URL if given), verifying them as
        the services verify each other (TRISAM_TLS_CA_FILE)."""
        base = {"base_url": self.url(service)} if service else {}
        return httpx.AsyncClient(verify=tls.client_verify(self.settings), **base, **kwargs)

    def start(self, instance: str) -> None:
        service = instance.split("-")[0]
        env = {
            **os.environ,
            **self.extra_env,
            "PYTHONUNBUFFERED": "1",  # every log line in the file, also of a process that is killed
            "TRISAM_AMQP_URL": self.settings.amqp_url,
            "TRISAM_DATABASE_URL": self.settings.database_url,
            "TRISAM_NAMESPACE": self.settings.namespace,
            "TRISAM_AGENCY_USERS": json.dumps(self.settings.agency_users),
            "TRISAM_HTTP_PORT": str(self.ports[instance]),
            "TRISAM_METRICS_EDITION_CHECK_SECONDS": str(self.settings.metrics_edition_check_seconds),
            **{  # where each service is (the meeting service calls referral; the workspace calls all)
                f"TRISAM_{name.upper()}_URL": f"{self.settings.http_scheme}://127.0.0.1:"
                f"{self.ports.get(name, DEFAULT_HTTP_PORTS[name])}"
                for name in SERVICES
            },
            **{
                f"TRISAM_{name.upper()}": str(getattr(self.settings, name))
                for name in ("tls_cert_file", "tls_key_file", "tls_ca_file")
                if getattr(self.settings, name)
            },
        }
        out = open(self.log_dir / f"{instance}.log", "ab") if self.log_dir else None
        self.procs[instance] = subprocess.Popen(
            [sys.executable, "-m", f"services.{service}"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
        )

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
        async with self.client(timeout=2) as client:
            for service in only or self.services:
                while True:
                    if service in self.exited():
                        raise RuntimeError(f"{service} exited with code {self.procs[service].returncode}")
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
    for what, url, connect in (
        ("RabbitMQ", settings.amqp_url, aio_pika.connect),
        ("PostgreSQL", settings.database_url, asyncpg.connect),
    ):
        try:
            conn = await asyncio.wait_for(connect(url), 10)
            await conn.close()
        except Exception as exc:
            where = urlparse(url)
            problems.append(f"{what} is not reachable at {where.hostname}:{where.port} ({type(exc).__name__}: {exc})")
    return problems


def provision_agency_users(settings: Settings) -> None:
    """Create the development broker users (one per agency, one per service) on a local broker."""
    host = urlparse(settings.amqp_url).hostname
    if host not in ("127.0.0.1", "localhost") or not broker_users.rabbitmqctl_available():
        print(
            "agency broker users: not created here (no local rabbitmqctl); load "
            "deploy/rabbitmq/definitions.json into your broker (see README)"
        )
        return
    try:
        broker_users.apply_with_rabbitmqctl(broker_users.dev_users(settings.namespace))
        print(f"agency broker users: {settings.namespace}-af, -fk, -kommun, -region (password <user>-dev)")
    except (RuntimeError, OSError) as exc:
        print(
            f"agency broker users: could not create them ({exc}); agencies' AMQP commands "
            f"will be refused until they exist. Try: sudo make run, or load "
            f"deploy/rabbitmq/definitions.json"
        )


# `make demo` (or DEMO=1 make run): the platform's clock starts a year back and runs fast until
# it has caught up with real time, while the simulator plays the agencies and coordinators; then
# the demo waits until the board's figures hold every event and says what to open. Its own
# namespace and databases. TRISAM_DEMO_DAYS and TRISAM_DEMO_SECONDS shorten it (the tests do).
DEMO_HISTORY_DAYS = int(os.environ.get("TRISAM_DEMO_DAYS", "365"))
DEMO_PLAY_SECONDS = float(os.environ.get("TRISAM_DEMO_SECONDS", "90"))
LOG_ROOT = ROOT / "logs"


def demo(settings: Settings) -> tuple[Settings, dict[str, str]]:
    """The demo's settings and the environment that gives every service the same fast clock
    (which starts with ``start_demo_clock``)."""
    namespace = settings.namespace if "TRISAM_NAMESPACE" in os.environ else "trisam_demo"
    env = {
        "TRISAM_DEV_CLOCK_OFFSET_DAYS": str(-DEMO_HISTORY_DAYS),
        "TRISAM_DEV_CLOCK_SPEED": str(DEMO_HISTORY_DAYS * 86400 / DEMO_PLAY_SECONDS),
        "TRISAM_MEETING_CHECK_SECONDS": "0.5",
        "TRISAM_FOLLOWUP_CHECK_SECONDS": "0.5",
        "TRISAM_METRICS_EDITION_CHECK_SECONDS": "2",
    }
    os.environ.update(env)  # Settings() below and the simulator in this process read the same
    return Settings(namespace=namespace), env  # (its agency users: the namespace's own)


def start_demo_clock(settings: Settings, env: dict[str, str]) -> Settings:
    """The demo's history starts playing now, when the services are about to start (not
    before the users, databases and migrations: on a busy machine those took longer than the
    whole play, and the simulator found the history over before it began)."""
    env["TRISAM_DEV_CLOCK_STARTED_AT"] = datetime.now(UTC).isoformat()
    os.environ.update(env)
    return Settings(namespace=settings.namespace)


async def drop_namespace(settings: Settings) -> None:
    """Remove a namespace's databases and its broker topology, messages and all."""
    from shared.platform.topology import Topology, delete

    topology = Topology.of(settings)  # (with its partition queues, if it has them)
    await delete(settings.amqp_url, topology.all_queue_names(), topology.all_exchange_names())
    conn = await asyncpg.connect(settings.database_url)
    try:
        for service in SERVICES:
            await db.drop_database(conn, settings.database_name(service))
    finally:
        await conn.close()


async def fresh_demo_namespace(settings: Settings) -> None:
    """Each demo plays its year from scratch: the demo's own namespace (never another) is
    emptied first, so that two demos' histories do not pile up."""
    if settings.namespace == "trisam_demo":
        await drop_namespace(settings)
        say(f"demo: namespace {settings.namespace} emptied for a fresh year")


# --------------------------------------------------------------------------- the terminal


def say(line: str = "", *, err: bool = False) -> None:
    print(line, file=sys.stderr if err else sys.stdout, flush=True)


def terminal_mode(verbose: bool) -> bool:
    """Readable lines in a developer's terminal, the services' JSON logs to files; JSON on
    standard output as ever in production, under CI, when not a terminal, or when verbose."""
    return (
        sys.stdout.isatty()
        and not verbose
        and not os.environ.get("CI")
        and os.environ.get("TRISAM_ENV", "production") == "dev"
    )


def readable(service: str, line: str) -> str | None:
    """A service's JSON log line as one readable line, if it is a warning or an error."""
    try:
        entry = json.loads(line)
    except ValueError:
        return f"{service}: {line.strip()[:300]}" if line.strip() else None
    if not isinstance(entry, dict) or entry.get("level") not in ("warning", "error", "critical"):
        return None
    when = str(entry.get("timestamp", ""))[11:19]
    detail = " ".join(
        f"{k}={entry[k]}"
        for k in ("error", "detail", "event_type", "case_ref", "reason")
        if entry.get(k) not in (None, "")
    )
    return f"{when} {service} {entry['level'].upper()}: {entry.get('event', '')}" + (f" ({detail})" if detail else "")


async def follow_logs(log_dir: Path, show=say) -> None:
    """Print every warning and error any service writes to its log, one readable line each."""
    offsets: dict[Path, int] = {}
    while True:
        for path in sorted(log_dir.glob("*.log")):
            with path.open("rb") as f:
                f.seek(offsets.get(path, 0))
                chunk = f.read()
            complete = chunk[: chunk.rfind(b"\n") + 1]
            offsets[path] = offsets.get(path, 0) + len(complete)
            for raw in complete.decode(errors="replace").splitlines():
                if (line := readable(path.stem, raw)) is not None:
                    show(line)
        await asyncio.sleep(0.5)


# --------------------------------------------------------------------------- the demo


async def play_demo(settings: Settings, processes: ServiceProcesses, progress_bar: bool) -> None:
    """The simulator, in this process, until the platform's clock has caught up with today; then
    wait until the board's figures hold everything it did, and say what to open."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn

    from simulator.cli import county_teams, dev_agencies
    from simulator.simulation import Simulation

    simulation = Simulation(
        settings, agencies=dev_agencies(settings), meeting_urls=[processes.url("meeting")], teams=county_teams()
    )
    today = date.today()
    await simulation.start()
    referring = asyncio.create_task(simulation.refer(10**9))
    tally = simulation.tally
    columns = (
        TextColumn("[bold]{task.fields[date]}"),
        BarColumn(),
        TextColumn(
            "{task.fields[referred]} referrals accepted, {task.fields[consulted]} consulted, "
            "{task.fields[due]} follow-ups due, {task.fields[recorded]} recorded"
        ),
    )
    try:
        with Progress(*columns, console=Console(), disable=not progress_bar) as progress:
            task = progress.add_task(
                "demo", total=DEMO_HISTORY_DAYS, date="", referred=0, consulted=0, due=0, recorded=0
            )
            last_line = 0.0
            while simulation.today() < today and not referring.done():
                fields = dict(
                    date=str(simulation.today()),
                    referred=len(tally.accepted),
                    consulted=len(tally.consulted),
                    due=len(tally.followups_due),
                    recorded=len(tally.followups_recorded),
                )
                progress.update(task, completed=DEMO_HISTORY_DAYS - (today - simulation.today()).days, **fields)
                if not progress_bar and time.monotonic() - last_line > 10:
                    last_line = time.monotonic()
                    say(
                        "demo: platform date {date}: {referred} referrals accepted, {consulted} consulted, "
                        "{due} follow-ups due, {recorded} recorded".format(**fields)
                    )
                await asyncio.sleep(0.25)
        if referring.done():
            referring.result()  # the simulator failed: say why
        referring.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await referring
        # what the simulator did, counted in full: every outcome the coordinators recorded (a
        # last look at the agendas), every referral's answer (late under load: without them the
        # board's figures would count more than the simulator says it did)
        await simulation.stop_coordinating()
        if not await simulation.answered(timeout=60):
            say("demo: some referrals are still unanswered after 60 s; the figures may not match")
    finally:
        referring.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await referring
        await simulation.stop()
    quarter = f"{today.year}Q{(today.month - 1) // 3 + 1}"
    done = tally.in_period(*_quarter_bounds(today))
    say(
        f"demo: {DEMO_HISTORY_DAYS} days have played: {len(tally.accepted)} referrals accepted, "
        f"{len(tally.consulted)} consulted, "
        f"{len(tally.followups_due)} follow-ups due, {len(tally.followups_recorded)} recorded."
    )
    say(
        f"demo: this quarter ({quarter}) the simulator referred "
        + ", ".join(f"{p} {n}" for p, n in done["referred_by_party"].items())
        + f" ({sum(done['referred_by_party'].values())}) and consulted {done['consulted']}"
    )
    seconds = await figures_hold(settings, processes.url("metrics"), quarter, done)
    url = processes.url("metrics")
    say(f"demo: the board's figures for {quarter} hold every event (after {seconds:.0f} s). Open:")
    say(f"  the board's exact figures:  {url}/?view=exact&as=board")
    say(f"  the public figures:         {url}/")
    first, _ = _quarter_bounds(today)
    previous = f"{(first - timedelta(days=1)).year}Q{(first - timedelta(days=1)).month // 3}"
    say(
        f"  the quarterly report:       {url}/report/{quarter}  (exact, once signed in above); "
        f"public: {url}/report/{previous}"
    )
    say(
        f"  the team workspace:         {processes.url(WORKSPACE)}/  (development sign-in as a coordinator, "
        "member, officer or auditor)"
    )
    say("Ctrl-C stops everything.")


def _quarter_bounds(day: date) -> tuple[date, date]:
    first = date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    last = date(day.year + (first.month == 10), (first.month + 3 - 1) % 12 + 1, 1)
    return first, last - timedelta(days=1)


async def figures_hold(settings: Settings, metrics_url: str, quarter: str, done: dict, timeout: float = 120.0) -> float:
    """Wait until the board's exact figures for the quarter count what the simulator did."""
    from shared.platform.auth import mint_token, signing_key

    board = {
        "Authorization": "Bearer "
        + mint_token(signing_key(settings), user_id="demo-launcher", party=None, role="board")
    }
    began, seen = time.monotonic(), "no answer yet"
    async with httpx.AsyncClient(base_url=metrics_url, timeout=10, verify=tls.client_verify(settings)) as client:
        while True:
            try:
                answer = await client.get("/api/v1/figures", params={"period": quarter}, headers=board)
                figures = answer.json()["figures"]
                by_party, consulted = figures["cases_referred"]["by"]["referring_party"], figures["cases_consulted"]
                if by_party == done["referred_by_party"] and consulted["value"] == done["consulted"]:
                    return time.monotonic() - began
                seen = f"referred {by_party}, consulted {consulted['value']}"
            except (httpx.HTTPError, KeyError, ValueError, TypeError) as exc:
                seen = f"{type(exc).__name__}: {str(exc)[:200]}"
            if time.monotonic() - began > timeout:
                raise RuntimeError(
                    f"the board's figures for {quarter} did not catch up with the demo in {timeout:.0f} s "
                    f"(last seen: {seen})"
                )
            await asyncio.sleep(1)


# --------------------------------------------------------------------------- make run, make demo


def ports_from(settings: Settings) -> dict[str, int]:
    """``TRISAM_HTTP_PORT`` is the first of five ports (referral, meeting, followup, metrics,
    workspace), so that two systems can run side by side; otherwise 8001-8005."""
    if settings.http_port:
        return {name: settings.http_port + i for i, name in enumerate(PROCESSES)}
    return {name: DEFAULT_HTTP_PORTS[name] for name in PROCESSES}


async def main(verbose: bool = False) -> int:
    settings = load_settings()
    demo_env: dict[str, str] = {}
    if os.environ.get("DEMO"):
        settings, demo_env = demo(settings)
    if problems := await unreachable(settings):
        say(HOW_TO_START.format(problems="\n".join(problems)), err=True)
        return 1
    provision_agency_users(settings)
    if demo_env:
        await fresh_demo_namespace(settings)
    for service in SERVICES:
        applied = await prepare_database(
            settings.database_url, settings.database_name(service), ROOT / "services" / service / "migrations"
        )
        say(
            f"database {settings.database_name(service)}: {len(applied)} migration(s) applied"
            if applied
            else f"database {settings.database_name(service)}: up to date"
        )
    if demo_env:
        settings = start_demo_clock(settings, demo_env)
    quiet = terminal_mode(verbose)
    log_dir = LOG_ROOT / settings.namespace if quiet else None
    processes = ServiceProcesses(
        settings, ports=ports_from(settings), log_dir=log_dir, extra_env=demo_env, services=PROCESSES
    )
    processes.start_all()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    background: list[asyncio.Task] = []
    try:
        if log_dir:
            say(
                f"logs: {log_dir.relative_to(ROOT)}/<service>.log (JSON); warnings and errors are shown "
                f"here (make run VERBOSE=1 streams everything)"
            )
            background.append(asyncio.create_task(follow_logs(log_dir)))
        seconds = await processes.wait_ready(timeout=60)
        say(
            f"\nTrisam is running (namespace {settings.namespace!r}); the four services and the workspace "
            f"ready in {seconds:.1f}s.\n"
        )
        for name in SERVICES:
            base = processes.url(name)
            say(f"  {name:9} health {base}/health/ready   metrics {base}/metrics   API docs {base}/docs")
        say(
            f"\n  dashboard: {processes.url('metrics')}/  (public figures; exact ones for the board: "
            f"{processes.url('metrics')}/?view=exact&as=board, development sign-in)"
        )
        say(
            f"  workspace: {processes.url(WORKSPACE)}/  (the pages for coordinators, team members, officers and "
            f"auditors; development sign-in: choose a role, party and team)"
        )
        say("  event catalogue:    docs/events.md and docs/asyncapi/*.json")
        say(
            f"  agencies publish SubmitReferral to exchange '{settings.namespace}.intake' "
            f"with routing key '<PARTY>.SubmitReferral'"
        )
        if demo_env:
            say(f"\n  DEMO: {DEMO_HISTORY_DAYS} days of history play in about {DEMO_PLAY_SECONDS:.0f} s\n")
            background.append(asyncio.create_task(play_demo(settings, processes, progress_bar=quiet)))
        else:
            say("\nCtrl-C stops everything.\n")
        while not stop.is_set():
            for task in background:
                if task.done() and not task.cancelled() and task.exception():
                    say(f"failed: {task.exception()!r}", err=True)
                    return 1
            if dead := processes.exited():
                say(
                    f"service(s) exited: {', '.join(dead)}; stopping"
                    + (f" (see {log_dir.relative_to(ROOT)})" if log_dir else ""),
                    err=True,
                )
                return 1
            with contextlib.suppress(TimeoutError):  # (not wait_for: it can lose a cancellation in 3.11)
                async with asyncio.timeout(1.0):
                    await stop.wait()
        return 0
    except RuntimeError as exc:
        say(f"start-up failed: {exc}", err=True)
        return 1
    finally:
        for task in background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        processes.stop_all()
        say("stopped.")


if __name__ == "__main__":
    sys.exit(asyncio.run(main(verbose="--verbose" in sys.argv[1:] or bool(os.environ.get("VERBOSE")))))
