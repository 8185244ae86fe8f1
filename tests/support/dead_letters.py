"""The operators' dead-letter tool, run as they run it: ``python -m tools.dead_letters`` in a
process of its own, on a test's namespace."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


async def dead_letters(settings, *args: str, who: str = "op-anna") -> tuple[int, str]:
    """The operator's tool, in a process of its own, on the test's namespace."""
    env = {
        **os.environ,
        "TRISAM_NAMESPACE": settings.namespace,
        "TRISAM_AMQP_URL": settings.amqp_url,
        "TRISAM_DATABASE_URL": settings.database_url,
        "USER": who,
        "COLUMNS": "250",  # rich's tables: wide enough for whole ids
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tools.dead_letters",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, output.decode()
