"""Find anything that looks like a valid Swedish personnummer in text (for leak scans)."""

from __future__ import annotations

import re

_CANDIDATE = re.compile(r"(?<!\d)(?:19|20)?(\d{6})[-+]?(\d{4})(?!\d)")
# UUIDs (event ids) hold runs of digits that can look like a number; they are not scanned.
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _luhn(ten: str) -> bool:
    total = 0
    for i, ch in enumerate(ten):
        n = int(ch) * (2 if i % 2 == 0 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def personnummer_in(text: str) -> list[str]:
    found = []
    for match in _CANDIDATE.finditer(_UUID.sub("<uuid>", text)):
        ten = match.group(1) + match.group(2)
        month, day = int(ten[2:4]), int(ten[4:6])
        if _luhn(ten) and 1 <= month <= 12 and 1 <= day % 60 <= 31:
            found.append(match.group(0))
    return found
