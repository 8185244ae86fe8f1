"""Run the four services as separate processes, as `make run` does, for end-to-end tests."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from shared.config import Settings

SERVICES = ("referral", "meeting", "followup", "metrics")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServiceProcesses:
    def __init__(self, settings: Settings, services=SERVICES):
        self.settings = settings
        self.services = services
        self.ports = {name: free_port() for name in services}
        self.procs: dict[str, subprocess.Popen] = {}
        self.log_dir = ARTIFACTS / settings.namespace
        self.log_dir.mkdir(parents=True, exist_ok=True)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def start(self, service: str) -> None:
        env = {**os.environ,
               "TRISAM_AMQP_URL": self.settings.amqp_url,
               "TRISAM_DATABASE_URL": self.settings.database_url,
               "TRISAM_NAMESPACE": self.settings.namespace,
               "TRISAM_HTTP_PORT": str(self.ports[service]),
               "TRISAM_OUTBOX_POLL_SECONDS": "0.2"}
        log = open(self.log_dir / f"{service}.log", "ab")
        self.procs[service] = subprocess.Popen(
            [sys.executable, "-m", f"services.{service}"], env=env, stdout=log,
            stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[2])

    def start_all(self) -> None:
        for service in self.services:
            self.start(service)

    def kill(self, service: str) -> None:
        self.procs[service].send_signal(signal.SIGKILL)
        self.procs[service].wait(10)

    async def wait_ready(self, timeout: float = 60.0) -> float:
        started = time.monotonic()
        async with httpx.AsyncClient(timeout=2) as client:
            for service in self.services:
                while True:
                    proc = self.procs[service]
                    if proc.poll() is not None:
                        raise AssertionError(f"{service} exited with {proc.returncode}; see "
                                             f"{self.log_dir / (service + '.log')}")
                    try:
                        if (await client.get(self.url(service) + "/health/ready")).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    if time.monotonic() - started > timeout:
                        raise AssertionError(f"{service} not ready within {timeout}s")
                    await asyncio.sleep(0.2)
        return time.monotonic() - started

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.log_dir.glob("*.log"))

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
