"""``python -m simulator simulate``: fill a running platform with realistic traffic.

With ``make run`` running (namespace ``trisam``), e.g.::

    .venv/bin/python -m simulator simulate --referrals 500 --per-second 20

The agencies log in as the development broker users of the namespace (``<ns>-af`` with
password ``<ns>-af-dev``, made by ``make run``); the coordinators call the meeting service.
Dates are the platform's: run the services with a fast development clock
(``TRISAM_DEV_CLOCK_SPEED``, see ``make demo``) to see meetings held and follow-ups fall due.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shared.contracts.vocabulary import Party
from shared.platform.config import DEFAULT_HTTP_PORTS, Settings
from shared.platform.teams import DEFAULT_TEAMS_FILE

from .profile import Profile
from .simulation import Simulation

app = typer.Typer(help="The Trisam agency simulator.", no_args_is_help=True, add_completion=False)
console = Console()


@app.callback()
def main() -> None:
    """Plays the four agencies and the teams' coordinators against a running platform."""


def dev_agencies(settings: Settings) -> dict[Party, tuple[str, str]]:
    """Each agency's AMQP URL and user: the namespace's development users."""
    parsed = urlparse(settings.amqp_url)
    host = parsed.netloc.rsplit("@", 1)[-1]
    agencies = {}
    for party in Party:
        user = f"{settings.namespace}-{party.value.lower()}"
        agencies[party] = (urlunparse(parsed._replace(netloc=f"{user}:{user}-dev@{host}")), user)
    return agencies


def county_teams(count: int | None = None) -> list[str]:
    teams = [t["team_id"] for t in json.loads(Path(DEFAULT_TEAMS_FILE).read_text("utf-8"))["teams"]]
    return teams[:count] if count else teams


def party_mix(text: str) -> dict[Party, float]:
    """'AF=25,FK=35,KOMMUN=20,REGION=20' -> weights."""
    try:
        mix = {Party(k.strip().upper()): float(v) for k, v in (p.split("=") for p in text.split(","))}
    except ValueError as exc:
        raise typer.BadParameter(f"expected e.g. AF=25,FK=35,KOMMUN=20,REGION=20 ({exc})") from None
    if not any(mix.values()) or min(mix.values()) < 0:
        raise typer.BadParameter("weights must be >= 0 and not all 0")
    return mix


def summary_table(tally) -> Table:
    table = Table(title="What the simulator did and was answered")
    table.add_column("figure")
    table.add_column("count", justify="right")
    for name, value in tally.summary().items():
        table.add_row(name, str(value))
    return table


async def run_simulation(
    simulation: Simulation, referrals: int, per_second: float | None, linger: float, quiet: bool = False
) -> None:
    await simulation.start()
    try:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=quiet,
        ) as progress:
            task = progress.add_task("referrals", total=referrals)
            await simulation.refer(
                referrals,
                per_second=per_second,
                progress=lambda sent: progress.update(
                    task, completed=sent, description=f"referrals (platform date {simulation.today()})"
                ),
            )
            settle = progress.add_task("meetings and follow-ups", total=None)
            for _ in range(int(linger * 10)):
                progress.update(
                    settle,
                    description=f"meetings and follow-ups (platform date "
                    f"{simulation.today()}, {len(simulation.tally.consulted)} consulted)",
                )
                await asyncio.sleep(0.1)
    finally:
        await simulation.stop()


@app.command()
def simulate(
    referrals: int = typer.Option(1000, min=1, help="How many referrals to submit."),
    per_second: float = typer.Option(
        0.0, min=0, help="Referrals per real second; 0: the weekly rate in the platform's time."
    ),
    per_week: float = typer.Option(25.0, min=0.1, help="Referrals per (platform) week, all teams."),
    teams: int = typer.Option(0, min=0, help="Use the county's first N teams (0: all)."),
    parties: str = typer.Option("AF=25,FK=35,KOMMUN=20,REGION=20", help="Mix of referring parties."),
    women: float = typer.Option(0.6, min=0, max=1, help="Share of women."),
    missing_consent: float = typer.Option(0.1, min=0, max=1, help="Share referred without FK's consent."),
    invalid: float = typer.Option(0.02, min=0, max=1, help="Share of referrals the intake refuses."),
    cancellations: float = typer.Option(0.05, min=0, max=1, help="Share of meetings cancelled."),
    attendance: float = typer.Option(0.85, min=0, max=1, help="Share of individuals attending."),
    response: float = typer.Option(0.85, min=0, max=1, help="Share of follow-ups answered."),
    self_sufficient: float = typer.Option(0.3, min=0, max=1, help="Share self-sufficient at six months."),
    linger: float = typer.Option(
        30.0, min=0, help="Seconds to go on coordinating and answering after the last referral."
    ),
    meeting_url: str = typer.Option(
        f"http://127.0.0.1:{DEFAULT_HTTP_PORTS['meeting']}", help="The meeting service (several: comma-separated)."
    ),
    seed: int = typer.Option(1, help="Random seed: the same seed plays the same traffic."),
) -> None:
    """Submit referrals as the agencies, hold the meetings as the coordinators, answer the
    follow-ups; print what was done and answered."""
    settings = Settings()
    profile = Profile(
        referrals_per_week=per_week,
        party_mix=party_mix(parties),
        women_share=women,
        missing_fk_consent=missing_consent,
        invalid_referrals=invalid,
        cancellations=cancellations,
        attendance=attendance,
        followup_response=response,
        self_sufficient_at_six_months=self_sufficient,
    )
    simulation = Simulation(
        settings,
        agencies=dev_agencies(settings),
        meeting_urls=meeting_url.split(","),
        teams=county_teams(teams or None),
        profile=profile,
        seed=seed,
    )
    asyncio.run(run_simulation(simulation, referrals, per_second or None, linger))
    console.print(summary_table(simulation.tally))
