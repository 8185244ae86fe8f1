"""The referral service: wiring of handlers, migrations and routes."""

from pathlib import Path

from shared.config import Settings
from shared.events import CaseReferred
from shared.runtime import ServiceSpec

from .handlers import make_handlers


def spec(settings: Settings) -> ServiceSpec:
    return ServiceSpec(
        name="referral",
        description="Referral intake: agencies submit referrals; accepted ones become cases.",
        migrations=Path(__file__).parent / "migrations",
        handlers=make_handlers(settings),
        publishes=((CaseReferred, "A referral was accepted; a case exists (no personal data)."),),
    )
