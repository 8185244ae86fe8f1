"""Test harness: real RabbitMQ and PostgreSQL (see tests/support/infra.py), isolated per run.

Every test that touches the servers gets its own namespace (``<run>_<n>``): its own exchanges,
queues and databases, so two runs, or a running ``make run``, never collide. Everything created
under the run's prefix is deleted at the end.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets

import asyncpg
import pytest

from shared.platform import db
from shared.platform.config import Settings
from shared.platform.logging import configure as configure_logging
from shared.platform.runtime import Runtime
from shared.platform.topology import Topology
from tests.support import broker as amqp
from tests.support import hygiene, tls
from tests.support.agencies import create_agencies, delete_agencies, delete_run_users
from tests.support.infra import resolve
from tests.support.tls import TlsServers

# The services default to production (TRISAM_ENV); the tests run them in development (loopback,
# development keys), as `make test` asks for (Makefile), also when pytest is run on its own.
os.environ.setdefault("TRISAM_ENV", "dev")

# The runtimes the tests start in this process log as the services do (JSON, exceptions as type
# and frames: shared/platform/logging.py). Unconfigured, structlog's development renderer prints
# every local variable of every frame of a logged exception: it once held the event loop for
# four minutes after a cut connection (test_connection_cuts), and it is not what production prints.
configure_logging("tests")

RUN_PREFIX = "t" + secrets.token_hex(3)

# The suite's PostgreSQL connection budget (README, "Connections"): every service runtime the
# tests start, in this process or as a child process, opens at most this many connections.
# The fault run's eight processes then need at most 8 x 4 = 32.
TEST_DB_POOL_MAX = "4"
os.environ.setdefault("TRISAM_DB_POOL_MAX", TEST_DB_POOL_MAX)
_counter = itertools.count(1)
_namespaces: list[str] = []


@pytest.fixture(scope="session")
async def infra():
    try:
        resolved = await resolve()
    except RuntimeError as exc:
        pytest.exit(str(exc), returncode=3)
    print(f"\n[trisam tests] servers: {resolved.source}; run prefix {RUN_PREFIX}")
    hygiene.mark_alive(RUN_PREFIX)
    removed = await hygiene.remove_dead_runs(resolved, RUN_PREFIX, lambda prefix: delete_run_users(resolved, prefix))
    if removed:
        print(f"[trisam tests] removed leftovers of dead runs {removed}")
    yield resolved
    await _clean_up(resolved)
    hygiene.unmark(RUN_PREFIX)
    resolved.stop()


async def _remove_namespace(infra, ns: str) -> None:
    topology = Topology(ns)
    await amqp.delete_topology(
        infra.amqp_url, topology.all_queue_names() + [f"{ns}.tap"], topology.all_exchange_names()
    )
    conn = await asyncpg.connect(infra.database_url)
    try:
        for row in await conn.fetch("SELECT datname FROM pg_database WHERE datname LIKE $1", ns + "\\_%"):
            await db.drop_database(conn, row["datname"])
    finally:
        await conn.close()


async def _clean_up(infra) -> None:
    for ns in list(_namespaces):
        await _remove_namespace(infra, ns)
    conn = await asyncpg.connect(infra.database_url)
    try:
        names = await conn.fetch("SELECT datname FROM pg_database WHERE datname LIKE $1", RUN_PREFIX + "\\_%")
        for row in names:
            await db.drop_database(conn, row["datname"])
    finally:
        await conn.close()


def new_namespace() -> str:
    ns = f"{RUN_PREFIX}_{next(_counter)}"
    _namespaces.append(ns)
    return ns


@pytest.fixture(scope="session")
async def agencies(infra):
    """One real broker user per agency for this run (publishes to intake, reads its own queue)."""
    try:
        created = await create_agencies(infra, RUN_PREFIX)
    except RuntimeError as exc:
        pytest.exit(str(exc), returncode=3)
    yield created
    await delete_agencies(infra, created)


@pytest.fixture
async def settings(infra, agencies):
    """Settings for one test: its own namespace on the real servers, quick retries. The
    namespace is removed after the test: a broker with hundreds of quorum queues left over
    becomes unresponsive on a small machine."""
    ns = new_namespace()
    yield _test_settings(ns, infra.amqp_url, infra.database_url, agencies)
    await _remove_namespace(infra, ns)
    _namespaces.remove(ns)


def _test_settings(namespace: str, amqp_url: str, database_url: str, agencies, **more) -> Settings:
    return Settings(
        amqp_url=amqp_url,
        database_url=database_url,
        namespace=namespace,
        outbox_poll_seconds=0.2,
        outbox_max_backoff_seconds=1.0,
        max_handler_attempts=3,
        metrics_edition_check_seconds=0.5,
        agency_users={a.user: p.value for p, a in agencies.items()},
        **more,
    )


@pytest.fixture(scope="session")
async def tls_servers():
    """A PostgreSQL and a RabbitMQ of this run's own that take TLS connections only, next to
    the machine's (tests/support/tls.py). A test that needs them fails if they cannot start."""
    servers = await TlsServers.start()
    print(f"\n[trisam tests] TLS servers: PostgreSQL :{tls.PG_PORT}, RabbitMQ {tls.NODE} AMQPS :{tls.AMQPS_PORT}")
    yield servers
    servers.stop()


@pytest.fixture(scope="session")
async def tls_agencies(tls_servers):
    """The agencies' broker users on the TLS broker; each logs in with its client certificate
    alone (EXTERNAL: the certificate's common name is the user)."""
    return await create_agencies(
        None, RUN_PREFIX, run=tls_servers.rabbitmqctl, url_for=lambda user, _password: tls_servers.amqp_url(user)
    )


@pytest.fixture
def tls_settings(tls_servers, tls_agencies):
    """Settings of one test on the TLS servers (removed with them at the end of the run), the
    services serving HTTPS with a certificate of the run's CA."""
    cert, key = tls_servers.ca.server("services")
    return _test_settings(
        f"{RUN_PREFIX}_{next(_counter)}",
        tls_servers.amqp_url("guest", "guest"),
        tls_servers.database_url(),
        tls_agencies,
        tls_cert_file=str(cert),
        tls_key_file=str(key),
        tls_ca_file=str(tls_servers.ca_file),
    )


@pytest.fixture
async def runtimes():
    """Start service runtimes in this process (options: Runtime's, e.g. ``tracer_provider``);
    stopped at the end of the test."""
    started: list[Runtime] = []

    async def start(spec, settings: Settings, **options) -> Runtime:
        runtime = Runtime(spec, settings, **options)
        await runtime.start()
        started.append(runtime)
        return runtime

    yield start
    for runtime in reversed(started):
        try:
            await asyncio.wait_for(asyncio.shield(runtime.stop()), 30)
        except TimeoutError:
            for task in asyncio.all_tasks():  # say where it hangs instead of hanging the run
                task.print_stack(limit=6)
            raise AssertionError(f"the {runtime.spec.name} runtime did not stop within 30 s") from None
