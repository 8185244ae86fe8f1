"""The four services as separate processes, on free ports, logs kept as test artifacts."""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path

from tools.launcher import PROCESSES, SERVICES, ServiceProcesses

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.asynccontextmanager
async def running_system(settings, ready_within: float = 60.0, workspace: bool = False):
    """The four services (and the workspace, if asked) as processes, ready."""
    names = PROCESSES if workspace else SERVICES
    processes = ServiceProcesses(
        settings,
        services=names,
        ports={name: free_port() for name in names},
        log_dir=ARTIFACTS / settings.namespace,
        extra_env={"TRISAM_OUTBOX_POLL_SECONDS": "0.2"},
    )
    processes.start_all()
    try:
        seconds = await processes.wait_ready(timeout=ready_within)
        print(f"[e2e] {', '.join(names)} ready in {seconds:.1f}s")
        yield processes
    finally:
        processes.stop_all()
