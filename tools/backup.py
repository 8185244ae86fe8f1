"""Back up the four services' databases, and restore them (``make backup``, ``make restore``).

A backup is one ``pg_dump`` (custom format) per service database, taken one after another, and
a ``manifest.json`` (namespace, when, the migrations each database had). The broker is not
backed up: what it held at that moment (events published but not yet consumed) exists only
there. So a restore, into a fresh namespace or over a lost one, marks every event the
services' outboxes sent in the ``--resend-hours`` before the backup began as not sent: each
relay publishes them again once its service starts, and every consumer's inbox skips those it
had already applied (an agency skips answers it already has by their ``event_id``). Events
published and consumed long before the backup are not sent again.

The services must not be running on the namespace being restored. After a restore, start them
(``TRISAM_NAMESPACE=<namespace> make run``): they declare the broker's topology and the
outboxes resume. ``docs/operations.md`` (Backup and restore) says when and how.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from shared.platform import db
from shared.platform.config import Settings, load_settings, with_database

SERVICES = ("referral", "meeting", "followup", "metrics")
MANIFEST = "manifest.json"
# Events sent within this long before a backup began are sent again after a restore
RESEND_HOURS = 24.0


def _libpq(url: str) -> list[str]:
    """pg_dump/pg_restore take the same connection URL (libpq understands it)."""
    return ["--dbname", url]


async def backup(settings: Settings, directory: Path) -> dict:
    """Dump every service's database into ``directory`` (created; must be empty)."""
    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.iterdir()):
        raise SystemExit(f"{directory} is not empty: a backup goes into a directory of its own")
    began = datetime.now(UTC)
    manifest: dict = {"namespace": settings.namespace, "began_at": began.isoformat(), "databases": {}}
    for service in SERVICES:
        url = settings.service_database_url(service)
        conn = await asyncpg.connect(url)
        try:
            migrations = [
                f"{r['component']}/{r['name']}"
                for r in await conn.fetch("SELECT component, name FROM schema_migrations ORDER BY component, version")
            ]
        finally:
            await conn.close()
        target = directory / f"{service}.dump"
        _run(["pg_dump", "--format=custom", "--no-owner", "--no-privileges", "--file", str(target), *_libpq(url)])
        manifest["databases"][service] = {"file": target.name, "migrations": migrations}
    manifest["finished_at"] = datetime.now(UTC).isoformat()
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


async def restore(settings: Settings, directory: Path, *, resend_hours: float = RESEND_HOURS) -> dict[str, int]:
    """Restore a backup into ``settings.namespace`` (its databases must not exist yet), give
    each service's role its rights, and mark the events sent shortly before the backup as not
    sent. For each service, how many events its outbox will send again."""
    manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    since = datetime.fromisoformat(manifest["began_at"]) - timedelta(hours=resend_hours)
    admin = await asyncpg.connect(settings.database_url)
    try:
        for service in SERVICES:
            name = settings.database_name(service)
            if await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                raise SystemExit(
                    f"database {name} exists: restore into a fresh namespace, or drop it first "
                    f"(the services of namespace {settings.namespace!r} must be stopped)"
                )
    finally:
        await admin.close()
    resent: dict[str, int] = {}
    for service in SERVICES:
        name = settings.database_name(service)
        await db.ensure_database(settings.database_url, name)
        url = with_database(settings.database_url, name)
        dump = directory / manifest["databases"][service]["file"]
        _run(["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error", *_libpq(url), str(dump)])
        conn = await asyncpg.connect(url)
        try:
            password = settings.database_role_password
            await db.grant_service_role(conn, name, password.get_secret_value() if password else None)
            status = await conn.execute(
                "UPDATE outbox SET sent_at = NULL, attempts = 0, next_attempt_at = now() WHERE sent_at >= $1", since
            )
            resent[service] = int(status.split()[-1])
        finally:
            await conn.close()
    return resent


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{command[0]} failed ({done.returncode}): {done.stderr.strip()[:1000]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.backup", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    dump = commands.add_parser("dump", help="dump the namespace's four databases (TRISAM_NAMESPACE)")
    dump.add_argument("directory", type=Path, help="a new or empty directory")
    load = commands.add_parser("restore", help="restore a backup into the namespace (TRISAM_NAMESPACE)")
    load.add_argument("directory", type=Path)
    load.add_argument(
        "--resend-hours",
        type=float,
        default=RESEND_HOURS,
        help="events sent this long before the backup are sent again",
    )
    args = parser.parse_args(argv)
    settings = load_settings()
    if args.command == "dump":
        manifest = asyncio.run(backup(settings, args.directory))
        print(f"backup of namespace {manifest['namespace']!r} in {args.directory}", file=sys.stderr)
    else:
        resent = asyncio.run(restore(settings, args.directory, resend_hours=args.resend_hours))
        print(
            f"restored into namespace {settings.namespace!r}; events to send again: {resent}. Start the services "
            f"on it (TRISAM_NAMESPACE={settings.namespace} make run): their outboxes resume.",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
