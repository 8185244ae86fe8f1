"""Metrics: the service, and its commands.

    python -m services.metrics                       run the service
    python -m services.metrics report 2026Q3 [--format html|csv|json] [--lang sv|en] [--out FILE]
    python -m services.metrics rebuild               rebuild the projections from the event log
"""

import argparse
import asyncio
import sys

import asyncpg

from shared.config import Settings
from shared.db import prepare_database
from shared.runtime import serve

from . import domain, figures, projections, publication, report, store
from .app import spec


async def _pool(settings: Settings) -> asyncpg.Pool:
    await prepare_database(settings.database_url, settings.database_name("metrics"),
                           spec(settings).migrations)
    return await asyncpg.create_pool(settings.service_database_url("metrics"), min_size=1, max_size=2)


async def _report(args) -> str:
    settings = Settings()
    pool = await _pool(settings)
    try:
        period = domain.published_period(domain.parse_period(args.period))
        async with pool.acquire() as conn:  # as published; a year not yet published, afresh
            found = await store.published_figures(conn, period.label, publication.ALL)
            if found is None:
                found = (await figures.publish_year(conn, period.start.year, settings.suppression_threshold,
                                                    await store.published_counts(conn, period.start.year))
                         ).figures[(period.label, publication.ALL)]
    finally:
        await pool.close()
    built = {"filter": {"period": period.label, "from": period.start.isoformat(), "to": period.end.isoformat(),
                        "team_id": None, "municipality": None},
             "suppression_threshold": settings.suppression_threshold,
             "figures": found}
    return {"html": lambda: report.render_html(built, args.lang), "csv": lambda: report.render_csv(built),
            "json": lambda: report.render_json(built)}[args.format]()


async def _rebuild() -> int:
    pool = await _pool(Settings())
    try:
        return await projections.rebuild(pool)
    finally:
        await pool.close()


def main(argv: list[str]) -> None:
    if not argv:
        serve(spec)
        return
    parser = argparse.ArgumentParser(prog="python -m services.metrics")
    commands = parser.add_subparsers(dest="command", required=True)
    rep = commands.add_parser("report", help="the quarterly report of a period")
    rep.add_argument("period", help="2026Q3, 2026-09 or 2026")
    rep.add_argument("--format", choices=["html", "csv", "json"], default="html")
    rep.add_argument("--lang", choices=["sv", "en"], default="sv")
    rep.add_argument("--out", help="write to this file instead of standard output")
    commands.add_parser("rebuild", help="rebuild the projections from the event log")
    args = parser.parse_args(argv)
    if args.command == "report":
        try:
            if domain.published_period(domain.parse_period(args.period)) is None:
                parser.error("a report is of a month, a quarter or a year (2026Q3, 2026-09, 2026)")
        except domain.BadPeriod as exc:
            parser.error(str(exc))
        text = asyncio.run(_report(args))
        if args.out:
            with open(args.out, "w", encoding="utf-8") as out:
                out.write(text)
        else:
            sys.stdout.write(text)
    else:
        print(f"replayed {asyncio.run(_rebuild())} events into the projections")


main(sys.argv[1:])
