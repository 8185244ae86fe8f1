"""The envelope and the base of every contract: one envelope for every message, immutable versioned payloads.

Every message on the broker is a JSON ``Envelope`` whose ``payload`` is validated against the
payload model registered for its (``event_type``, ``version``). Payload models are frozen and
forbid unknown fields. Events are named in the past tense, commands from agencies in the
imperative. Nothing here may carry a personnummer or free text about a person, except the
agency's intake command ``SubmitReferral``, which is the one way identity enters the platform.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from typing import Any, ClassVar, Literal, TypeVar, cast

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator

from shared.contracts.vocabulary import Party

MAX_MESSAGE_BYTES = 1024 * 1024  # above this a message is not even parsed: poison

# The exchanges (kinds) a contract is published to; the topology names them per namespace.
EVENTS = "events"
INTAKE = "intake"
AGENCY = "agency"
DEAD_LETTERS = "dlx"
AGGREGATES = "aggregates"


class Contract(BaseModel):
    """Base of every payload: immutable, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: ClassVar[str]
    version: ClassVar[int]
    # A smaller size limit for this type; a larger body is an invalid payload, not poison.
    max_bytes: ClassVar[int | None] = None
    # The exchange (kind) it is published to.
    exchange: ClassVar[str] = EVENTS

    def routing_key(self) -> str:
        """Routing key on its exchange: the type name, qualified where consumers select by it."""
        return self.name


