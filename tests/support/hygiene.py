"""Leftovers of test runs that died (killed, timed out) are removed by the next run.

Each run writes its prefix and process id to a marker file; at start, every test database of a
prefix whose process is gone is dropped, with its namespaces' queues and exchanges and its agency
users. (Hundreds of stale quorum queues make a broker restart slow.)
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import asyncpg

from shared.platform import db
from shared.platform.topology import Topology
from tests.support import broker as amqp

MARKERS = Path(tempfile.gettempdir()) / "trisam-test-runs"
_TEST_DB = re.compile(r"^(t[0-9a-f]{6})_(\d+)_[a-z]+$")


def mark_alive(prefix: str) -> None:
    MARKERS.mkdir(exist_ok=True)
    (MARKERS / prefix).write_text(str(os.getpid()))


def unmark(prefix: str) -> None:
    (MARKERS / prefix).unlink(missing_ok=True)


def _alive(prefix: str) -> bool:
    try:
        os.kill(int((MARKERS / prefix).read_text()), 0)
        return True
    except (OSError, ValueError):
        return False


async def remove_dead_runs(infra, own_prefix: str, delete_users=None) -> list[str]:
    conn = await asyncpg.connect(infra.database_url)
    try:
        names = [
            r["datname"] for r in await conn.fetch("SELECT datname FROM pg_database WHERE datname ~ '^t[0-9a-f]{6}_'")
        ]
        dead: dict[str, set[str]] = {}
        for name in names:
            match = _TEST_DB.match(name)
            if match and match.group(1) != own_prefix and not _alive(match.group(1)):
                dead.setdefault(match.group(1), set()).add(f"{match.group(1)}_{match.group(2)}")
        for prefix, namespaces in dead.items():
            for ns in namespaces:
                topology = Topology(ns)
                await amqp.delete_topology(
                    infra.amqp_url, topology.all_queue_names() + [f"{ns}.tap"], topology.all_exchange_names()
                )
            for name in names:
                if name.startswith(prefix + "_"):
                    await db.drop_database(conn, name)
            if delete_users:
                await delete_users(prefix)
            unmark(prefix)
        return sorted(dead)
    finally:
        await conn.close()
