"""Agency commands as every service that takes them handles them: who sent one (the broker-checked
``user_id``), what is wrong with it (stable codes with Swedish and English texts that never echo
the values sent), and the answer to that agency alone (CommandAccepted / CommandRejected)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

from shared.contracts import CommandAccepted, CommandRejected, InvalidPayload, PoisonMessage, RejectionReason
from shared.contracts.vocabulary import Party
from shared.platform.problems import Problem
from shared.platform.uow import Message, UnitOfWork


def sender(message: Message | None, agency_users: dict[str, str]) -> Party:
    """The sending party, from the message's user_id, which RabbitMQ has checked against the
    connection's user. A message without it, or from a user that is no agency, is refused."""
    if message is None or not message.user_id:
        raise PoisonMessage("sender_unknown", "the message has no user_id property")
    party = agency_users.get(message.user_id)
    if party is None:
        raise PoisonMessage("sender_not_an_agency", "the sending broker user is not an agency")
    if not message.routing_key.startswith(f"{party}."):
        raise PoisonMessage("routing_key_mismatch", "routing key is not the sender's own")
    return Party(party)


def reasons(problems: Iterable[Problem]) -> tuple[RejectionReason, ...]:
    return tuple(
        RejectionReason(code=p.code, field=p.field, message_sv=p.message_sv, message_en=p.message_en) for p in problems
    )


def invalid_case_ref(invalid: InvalidPayload) -> str | None:
    """The case reference of a command that broke its contract, if it is readable."""
    case_ref = invalid.raw.get("case_ref")
    return case_ref if isinstance(case_ref, str) and len(case_ref) <= 32 else None


async def answer(uow: UnitOfWork, party: Party, problems: list[Problem], case_ref: str | None) -> None:
    """Reply to the sending agency alone: accepted, or rejected with every reason."""
    assert uow.message is not None
    name, command_id = uow.message.envelope.event_type, str(uow.message.envelope.event_id)
    reply: CommandAccepted | CommandRejected
    if problems:
        reply = CommandRejected(
            recipient=party, command=name, command_id=command_id, case_ref=case_ref, reasons=reasons(problems)
        )
    else:
        # no problems: the command was valid, so its case_ref is known (the model checks it)
        reply = CommandAccepted(recipient=party, command=name, command_id=command_id, case_ref=cast(str, case_ref))
    await uow.emit(reply, ordering_key=case_ref or f"command:{command_id}")
