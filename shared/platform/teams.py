"""The registry of Trisam teams, loaded from a versioned JSON file (``deploy/teams.json`` by
default, ``TRISAM_TEAMS_FILE`` to change it)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

DEFAULT_TEAMS_FILE = Path(__file__).resolve().parents[2] / "deploy" / "teams.json"


@dataclass(frozen=True)
class Team:
    team_id: str
    name: str
    municipality: str
    host_unit_type: str  # health_centre | psychiatry
    host_unit_name: str
    cadence_weeks: int
    weekday: str
    time: str
    capacity: int
    cutoff_days: int
    fixed_members: dict[str, str]


def load_teams(path: Path | str | None = None) -> dict[str, Team]:
    data = json.loads(Path(path or DEFAULT_TEAMS_FILE).read_text(encoding="utf-8"))
    teams = {}
    for t in data["teams"]:
        teams[t["team_id"]] = Team(
            team_id=t["team_id"],
            name=t["name"],
            municipality=t["municipality"],
            host_unit_type=t["host_unit"]["type"],
            host_unit_name=t["host_unit"]["name"],
            cadence_weeks=t["cadence_weeks"],
            weekday=t["weekday"],
            time=t["time"],
            capacity=t["capacity"],
            cutoff_days=t["cutoff_days"],
            fixed_members=dict(t["fixed_members"]),
        )
    return teams
