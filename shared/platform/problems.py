"""Problems with a command or request: stable codes, where, and Swedish and English texts that
never echo the values sent (they may be personal data). Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Texts never contain the submitted values (they may be personal data). Services add their own
# codes with ``add_messages``.
MESSAGES: dict[str, tuple[str, str]] = {
    "payload_too_large": ("Meddelandet är för stort (högst 64 KiB).", "The message is too large (at most 64 KiB)."),
    "unknown_field": ("Okänt fält.", "Unknown field."),
    "missing_field": ("Obligatoriskt fält saknas.", "A required field is missing."),
    "too_long": ("Värdet är för långt.", "The value is too long."),
    "invalid_value": ("Ogiltigt värde.", "Invalid value."),
    "unknown_party": ("Okänd part.", "Unknown party."),
    "unknown_income_source": ("Okänd huvudsaklig försörjning.", "Unknown main income source."),
    "date_in_future": ("Datumet ligger i framtiden.", "The date is in the future."),
    "case_not_found": ("Ärendet finns inte.", "The case does not exist."),
    "case_closed": ("Ärendet är avslutat.", "The case is closed."),
}

# Enumerated fields whose unknown values get their own code.
ENUM_CODES = {"income_source": "unknown_income_source", "party": "unknown_party"}


def add_messages(messages: dict[str, tuple[str, str]]) -> None:
    for code, texts in messages.items():
        if MESSAGES.get(code, texts) != texts:
            raise RuntimeError(f"problem code {code!r} defined twice with different texts")
        MESSAGES[code] = texts


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a command or request: a stable code and where (a dotted path)."""

    code: str
    field: str | None = None

    @property
    def message_sv(self) -> str:
        return MESSAGES[self.code][0]

    @property
    def message_en(self) -> str:
        return MESSAGES[self.code][1]


def problems_from_schema(errors: list[dict[str, Any]], enum_codes: dict[str, str] = ENUM_CODES) -> list[Problem]:
    """Map contract (pydantic) errors, without their input values, to stable problem codes."""
    problems = []
    for err in errors:
        loc = [str(p) for p in err["loc"]]
        kind = err["type"]
        if kind == "payload_too_large":
            code = "payload_too_large"
        elif kind == "extra_forbidden":
            code = "unknown_field"
        elif kind == "missing":
            code = "missing_field"
        elif kind == "string_too_long":
            code = "too_long"
        elif kind == "enum" and any(part in enum_codes for part in loc):
            code = next(enum_codes[part] for part in loc if part in enum_codes)
        else:
            code = "invalid_value"
        problems.append(Problem(code, ".".join(loc) or None))
    return problems
