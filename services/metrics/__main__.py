"""Metrics: the service, and its commands.

python -m services.metrics                       run the service
python -m services.metrics report 2026Q3 [--municipality M | --team T] [--public]
                           [--format html|csv|json] [--lang sv|en] [--out FILE]
                           [--user NAME] [--role board|analyst]
    the quarterly report: exact (the read is logged with the user and role), or the
    public edition with --public
python -m services.metrics edition 2026Q3 --reason "late recordings corrected"
    a new public edition of a quarter or year (a correction: editions are otherwise frozen)
python -m services.metrics rebuild               rebuild the projections from the event log
python -m services.metrics docs                  write the figure table of docs/metrics.md
"""

import argparse
import asyncio
import getpass
import json
import sys
from pathlib import Path

import asyncpg

from shared.platform.auth import Principal, Role
from shared.platform.clock import Clock
from shared.platform.config import Settings, load_settings
from shared.platform.db import prepare_database
from shared.platform.runtime import serve

from . import catalogue, domain, editions, exact, rebuild, report
from .app import spec
from .uow import MetricsUnitOfWork

DOCS = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
TABLE_START, TABLE_END = "<!-- figures:start -->", "<!-- figures:end -->"


async def _connect(settings: Settings) -> asyncpg.Connection:
    await prepare_database(settings.database_url, settings.database_name("metrics"), spec(settings).migrations)
    return await asyncpg.connect(settings.service_database_url("metrics"))


async def _report(args, settings: Settings) -> str:
    period = domain.parse_period(args.period)
    conn = await _connect(settings)
    try:
        async with conn.transaction():
            uow = MetricsUnitOfWork(conn)
            if args.public:
                result = await editions.published(uow, period, args.municipality)
            else:
                reader = Principal(user_id=args.user, party=None, role=Role(args.role), teams=frozenset())
                question = exact.Question(
                    period,
                    domain.Scope(args.municipality, (args.team,) if args.team else ()),
                    outcome_basis=args.outcomes,
                )
                result = await exact.read(uow, question, reader, "command")
    except editions.NoEdition:
        raise SystemExit(f"{period.label} has no public edition yet") from None
    except editions.ScopeUnknown as exc:
        raise SystemExit(str(exc)) from None
    finally:
        await conn.close()
    return {
        "html": lambda: report.render_html(result, args.lang),
        "csv": lambda: report.render_csv(result, args.lang),
        "json": lambda: json.dumps(result, ensure_ascii=False, indent=2, default=str),
    }[args.format]()


async def _edition(args, settings: Settings) -> list[tuple[str, int]]:
    period = domain.parse_period(args.period)
    conn = await _connect(settings)
    try:
        async with conn.transaction(isolation="repeatable_read"):
            now = Clock.from_settings(settings).now()
            return await editions.correct(
                MetricsUnitOfWork(conn),
                period,
                made_at=now,
                reason=args.reason,
                threshold=settings.suppression_threshold,
            )
    finally:
        await conn.close()


async def _rebuild(settings: Settings) -> int:
    conn = await _connect(settings)
    await conn.close()
    pool = await asyncpg.create_pool(settings.service_database_url("metrics"), min_size=1, max_size=1)
    try:
        return (await rebuild.rebuild(pool)).events
    finally:
        await pool.close()


def write_docs(path: Path = DOCS) -> bool:
    """Put the catalogue's figure table into docs/metrics.md; True if it changed."""
    text = path.read_text()
    start, end = text.index(TABLE_START) + len(TABLE_START), text.index(TABLE_END)
    fresh = text[:start] + "\n" + catalogue.docs_table() + text[end:]
    if fresh != text:
        path.write_text(fresh)
    return fresh != text


def main(argv: list[str]) -> None:
    if not argv:
        serve(spec)
        return
    parser = argparse.ArgumentParser(prog="python -m services.metrics")
    commands = parser.add_subparsers(dest="command", required=True)
    rep = commands.add_parser("report", help="the quarterly report of a period")
    rep.add_argument("period", help="2026Q3, 2026-09, 2026 or 2026-07-01..2026-09-30")
    where = rep.add_mutually_exclusive_group()
    where.add_argument("--municipality")
    where.add_argument("--team")
    rep.add_argument("--public", action="store_true", help="the public edition, not the exact figures")
    rep.add_argument("--outcomes", choices=domain.OUTCOME_BASES, default="cohort")
    rep.add_argument("--format", choices=["html", "csv", "json"], default="html")
    rep.add_argument("--lang", choices=["sv", "en"], default="sv")
    rep.add_argument("--out", help="write to this file instead of standard output")
    rep.add_argument("--user", default=getpass.getuser(), help="who reads (written to the access log)")
    rep.add_argument("--role", choices=["board", "analyst"], default="analyst")
    ed = commands.add_parser("edition", help="a new public edition of a quarter or a year (a correction)")
    ed.add_argument("period", help="2026Q3 or 2026")
    ed.add_argument("--reason", required=True, help="why: it is published with the edition")
    commands.add_parser("rebuild", help="rebuild the projections from the event log")
    commands.add_parser("docs", help="write the figure table of docs/metrics.md from the catalogue")
    args = parser.parse_args(argv)
    if args.command == "docs":
        print("docs/metrics.md " + ("updated" if write_docs() else "already up to date"))
        return
    settings = load_settings()
    if args.command in ("report", "edition"):
        try:
            period = domain.parse_period(args.period)
        except domain.BadPeriod as exc:
            parser.error(str(exc))
        if (args.command == "edition" or args.public) and period.kind not in ("quarter", "year"):
            parser.error("public editions are of quarters and years (2026Q3, 2026)")
    if args.command == "report":
        text = asyncio.run(_report(args, settings))
        if args.out:
            Path(args.out).write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text)
    elif args.command == "edition":
        for label, number in asyncio.run(_edition(args, settings)):
            print(f"edition {number} of {label} made")
    else:
        print(f"projections rebuilt from {asyncio.run(_rebuild(settings))} events of the log")


main(sys.argv[1:])
