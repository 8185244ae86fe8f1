"""Dead-letter operations for operators: ``python -m tools.dead_letters --help`` (or
``make dead-letters ARGS="list metrics"``). The runbook: docs/operations.md, "Dead letters".

    list SERVICE [--code CODE]                 what waits in the service's dead-letter queue
    show SERVICE ID                            one dead letter: its headers and body
    replay SERVICE (ID | --code CODE)          back to the service, after the fix (recorded)
    discard SERVICE (ID | --code CODE) --reason TEXT   gone for good (recorded, with the reason)
    history SERVICE                            the replays and discards recorded

The broker, database and namespace come from the usual settings (TRISAM_AMQP_URL,
TRISAM_DATABASE_URL, TRISAM_NAMESPACE), or the options. Nothing is lost by looking: every
message not replayed or discarded goes back to the queue (shared/platform/dead_letters.py).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from shared.platform.config import Settings, load_settings
from shared.platform.dead_letters import (
    DeadLetter,
    DeadLetterError,
    DeadLetterQueue,
    connect_service_database,
    history,
    masked,
    not_replayable,
)
from shared.platform.topology import SUBSCRIPTIONS, Topology

app = typer.Typer(
    help="Dead letters of a Trisam service: list, show, replay after a fix, discard with a reason.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
errors = Console(stderr=True)
T = TypeVar("T")
SHOWN_BODY_CHARACTERS = 20_000


@dataclass(frozen=True)
class Target:
    settings: Settings
    service: str

    def queue(self) -> DeadLetterQueue:
        return DeadLetterQueue(self.settings.amqp_url, Topology.of(self.settings), self.service)

    async def database(self) -> asyncpg.Connection:
        return await connect_service_database(self.settings.database_url, self.settings.database_name(self.service))


@app.callback()
def main(
    ctx: typer.Context,
    namespace: str = typer.Option(None, help="Namespace of the system (default: TRISAM_NAMESPACE, or trisam)."),
    amqp_url: str = typer.Option(None, help="RabbitMQ (default: TRISAM_AMQP_URL)."),
    database_url: str = typer.Option(None, help="PostgreSQL server (default: TRISAM_DATABASE_URL)."),
) -> None:
    overrides = {"namespace": namespace, "amqp_url": amqp_url, "database_url": database_url}
    settings = load_settings()
    ctx.obj = settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})


def _target(ctx: typer.Context, service: str) -> Target:
    if service not in SUBSCRIPTIONS:
        raise typer.BadParameter(f"{service!r}: one of {', '.join(SUBSCRIPTIONS)}", param_hint="SERVICE")
    return Target(ctx.obj, service)


def _run(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run an operation; a DeadLetterError is said plainly, with exit code 1."""
    try:
        return asyncio.run(work())
    except DeadLetterError as exc:
        errors.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None


def _who(who: str) -> str:
    if not who.strip():
        raise typer.BadParameter("say who you are: --who NAME (or set USER)", param_hint="--who")
    return who.strip()


SERVICE = typer.Argument(..., help="referral, meeting, followup or metrics.")
CODE = typer.Option(None, "--code", help="All dead letters with this reason code (e.g. handler_error).")
WHO = typer.Option(os.environ.get("USER", ""), "--who", help="Who does this, for the record (default: $USER).")


@app.command("list")
def list_letters(ctx: typer.Context, service: str = SERVICE, code: str = CODE) -> None:
    """What waits in the service's dead-letter queue, oldest first."""
    target = _target(ctx, service)

    async def work() -> None:
        async with target.queue() as queue:
            letters = [letter for letter in queue.letters if code is None or letter.reason == code]
            _print_table(queue.queue_name, letters, queue.more_waiting)

    _run(work)


@app.command()
def show(ctx: typer.Context, service: str = SERVICE, letter_id: str = typer.Argument(..., metavar="ID")) -> None:
    """One dead letter: its headers and its body (an agency's command stays redacted)."""
    target = _target(ctx, service)

    async def work() -> None:
        async with target.queue() as queue:
            for letter in queue.select(letter_id):
                _print_letter(letter)

    _run(work)


