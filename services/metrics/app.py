"""The metrics service: wiring."""

from pathlib import Path

from shared.config import Settings
from shared.runtime import ServiceSpec

from .handlers import HANDLERS
from .routes import make_routes


def spec(settings: Settings) -> ServiceSpec:
    return ServiceSpec(
        name="metrics",
        description="Metrics: aggregate figures for the board, small counts suppressed.",
        migrations=Path(__file__).parent / "migrations",
        handlers=HANDLERS,
        routes=make_routes,
    )
