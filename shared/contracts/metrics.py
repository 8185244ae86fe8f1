"""Contracts the metrics service owns: the public editions of the figures."""

from __future__ import annotations

from datetime import date
from typing import Any, ClassVar

from pydantic import AwareDatetime, Field

from shared.contracts.envelope import AGGREGATES, Contract, contract

# --------------------------------------------------------------------------- aggregates (metrics service)


@contract("FiguresPublished", 2)
class FiguresPublished(Contract):
    """A public edition of a quarter's or a year's figures, for the county or one
    municipality, exactly as the public API shows it: counts under the threshold as "<5", "x"
    where one more is hidden so that a small count cannot be worked out, shares only over at
    least 10. Sent once when the edition is made (after the period has closed); a correction
    is a later edition. No teams, no case data. (Version 1, live snapshots per team, is gone.)"""

    exchange: ClassVar[str] = AGGREGATES
    max_bytes: ClassVar[int | None] = 256 * 1024

    period: str
    period_start: date
    period_end: date
    edition: int = Field(ge=1)
    municipality: str | None  # None: the whole county
    suppression_threshold: int
    figures: dict[str, Any]
    reason: str
    made_at: AwareDatetime

    def routing_key(self) -> str:
        return f"{self.name}.{self.municipality or 'COUNTY'}"