@app.command()
def replay(
    ctx: typer.Context,
    service: str = SERVICE,
    letter_id: str = typer.Argument(None, metavar="[ID]", help="The dead letter (its id, or the start of it)."),
    code: str = CODE,
    who: str = WHO,
    reason: str = typer.Option("replayed after the fix", "--reason", help="Why, for the record."),
) -> None:
    """Send dead letters back to the service, after the fix (recorded).

    They go to the service's own queue, not to the other services bound to the same events.
    Each keeps its event id: the service applies it once, however often it is replayed. An
    agency's command cannot be replayed (its content was redacted); its agency was told."""
    target, who = _target(ctx, service), _who(who)

    async def work() -> None:
        async with target.queue() as queue:
            letters = queue.select(letter_id, reason=code)
            db = await target.database()
            try:
                refused = await queue.replay(letters, db, who=who, why=reason)
            finally:
                await db.close()
        replayed = len(letters) - len(refused)
        console.print(f"replayed {replayed} dead letter(s) to {target.settings.namespace}.{service}")
        if refused:
            raise DeadLetterError(not_replayable(refused))

    _run(work)


@app.command()
def discard(
    ctx: typer.Context,
    service: str = SERVICE,
    letter_id: str = typer.Argument(None, metavar="[ID]", help="The dead letter (its id, or the start of it)."),
    code: str = CODE,
    who: str = WHO,
    reason: str = typer.Option(..., "--reason", help="Why it may go (required; recorded)."),
) -> None:
    """Remove dead letters for good, recorded with who and why."""
    target, who = _target(ctx, service), _who(who)
    if not reason.strip():
        raise typer.BadParameter("write why it may go", param_hint="--reason")

    async def work() -> None:
        async with target.queue() as queue:
            letters = queue.select(letter_id, reason=code)
            db = await target.database()
            try:
                await queue.discard(letters, db, who=who, why=reason)
            finally:
                await db.close()
        console.print(f"discarded {len(letters)} dead letter(s) of {service}, recorded")

    _run(work)


@app.command("history")
def show_history(
    ctx: typer.Context, service: str = SERVICE, limit: int = typer.Option(50, min=1, help="How many, newest first.")
) -> None:
    """The replays and discards recorded in the service's database."""
    target = _target(ctx, service)

    async def work() -> None:
        db = await target.database()
        try:
            rows = await history(db, limit)
        finally:
            await db.close()
        table = Table(title=f"dead-letter actions of {service}")
        for column in ("when", "action", "id", "type", "case_ref", "reason", "who", "why"):
            table.add_column(column)
        for row in rows:
            table.add_row(
                *_cells(
                    row["acted_at"].isoformat(timespec="seconds"),
                    row["action"],
                    row["message_id"],
                    row["event_type"],
                    row["case_ref"],
                    row["reason"],
                    row["who"],
                    row["why"],
                )
            )
        console.print(table)

    _run(work)


def _print_table(queue_name: str, letters: list[DeadLetter], more_waiting: bool) -> None:
    table = Table(title=f"{queue_name}: {len(letters)} dead letter(s)")
    for column in ("id", "type", "case_ref", "reason", "detail", "dead-lettered at", "replayable"):
        table.add_column(column, overflow="fold")
    for letter in letters:
        table.add_row(
            *_cells(
                letter.id,
                letter.event_type or "?",
                letter.case_ref,
                letter.reason,
                letter.detail,
                letter.dead_lettered_at.isoformat(timespec="seconds") if letter.dead_lettered_at else "?",
                "yes" if letter.replayable else "no (agency command, redacted)",
            )
        )
    console.print(table)
    if more_waiting:
        console.print("[yellow]more are waiting: the first 10,000 are shown; act on these, then list again[/yellow]")


def _cells(*values: str | None) -> list[str]:
    """Table cells as printed: nothing personnummer-shaped, no rich markup from the message."""
    return [escape(masked(value or "")) for value in values]


def _print_letter(letter: DeadLetter) -> None:
    title = " ".join(_cells(letter.id, letter.event_type or "?", "reason", letter.reason))
    console.print(f"[bold]{title}[/bold]")
    message = letter.message
    properties = {
        "message_id": message.message_id,
        "type": message.type,
        "correlation_id": message.correlation_id,
        "content_type": message.content_type,
        "timestamp": message.timestamp.isoformat() if message.timestamp else None,
    }
    console.print("properties:", escape(masked(json.dumps(properties, indent=2))))
    console.print("headers:", escape(masked(json.dumps(letter.headers, indent=2, sort_keys=True, default=str))))
    try:
        body = json.dumps(json.loads(letter.body), indent=2, ensure_ascii=False)
    except (ValueError, RecursionError):
        body = repr(letter.body)
    if len(body) > SHOWN_BODY_CHARACTERS:
        body = body[:SHOWN_BODY_CHARACTERS] + f" … ({len(letter.body)} bytes in all)"
    console.print("body:", escape(masked(body)))
    if not letter.replayable:
        console.print("[yellow]an agency's command, redacted: it cannot be replayed; its agency was told[/yellow]")


if __name__ == "__main__":
    app()
