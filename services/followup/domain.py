"""Follow-up rules, pure (no I/O). The walking skeleton only tracks which cases exist; plan
checks and six-month follow-ups are scheduled from ConsultationHeld in the follow-up issue."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class TrackedCase:
    case_ref: str
    referring_party: str
    income_source_at_referral: str
    referred_at: datetime
