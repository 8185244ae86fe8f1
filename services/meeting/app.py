"""The meeting service: wiring."""

from pathlib import Path

from shared.config import Settings
from shared.runtime import ServiceSpec

from .handlers import HANDLERS


def spec(settings: Settings) -> ServiceSpec:
    return ServiceSpec(
        name="meeting",
        description="Meeting scheduling: team calendars, agendas and consultations.",
        migrations=Path(__file__).parent / "migrations",
        handlers=HANDLERS,
    )
