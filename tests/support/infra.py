"""Where the tests' RabbitMQ and PostgreSQL come from, in this order:

1. ``TRISAM_AMQP_URL`` / ``TRISAM_DATABASE_URL`` if set;
2. otherwise testcontainers, if a Docker engine answers;
3. otherwise the local defaults (127.0.0.1:5672 guest/guest, 127.0.0.1:5432 postgres, trust).

If a server is not reachable the run fails with a message that says how to start it: the
messaging and storage tests are never skipped.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import aio_pika
import asyncpg

LOCAL_AMQP = "amqp://guest:guest@127.0.0.1:5672/"
LOCAL_DATABASE = "postgresql://postgres@127.0.0.1:5432/postgres"

HOW_TO_START = """
The tests need a real RabbitMQ and PostgreSQL. None was reachable:
{problems}
Start them in one of these ways:
  - with Docker running, the tests start their own containers (testcontainers);
  - on Debian:  rabbitmq-server -detached
                pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start
  - or point the tests at servers you have:
                TRISAM_AMQP_URL=amqp://user:pass@host:5672/ \\
                TRISAM_DATABASE_URL=postgresql://user@host:5432/postgres make test
"""


@dataclass
class Infra:
    amqp_url: str
    database_url: str
    source: str  # configured | containers | local
    containers: list = field(default_factory=list)

    def broker_is_local(self) -> bool:
        return self.source == "local" and urlparse(self.amqp_url).hostname in ("127.0.0.1", "localhost")

    def can_restart_broker(self) -> bool:
        return bool(self.containers) or (self.broker_is_local() and shutil.which("rabbitmqctl") is not None)

    def restart_broker(self) -> None:
        """Stop and start the RabbitMQ application (the node keeps its data on disk). One run at
        a time on this machine: two restarts interleaved can leave the node unresponsive."""
        with open(Path(tempfile.gettempdir()) / "trisam-broker-restart.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._restart_broker()

    def _restart_broker(self) -> None:
        for command in (["rabbitmqctl", "stop_app"], ["rabbitmqctl", "start_app"], ["rabbitmqctl", "await_startup"]):
            if self.containers:
                rabbit = self.containers[0]
                code, output = rabbit.exec(command)
                if code != 0:
                    raise RuntimeError(f"{command} failed: {output!r}")
            else:
                subprocess.run(command, check=True, capture_output=True, timeout=120)

    def enable_plugin(self, plugin: str) -> None:
        """Enable a RabbitMQ plugin on the test broker (online, kept across restarts), as an
        operator would (``rabbitmq-plugins enable``)."""
        command = ["rabbitmq-plugins", "enable", plugin]
        if self.containers:
            code, output = self.containers[0].exec(command)
            if code != 0:
                raise RuntimeError(f"{command} failed: {output!r}")
        elif self.broker_is_local() and shutil.which("rabbitmq-plugins"):
            subprocess.run(command, check=True, capture_output=True, timeout=120)
        # configured servers: the operator enabled it (declaring its exchange type fails loudly if not)

    def stop(self) -> None:
        for container in self.containers:
            container.stop()


def docker_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
        return True
    except Exception:
        return False


def _start_containers(need_amqp: bool, need_db: bool) -> tuple[list, str | None, str | None]:
    containers, amqp, database = [], None, None
    if need_amqp:
        from testcontainers.community.rabbitmq import RabbitMqContainer

        rabbit = RabbitMqContainer("rabbitmq:3.13-management").start()
        containers.append(rabbit)
        amqp = (
            f"amqp://{rabbit.username}:{rabbit.password}@{rabbit.get_container_host_ip()}:"
            f"{rabbit.get_exposed_port(rabbit.port)}/"
        )
    if need_db:
        from testcontainers.community.postgres import PostgresContainer

        pg = PostgresContainer("postgres:15", driver=None).start()
        containers.append(pg)
        database = pg.get_connection_url()
    return containers, amqp, database


async def _reachable(amqp_url: str, database_url: str) -> list[str]:
    problems = []
    try:
        conn = await asyncio.wait_for(aio_pika.connect(amqp_url), 10)
        await conn.close()
    except Exception as exc:
        problems.append(f"  RabbitMQ at {_safe(amqp_url)}: {type(exc).__name__}: {exc}")
    try:
        conn = await asyncio.wait_for(asyncpg.connect(database_url), 10)
        await conn.close()
    except Exception as exc:
        problems.append(f"  PostgreSQL at {_safe(database_url)}: {type(exc).__name__}: {exc}")
    return problems


def _safe(url: str) -> str:
    parsed = urlparse(url)
    return f"{parsed.scheme}://{parsed.hostname}:{parsed.port}"


async def resolve() -> Infra:
    amqp, database = os.environ.get("TRISAM_AMQP_URL"), os.environ.get("TRISAM_DATABASE_URL")
    containers: list = []
    source = "configured" if amqp and database else "local"
    if not (amqp and database) and docker_answers():
        containers, c_amqp, c_db = await asyncio.to_thread(_start_containers, amqp is None, database is None)
        amqp, database, source = amqp or c_amqp, database or c_db, "containers"
    infra = Infra(amqp or LOCAL_AMQP, database or LOCAL_DATABASE, source, containers)
    problems = await _reachable(infra.amqp_url, infra.database_url)
    if problems:
        infra.stop()
        raise RuntimeError(HOW_TO_START.format(problems="\n".join(problems)))
    return infra
