"""Metrics rules, pure (no I/O).

Small counts: a count n with 0 < n < threshold (default 5) is never shown as such; it is
reported as "<5". (Secondary suppression across breakdowns comes with the metrics issue.)
"""

from __future__ import annotations

from shared.vocabulary import Party

SUPPRESSION_THRESHOLD = 5


def suppress(count: int, threshold: int = SUPPRESSION_THRESHOLD) -> int | str:
    return f"<{threshold}" if 0 < count < threshold else count


def referrals_by_party(counts: dict[str, int], threshold: int = SUPPRESSION_THRESHOLD) -> dict:
    """Every party, in a fixed order, with suppressed counts."""
    return {party.value: suppress(counts.get(party.value, 0), threshold) for party in Party}
