"""Meeting rules, pure (no I/O). The walking skeleton only queues referred cases per team;
calendars, capacity, postponement and cancellation come with the meeting issue."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class QueuedCase:
    case_ref: str
    team_id: str
    referring_party: str
    consented_parties: tuple[str, ...]
    queued_since: datetime