class Envelope(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: uuid.UUID
    event_type: str
    version: int = Field(ge=1)
    occurred_at: AwareDatetime
    producer: str
    correlation_id: str = Field(min_length=1, max_length=128)
    causation_id: str | None = Field(default=None, max_length=128)
    payload: dict[str, Any]


_REGISTRY: dict[tuple[str, int], type[Contract]] = {}

C = TypeVar("C", bound=Contract)


def contract(name: str, version: int) -> Callable[[type[C]], type[C]]:
    """Register a payload model under its explicit name and version."""

    def register(cls: type[C]) -> type[C]:
        key = (name, version)
        if "name" in cls.model_fields or "version" in cls.model_fields:
            raise RuntimeError(f"{cls.__name__}: 'name' and 'version' are the contract's own")
        if key in _REGISTRY:
            raise RuntimeError(f"contract {name} v{version} registered twice")
        cls.name, cls.version = name, version
        _REGISTRY[key] = cls
        return cls

    return register


def registered() -> dict[tuple[str, int], type[Contract]]:
    return dict(_REGISTRY)


@cache
def wire_model(contract_cls: type[Contract]) -> type[Envelope]:
    """The envelope as it is on the wire for one contract (for the AsyncAPI document)."""
    return create_model(
        f"{contract_cls.name}V{contract_cls.version}Message",
        __base__=Envelope,
        __doc__=contract_cls.__doc__,
        # Literal types made at run time: pydantic takes them, mypy cannot check them
        event_type=(cast(Any, Literal[contract_cls.name]), ...),
        version=(cast(Any, Literal[contract_cls.version]), ...),
        payload=(contract_cls, ...),
    )


def envelope_for(
    payload: Contract,
    *,
    producer: str,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    occurred_at: datetime | None = None,
) -> Envelope:
    event_id = uuid.uuid4()
    return Envelope(
        event_id=event_id,
        event_type=payload.name,
        version=payload.version,
        occurred_at=occurred_at or datetime.now(UTC),
        producer=producer,
        correlation_id=correlation_id or str(event_id),
        causation_id=causation_id,
        payload=payload.model_dump(mode="json"),
    )


class PoisonMessage(Exception):
    """A message that can never be processed: it goes to the dead-letter queue with its reason."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class InvalidPayload(PoisonMessage):
    """A well-formed envelope whose payload breaks its contract. Poison, unless the consumer
    answers such payloads itself (an agency command gets a rejection reply instead).

    ``errors`` are pydantic's error dicts without input values: (loc, type) only.
    """

    def __init__(self, envelope: Envelope, errors: list[dict[str, Any]]):
        super().__init__("schema_violation", _describe_errors(errors))
        self.envelope = envelope
        self.errors = errors
        self.raw = envelope.payload


def decode(body: bytes) -> tuple[Envelope, Contract]:
    """Parse and validate a message body, or raise PoisonMessage with a stable reason code."""
    if len(body) > MAX_MESSAGE_BYTES:
        raise PoisonMessage("too_large", f"{len(body)} bytes, limit {MAX_MESSAGE_BYTES}")
    try:
        envelope = Envelope.model_validate_json(body)
    except ValidationError as exc:
        raise PoisonMessage("bad_envelope", _describe(exc)) from None
    model = _REGISTRY.get((envelope.event_type, envelope.version))
    if model is None:
        known = sorted(v for (n, v) in _REGISTRY if n == envelope.event_type)
        reason = "unknown_version" if known else "unknown_type"
        raise PoisonMessage(reason, f"{envelope.event_type} v{envelope.version}")
    if model.max_bytes is not None and len(body) > model.max_bytes:
        raise InvalidPayload(envelope, [{"loc": (), "type": "payload_too_large"}])
    try:
        payload = model.model_validate(envelope.payload)
    except ValidationError as exc:
        raise InvalidPayload(envelope, safe_errors(exc)) from None
    return envelope, payload


def safe_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """Pydantic's errors reduced to where and what: never the input values (personal data)."""
    return [
        {"loc": tuple(err["loc"]), "type": err["type"]} for err in exc.errors(include_input=False, include_url=False)
    ]


def _describe(exc: ValidationError) -> str:
    return _describe_errors(safe_errors(exc))


def _describe_errors(errors: list[dict[str, Any]]) -> str:
    parts = []
    for err in errors[:10]:
        loc = ".".join(str(p) for p in err["loc"]) or "<body>"
        parts.append(f"{loc}:{err['type']}")
    return "; ".join(parts)


# --------------------------------------------------------------------------- commands (agencies)


class Command(Contract):
    """A command from an agency system, published to the intake exchange with the routing key
    ``<PARTY>.<Command>``. The party is the broker user's (``user_id``), never the payload's."""

    @model_validator(mode="before")
    @classmethod
    def _no_control_characters(cls, data: Any) -> Any:
        """Text from outside may not hold NUL or other control characters (but line breaks)."""

        def check(value: Any) -> None:
            if isinstance(value, str) and any(ord(c) < 32 and c not in "\n\r\t" for c in value):
                raise ValueError("control characters are not allowed in text")
            if isinstance(value, dict):
                for item in value.values():
                    check(item)
            if isinstance(value, (list, tuple)):
                for item in value:
                    check(item)

        check(data)
        return data

    def routing_key(self) -> str:
        raise TypeError("commands are routed by the submitting agency's own key")


# --------------------------------------------------------------------------- replies to one agency


class AgencyReply(Contract):
    """Routed on the agency exchange to the recipient's own queue only."""

    exchange: ClassVar[str] = AGENCY
    recipient: Party

    def routing_key(self) -> str:
        return f"{self.recipient.value}.{self.name}"


class RejectionReason(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str  # stable, machine-readable
    field: str | None = None  # where, as a dotted path in the payload
    message_sv: str
    message_en: str


@contract("CommandAccepted", 1)
class CommandAccepted(AgencyReply):
    """Reply to a consent command (RecordConsent, WithdrawConsent) that was applied."""

    command: str
    command_id: str
    case_ref: str


@contract("CommandRejected", 1)
class CommandRejected(AgencyReply):
    """Reply to a consent command that was refused, with every reason."""

    command: str
    command_id: str
    case_ref: str | None
    reasons: tuple[RejectionReason, ...]


@contract("CommandDeadLettered", 1)
class CommandDeadLettered(AgencyReply):
    """An agency's command could not be processed and was set aside (dead-lettered) by a
    service: it will not be answered otherwise. Its content was not kept (it may hold personal
    data), so it cannot be replayed: correct it if the reason says so and send it again (a new
    ``event_id``; a referral with the same ``agency_ref``). ``command`` and ``command_id`` are
    null when the message was not even a readable envelope; ``message_id`` is the AMQP
    property the agency set. ``detail`` names what was wrong, never a value that was sent."""

    command: str | None
    command_id: str | None
    message_id: str | None
    service: str
    reason: str  # the dead-letter reason code (docs/events.md, "Dead-letter reasons")
    detail: str
    dead_lettered_at: AwareDatetime


SERVICES_OWNING_CONTRACTS = ("referral", "meeting", "followup", "metrics")


def owner_of(contract_cls: type[Contract]) -> str | None:
    """The service that publishes this contract: the module it is declared in
    (``shared/contracts/<service>.py``); None for the envelope's own (agency replies)."""
    owner = contract_cls.__module__.rsplit(".", 1)[-1]
    return owner if owner in SERVICES_OWNING_CONTRACTS else None
