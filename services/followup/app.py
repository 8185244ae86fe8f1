"""The follow-up service: wiring."""

from pathlib import Path

from shared.config import Settings
from shared.runtime import ServiceSpec

from .handlers import HANDLERS


def spec(settings: Settings) -> ServiceSpec:
    return ServiceSpec(
        name="followup",
        description="Follow-up: plan checks and six-month outcome follow-ups.",
        migrations=Path(__file__).parent / "migrations",
        handlers=HANDLERS,
    )
