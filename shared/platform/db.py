"""PostgreSQL helpers: create a service's own database, open a pool, apply numbered migrations.

Migrations are plain SQL files named ``NNN_description.sql``. The shared ones (outbox, inbox)
are applied first as component ``shared``, then the service's own. Each file runs in its own
transaction and is recorded in ``schema_migrations``; an advisory lock keeps two instances that
start together from applying the same file twice.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import asyncpg

from shared.platform.config import with_database

SHARED_MIGRATIONS = Path(__file__).parent / "migrations"
_MIGRATION_FILE = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


class PooledConnection(asyncpg.Connection):
    """A pooled connection that is not reset on release. The services set nothing for a session
    (no SET, no session-level advisory lock; the relay's LISTEN is on a connection it removes its
    listener from itself, which UNLISTENs), so asyncpg's reset query (``pg_advisory_unlock_all();
    CLOSE ALL; UNLISTEN *; RESET ALL``) would only cost a round trip on every release. An open
    transaction is still rolled back on release by asyncpg."""

    # Statements this process's pooled connections sent (each a round trip to the server; a
    # transaction's BEGIN and COMMIT count too): the benchmark reads it per referral from
    # /metrics (``trisam_db_round_trips``).
    round_trips = 0
    # Transactions committed: explicit COMMITs and statements sent outside a transaction.
    commits = 0

    def get_reset_query(self) -> str:
        return ""

    def _count(self, query: str = "") -> None:
        PooledConnection.round_trips += 1
        if not self.is_in_transaction() and not query.startswith("BEGIN") or query.startswith("COMMIT"):
            PooledConnection.commits += 1

    async def _execute(self, query: str, *args: Any, **kwargs: Any) -> Any:  # fetch…, execute with arguments
        self._count(query)
        return await super()._execute(query, *args, **kwargs)  # type: ignore[misc]  # private, not in the stubs

    async def _executemany(self, query: str, *args: Any, **kwargs: Any) -> Any:
        self._count(query)
        return await super()._executemany(query, *args, **kwargs)  # type: ignore[misc]  # private, not in the stubs

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:  # noqa: ASYNC109 (asyncpg's own signature)
        if not args:  # (with arguments it goes through _execute)
            self._count(query)
        return await super().execute(query, *args, timeout=timeout)


_MIGRATION_LOCK = 7_246_001  # arbitrary advisory lock key for migrations

# A connection of its own (asyncpg.connect) or one taken from a pool (pool.acquire()): what the
# unit of work, the outbox and the consent helpers run their statements on.
Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


async def ensure_database(server_url: str, name: str) -> None:
    """Create the database if it does not exist (safe when several processes race)."""
    conn = await asyncpg.connect(server_url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
            except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
                pass
    finally:
        await conn.close()


async def drop_database(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def migration_files(directory: Path) -> list[tuple[int, Path]]:
    files = []
    for path in sorted(directory.glob("*.sql")):
        match = _MIGRATION_FILE.match(path.name)
        if not match:
            raise RuntimeError(f"migration file name not of the form NNN_name.sql: {path}")
        files.append((int(match.group(1)), path))
    versions = [v for v, _ in files]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a number in {directory}")
    return files


async def migrate(conn: asyncpg.Connection, component: str, directory: Path) -> list[str]:
    """Apply the component's pending migrations; returns the names applied."""
    applied_now = []
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   component text NOT NULL,
                   version int NOT NULL,
                   name text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now(),
                   PRIMARY KEY (component, version))"""
        )
        done = {
            r["version"]
            for r in await conn.fetch("SELECT version FROM schema_migrations WHERE component = $1", component)
        }
        for version, path in migration_files(directory):
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(path.read_text())
                await conn.execute(
                    "INSERT INTO schema_migrations (component, version, name) VALUES ($1, $2, $3)",
                    component,
                    version,
                    path.name,
                )
            applied_now.append(f"{component}/{path.name}")
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    return applied_now


async def prepare_database(server_url: str, name: str, service_migrations: Path) -> list[str]:
    """Create the service's database if needed and bring its schema up to date."""
    await ensure_database(server_url, name)
    conn = await asyncpg.connect(with_database(server_url, name))
    try:
        applied = await migrate(conn, "shared", SHARED_MIGRATIONS)
        applied += await migrate(conn, "service", service_migrations)
        return applied
    finally:
        await conn.close()
