"""Generated personnummer for tests: the simulator's generator (clearly test data)."""

from simulator.identities import generated_personnummer, luhn_digit, random_adult  # noqa: F401
