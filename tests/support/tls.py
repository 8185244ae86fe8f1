"""A PostgreSQL and a RabbitMQ of the test run's own that accept TLS connections only.

The machine's own servers (5432, 5672) are shared with other runs and stay as they are: these
two run next to them, on their own ports and data directories, with certificates from a CA
made for the run (tools/certs.py):

- PostgreSQL on 127.0.0.1:5442: ``ssl = on``, and pg_hba.conf has ``hostssl`` lines only, with
  ``cert`` authentication (the client certificate's common name is the database user);
- RabbitMQ node ``trisam-tls@localhost``: AMQPS on 127.0.0.1:5691 only (no plain listener),
  peer verification with ``fail_if_no_peer_cert``, EXTERNAL authentication (the user is the
  client certificate's common name) besides passwords; its own Erlang cookie (in its own HOME)
  and distribution port 25690.

Both are stopped, and their directory removed, by ``stop()``. Their ports and node name are
fixed, so test runs on one machine take turns (a lock file, held from start to stop).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import urlencode

import aio_pika
import asyncpg

from tools.certs import Authority

PG_BIN = Path("/usr/lib/postgresql/15/bin")
RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")
PG_PORT = 5442
AMQP_PLAIN_PORT = 5690  # not listened on: the node has no plain AMQP listener
AMQPS_PORT = 5691
DIST_PORT = 25690
NODE = "trisam-tls@localhost"


LOCK_FILE = Path(tempfile.gettempdir()) / "trisam-tls-servers.lock"


def _stop_leftovers() -> None:
    """Servers of a run that was killed before it stopped them (its lock went with it, they did
    not): stopped and removed, so that their ports are free. Called with the lock held, so no
    live run has servers now."""
    for directory in Path(tempfile.gettempdir()).glob("trisam-tls-*"):
        if not directory.is_dir():
            continue
        pid_file = directory / "rabbit" / "node.pid"
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)
        if (directory / "pg" / "postmaster.pid").exists():
            subprocess.run(
                ["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", str(directory / "pg")]
                + ["-m", "immediate", "-w", "stop"],
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(directory, ignore_errors=True)
    for port in (PG_PORT, AMQPS_PORT, DIST_PORT):  # still held: say by what, rather than time out later
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                raise RuntimeError(f"port {port} is taken by another program: the TLS test servers need it")


def _take_turn() -> IO[str]:
    """The lock file, held: another run's servers are stopped first."""
    lock = open(LOCK_FILE, "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    return lock


@dataclass
class TlsServers:
    directory: Path
    ca: Authority
    pg_data: Path
    rabbit_dir: Path
    lock: IO[str]
    rabbit: subprocess.Popen | None = None

    @property
    def ca_file(self) -> Path:
        return self.ca.ca_file

    def database_url(self, user: str = "postgres", ca_file: Path | None = None) -> str:
        """A URL that logs in as ``user`` by its client certificate, verifying the server's
        with ``ca_file`` (default: the CA that signed it)."""
        cert, key = self.ca.client(user)
        root = ca_file or self.ca_file
        query = urlencode({"sslmode": "verify-full", "sslrootcert": root, "sslcert": cert, "sslkey": key})
        return f"postgresql://{user}@127.0.0.1:{PG_PORT}/postgres?{query}"

    def amqp_url(self, user: str, password: str | None = None, ca_file: Path | None = None) -> str:
        """An AMQPS URL that logs in as ``user`` with its client certificate: with the password
        if given, else by the certificate alone (EXTERNAL); the broker's certificate verified
        with ``ca_file`` (default: the CA that signed it)."""
        cert, key = self.ca.client(user)
        query = {"cafile": ca_file or self.ca_file, "certfile": cert, "keyfile": key}
        if password is None:
            return f"amqps://127.0.0.1:{AMQPS_PORT}/?" + urlencode({"auth": "external", **query})
        return f"amqps://{user}:{password}@127.0.0.1:{AMQPS_PORT}/?" + urlencode(query)

    def rabbitmqctl(self, args: list[str]) -> str:
        """rabbitmqctl against this node (the runner tools/broker_users.py takes)."""
        done = subprocess.run(
            [str(RABBIT_BIN / "rabbitmqctl"), "-q", "-n", NODE, *args],
            env=self._rabbit_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {args[0]} failed: {done.stderr.strip() or done.stdout.strip()}")
        return done.stdout

    def _rabbit_env(self) -> dict[str, str]:
        d = self.rabbit_dir
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        return {
            **env,
            "HOME": str(d / "home"),  # its own .erlang.cookie; the machine's is never read
            "RABBITMQ_CONF_ENV_FILE": str(d / "rabbitmq-env.conf"),
            "RABBITMQ_NODENAME": NODE,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(AMQP_PLAIN_PORT),
            "RABBITMQ_DIST_PORT": str(DIST_PORT),
            "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
            "RABBITMQ_CONFIG_FILES": str(d / "conf.d"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(d / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
            "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_PID_FILE": str(d / "node.pid"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    # ------------------------------------------------------------------ start and stop

    @classmethod
    async def start(cls) -> TlsServers:
        lock = await asyncio.to_thread(_take_turn)
        await asyncio.to_thread(_stop_leftovers)
        directory = Path(tempfile.mkdtemp(prefix="trisam-tls-"))
        directory.chmod(0o755)
        servers = cls(directory, Authority(directory / "certs"), directory / "pg", directory / "rabbit", lock)
        for name in ("database", "broker"):
            servers.ca.server(name)
        try:
            await asyncio.to_thread(servers._start_postgres)
            await asyncio.to_thread(servers._start_rabbit)
            await servers._wait_until_both_answer(timeout=120)
        except BaseException:
            servers.stop()
            raise
        return servers

    def _start_postgres(self) -> None:
        postgres = pwd.getpwnam("postgres")
        self.pg_data.mkdir()
        os.chown(self.pg_data, postgres.pw_uid, postgres.pw_gid)
        as_postgres = ["runuser", "-u", "postgres", "--"]
        subprocess.run(
            [
                *as_postgres,
                str(PG_BIN / "initdb"),
                "-D",
                str(self.pg_data),
                "-U",
                "postgres",
                "--no-sync",
                "-A",
                "reject",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        for name, source in (
            ("server.crt", self.directory / "certs/database.pem"),
            ("server.key", self.directory / "certs/database.key"),
            ("root.crt", self.ca_file),
        ):
            target = self.pg_data / name
            shutil.copyfile(source, target)
            os.chown(target, postgres.pw_uid, postgres.pw_gid)
            target.chmod(0o600)
        with open(self.pg_data / "postgresql.conf", "a") as conf:
            conf.write(
                f"\nport = {PG_PORT}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.pg_data}'\n"
                "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\nssl_ca_file = 'root.crt'\n"
                "fsync = off\nmax_connections = 60\n"
            )
        # TLS only: no "host" or "local" line. The administrator is who its client certificate
        # says (cert); a service's own role (db.grant_service_role; no password in the tests)
        # needs a client certificate of this CA too (verify-ca: the run's certificates are made
        # for the administrator, not for each namespace's roles).
        (self.pg_data / "pg_hba.conf").write_text(
            "hostssl all postgres 127.0.0.1/32 cert\nhostssl all all 127.0.0.1/32 trust clientcert=verify-ca\n"
        )
        done = subprocess.run(
            [*as_postgres, str(PG_BIN / "pg_ctl"), "-D", str(self.pg_data), "-l", str(self.pg_data / "server.log")]
            + ["-w", "-t", "60", "start"],
            capture_output=True,
            text=True,
            timeout=90,
        )
        if done.returncode != 0:
            log = (self.pg_data / "server.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the TLS PostgreSQL did not start: {done.stderr.strip()}\n{log}")

    def _start_rabbit(self) -> None:
        d = self.rabbit_dir
        for sub in ("home", "conf.d", "mnesia", "log"):
            (d / sub).mkdir(parents=True)
        cookie = d / "home" / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(16))
        cookie.chmod(0o400)
        (d / "rabbitmq-env.conf").write_text("")
        (d / "advanced.config").write_text("[].\n")
        (d / "enabled_plugins").write_text("[rabbitmq_auth_mechanism_ssl].\n")
        certs = self.directory / "certs"
        (d / "rabbitmq.conf").write_text(
            "listeners.tcp = none\n"
            f"listeners.ssl.default = 127.0.0.1:{AMQPS_PORT}\n"
            f"ssl_options.cacertfile = {self.ca_file}\n"
            f"ssl_options.certfile = {certs / 'broker.pem'}\n"
            f"ssl_options.keyfile = {certs / 'broker.key'}\n"
            "ssl_options.verify = verify_peer\n"
            "ssl_options.fail_if_no_peer_cert = true\n"
            "auth_mechanisms.1 = PLAIN\n"
            "auth_mechanisms.2 = AMQPLAIN\n"
            "auth_mechanisms.3 = EXTERNAL\n"
            "ssl_cert_login_from = common_name\n"
        )
        log = open(d / "log" / "console.log", "wb")
        self.rabbit = subprocess.Popen(
            [str(RABBIT_BIN / "rabbitmq-server")],
            env=self._rabbit_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C of the test run does not reach the node directly
        )
        log.close()

    async def _wait_until_both_answer(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        problems: dict[str, str] = {}
        while time.monotonic() < deadline:
            if self.rabbit is not None and self.rabbit.poll() is not None:
                raise RuntimeError(f"the TLS RabbitMQ node exited:\n{self._rabbit_log()}")
            problems = {}
            try:
                conn = await asyncio.wait_for(asyncpg.connect(self.database_url()), 10)
                await conn.close()
            except Exception as exc:
                problems["PostgreSQL"] = f"{type(exc).__name__}: {exc}"
            try:
                amqp = await asyncio.wait_for(aio_pika.connect(self.amqp_url("guest", "guest")), 10)
                await amqp.close()
            except Exception as exc:
                problems["RabbitMQ"] = f"{type(exc).__name__}: {exc}"
            if not problems:
                return
            await asyncio.sleep(1)
        raise RuntimeError(
            f"the TLS servers did not answer within {timeout:.0f}s: {problems} (a server of a run that was "
            f"killed still on port {PG_PORT} or {AMQPS_PORT}?)\n{self._rabbit_log()}"
        )

    def _rabbit_log(self) -> str:
        logs = sorted((self.rabbit_dir / "log").glob("*.log"))
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in logs)

    def stop(self) -> None:
        if self.rabbit is not None and self.rabbit.poll() is None:
            try:
                self.rabbitmqctl(["stop"])
                self.rabbit.wait(60)
            except (RuntimeError, subprocess.SubprocessError):
                os.killpg(self.rabbit.pid, 9)
                self.rabbit.wait(10)
        if (self.pg_data / "postmaster.pid").exists():
            subprocess.run(
                ["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", str(self.pg_data)]
                + ["-m", "immediate", "-w", "stop"],
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(self.directory, ignore_errors=True)
        self.lock.close()  # the next run's turn
