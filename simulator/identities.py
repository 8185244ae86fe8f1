"""Generated personnummer for tests and the simulator: clearly test data, never a real person's
number on purpose.

Every number generated here has a birth-number (serial) in the 98x range and a correct Luhn check
digit, so that validation accepts it; tests must use only these (or deliberately broken ones).
"""

from __future__ import annotations

import random
from datetime import date, timedelta


def luhn_digit(nine: str) -> str:
    total = 0
    for i, ch in enumerate(nine):
        n = int(ch) * (2 if i % 2 == 0 else 1)
        total += n - 9 if n > 9 else n
    return str((10 - total % 10) % 10)


def generated_personnummer(born: date, *, woman: bool = False, coordination: bool = False, serial: int = 0) -> str:
    """12 digits with a dash: YYYYMMDD-98GC (98 = test range, G = gender digit)."""
    day = born.day + (60 if coordination else 0)
    gender_digit = (serial * 2 + (0 if woman else 1)) % 10
    tail = f"98{gender_digit}"
    nine = f"{born:%y%m}{day:02d}{tail}"
    return f"{born:%Y%m}{day:02d}-{tail}{luhn_digit(nine)}"


def random_adult(
    rng: random.Random, today: date | None = None, *, woman: bool | None = None, ages: tuple[int, int] = (17, 64)
) -> str:
    today = today or date.today()
    age_days = rng.randint(ages[0] * 366, ages[1] * 365)
    born = today - timedelta(days=age_days)
    return generated_personnummer(born, woman=rng.random() < 0.5 if woman is None else woman, serial=rng.randint(0, 4))
