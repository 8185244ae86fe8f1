"""PostgreSQL helpers: create a service's own database, open a pool, apply numbered migrations.

Migrations are plain SQL files named ``NNN_description.sql``. The shared ones (outbox, inbox)
are applied first as component ``shared``, then the service's own. Each file runs in its own
transaction and is recorded in ``schema_migrations``; an advisory lock keeps two instances that
start together from applying the same file twice.
"""

from __future__ import annotations

import contextlib
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


async def copy_privileges(conn: Conn, source: str, target: str) -> None:
    """Give ``target`` the privileges others hold on ``source`` (a table built to replace
    another: the service's role keeps exactly what it had, e.g. no DELETE on a log)."""
    grants = await conn.fetch(
        """SELECT grantee, string_agg(privilege_type, ', ') AS privileges
           FROM information_schema.role_table_grants
           WHERE table_schema = 'public' AND table_name = $1 AND grantee <> current_user
           GROUP BY grantee""",
        source,
    )
    for grant in grants:
        await conn.execute(f'GRANT {grant["privileges"]} ON {target} TO "{grant["grantee"]}"')


async def drop_database(conn: asyncpg.Connection, name: str) -> None:
    """A service's database, messages and all, and its role (whose grants went with the
    database), on a connection to another database of the server."""
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.execute(f'DROP ROLE IF EXISTS "{name}"')


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


async def prepare_database(
    server_url: str, name: str, service_migrations: Path, role_password: str | None = None
) -> list[str]:
    """Create the service's database if needed, bring its schema up to date (as the server
    URL's user, who owns the tables) and give the service's own role what it may do."""
    await ensure_database(server_url, name)
    conn = await asyncpg.connect(with_database(server_url, name))
    try:
        applied = await migrate(conn, "shared", SHARED_MIGRATIONS)
        applied += await migrate(conn, "service", service_migrations)
        await grant_service_role(conn, name, role_password)
        return applied
    finally:
        await conn.close()


async def grant_service_role(conn: asyncpg.Connection, database: str, password: str | None = None) -> None:
    """The role a service runs as, named like its database: it may connect to that database
    only (no other role but the owner may), read and write its tables, and only read and add
    to its append-only ones (those with an ``*_append_only`` trigger: audit and access logs).
    It owns nothing, so it can neither drop a trigger nor alter a table."""
    role = database
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
            with contextlib.suppress(asyncpg.DuplicateObjectError, asyncpg.UniqueViolationError):
                await conn.execute(f'CREATE ROLE "{role}" LOGIN')
        if password is not None:  # (None: leave it as it is, e.g. when an operator tool migrates)
            # a password cannot be a bind parameter: quoted by the server's format %L
            alter = await conn.fetchval(
                "SELECT format('ALTER ROLE %I PASSWORD %L', $1::text, $2::text)", role, password
            )
            await conn.execute(alter)
        append_only = [
            r["name"]
            for r in await conn.fetch(
                r"""SELECT DISTINCT format('%I', c.relname) AS name FROM pg_trigger t
                   JOIN pg_class c ON c.oid = t.tgrelid
                   WHERE NOT t.tgisinternal AND t.tgname LIKE '%\_append\_only'"""
            )
        ]
        statements = [
            f'REVOKE ALL ON DATABASE "{database}" FROM PUBLIC',
            f'GRANT CONNECT, TEMPORARY ON DATABASE "{database}" TO "{role}"',
            f'GRANT USAGE ON SCHEMA public TO "{role}"',
            f'GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA public TO "{role}"',
            f'GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO "{role}"',
            f'REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON schema_migrations FROM "{role}"',
        ]
        if append_only:
            statements.append(f'REVOKE UPDATE, DELETE, TRUNCATE ON {", ".join(append_only)} FROM "{role}"')
        async with conn.transaction():
            for statement in statements:
                await conn.execute(statement)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
