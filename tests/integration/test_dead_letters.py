"""Dead-letter operations on the real RabbitMQ and PostgreSQL: a poison event dead-lettered,
listed, fixed and replayed, applied once; a discard recorded with its reason; an agency told on
its own queue when its command was dead-lettered. The operator's tool runs as operators run it
(``python -m tools.dead_letters`` in a process of its own)."""

from __future__ import annotations

import json
import random

import aiormq
import asyncpg
import pytest

from services.metrics import app as metrics_app
from services.referral import app as referral_app
from shared.contracts import CaseReferred
from shared.contracts.vocabulary import Party
from shared.platform.consumer import REASON_HEADER
from shared.platform.runtime import ServiceSpec
from tests.integration.test_messaging import case_referred_envelope, referral_count
from tests.support import broker as amqp
from tests.support.agencies import take_replies
from tests.support.dead_letters import dead_letters
from tests.support.identities import random_adult
from tests.support.privacy import personnummer_in
from tests.support.referrals import submit_referral

pytestmark = pytest.mark.infra


def metrics_needing_a_fix(settings) -> tuple[ServiceSpec, dict[str, bool]]:
    """The metrics service whose CaseReferred handler fails for team NEW-TEAM until the cause is
    fixed (``fix["done"] = True``), as a handler would that needs a reference not there yet."""
    real = metrics_app.spec(settings)
    real_handler = real.handlers.get(CaseReferred)
    fix = {"done": False}

    async def needs_the_fix(event, uow):
        if event.team_id == "NEW-TEAM" and not fix["done"]:
            raise LookupError("team NEW-TEAM unknown")
        await real_handler(event, uow)

    spec = ServiceSpec(
        name="metrics",
        description="metrics, one team missing",
        migrations=real.migrations,
        handlers=real.handlers.replaced(CaseReferred, needs_the_fix),
        unit_of_work=real.unit_of_work,
    )
    return spec, fix


async def actions(runtime) -> list[dict]:
    async with runtime.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT action, message_id, event_type, case_ref, reason, who, why FROM dead_letter_actions"
        )
    return [dict(row) for row in rows]


async def count_is(settings, queue: str, expected: int) -> bool:
    return await amqp.message_count(settings.amqp_url, queue) == expected


async def test_a_poison_event_is_listed_fixed_replayed_and_applied_once(settings, runtimes):
    spec, fix = metrics_needing_a_fix(settings)
    metrics = await runtimes(spec, settings)
    ns = settings.namespace
    event = case_referred_envelope("TS-NEWTEAM00000001", team_id="NEW-TEAM")
    for _ in range(2):  # the same event twice (an at-least-once publisher): two dead letters, one id
        await amqp.publish(settings.amqp_url, f"{ns}.events", "CaseReferred", event)
    dead_queue = f"{ns}.metrics.dead"
    await amqp.eventually(lambda: count_is(settings, dead_queue, 2), what="both copies dead-lettered")
    others = {
        queue: await amqp.message_count(settings.amqp_url, queue) for queue in (f"{ns}.meeting", f"{ns}.followup")
    }

    code, listed = await dead_letters(settings, "list", "metrics")
    assert code == 0, listed
    assert listed.count(event["event_id"]) == 2 and "handler_error" in listed and "TS-NEWTEAM00000001" in listed
    assert "LookupError after 3 attempts" in listed and "CaseReferred" in listed
    code, shown = await dead_letters(settings, "show", "metrics", event["event_id"][:8])
    assert code == 0, shown
    assert "x-trisam-dead-letter-reason" in shown and '"team_id": "NEW-TEAM"' in shown
    assert await amqp.message_count(settings.amqp_url, dead_queue) == 2, "looking loses nothing"

    fix["done"] = True  # the team exists now
    code, replayed = await dead_letters(
        settings, "replay", "metrics", "--code", "handler_error", "--reason", "team NEW-TEAM registered"
    )
    assert code == 0 and "replayed 2" in replayed, replayed
    await amqp.eventually(lambda: referral_count(metrics), what="the replayed event applied")
    await amqp.eventually(lambda: _duplicate_skipped(metrics), what="the second copy skipped by the inbox")
    assert await referral_count(metrics) == 1
    assert await amqp.message_count(settings.amqp_url, dead_queue) == 0
    assert await amqp.message_count(settings.amqp_url, f"{ns}.metrics") == 0
    for queue, waiting in others.items():  # the replay went to metrics alone
        assert await amqp.message_count(settings.amqp_url, queue) == waiting
    recorded = await actions(metrics)
    assert [(r["action"], r["message_id"], r["reason"], r["who"], r["why"]) for r in recorded] == [
        ("replay", event["event_id"], "handler_error", "op-anna", "team NEW-TEAM registered")
    ] * 2
    assert recorded[0]["case_ref"] == "TS-NEWTEAM00000001" and recorded[0]["event_type"] == "CaseReferred"
    await metrics.count_dead_letter_actions()  # what /metrics does
    assert metrics.metrics.dead_letter_actions.labels("metrics", "replay", "handler_error")._value.get() == 2


async def _duplicate_skipped(runtime) -> bool:
    return runtime.metrics.duplicates.labels("metrics", "CaseReferred")._value.get() >= 1


async def test_a_discard_needs_a_reason_and_is_recorded_with_it(settings, runtimes):
    metrics = await runtimes(metrics_app.spec(settings), settings)
    unknown_version = case_referred_envelope("TS-OLDVERSION00001")
    unknown_version["version"] = 99
    await amqp.publish(settings.amqp_url, f"{settings.namespace}.events", "CaseReferred", unknown_version)
    dead_queue = f"{settings.namespace}.metrics.dead"
    await amqp.eventually(lambda: count_is(settings, dead_queue, 1), what="the poison dead-lettered")

    code, refused = await dead_letters(settings, "discard", "metrics", unknown_version["event_id"])
    assert code != 0 and "--reason" in refused
    code, refused = await dead_letters(settings, "discard", "metrics", "no-such-id", "--reason", "x")
    assert code == 1 and "no dead letter 'no-such-id'" in refused
    assert await amqp.message_count(settings.amqp_url, dead_queue) == 1

    why = "sent by the old test publisher; version 99 never existed"
    code, done = await dead_letters(settings, "discard", "metrics", unknown_version["event_id"], "--reason", why)
    assert code == 0 and "discarded 1" in done, done
    assert await amqp.message_count(settings.amqp_url, dead_queue) == 0
    [recorded] = await actions(metrics)
    assert (recorded["action"], recorded["message_id"], recorded["reason"], recorded["who"], recorded["why"]) == (
        "discard",
        unknown_version["event_id"],
        "unknown_version",
        "op-anna",
        why,
    )
    code, history = await dead_letters(settings, "history", "metrics")
    assert code == 0 and "discard" in history and "op-anna" in history, history
    async with metrics.pool.acquire() as conn:  # the service's role may only read and add to it
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("DELETE FROM dead_letter_actions")
    admin = await asyncpg.connect(settings.service_database_url("metrics"))
    try:  # and it is append-only for the administrator too
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await admin.execute("DELETE FROM dead_letter_actions")
    finally:
        await admin.close()


async def test_an_agency_is_told_on_its_own_queue_when_its_command_was_dead_lettered(agencies, settings, runtimes):
    await runtimes(referral_app.spec(settings), settings)
    ns = settings.namespace
    person = random_adult(random.Random())
    command = submit_referral(personnummer=person)
    command["version"] = 7  # no such version: poison
    await agencies[Party.AF].publish(
        f"{ns}.intake", "AF.SubmitReferral", json.dumps(command).encode(), message_id=command["event_id"]
    )
    [notice] = await take_replies(agencies[Party.AF], ns, 1)
    assert notice["event_type"] == "CommandDeadLettered"
    assert notice["payload"] | {"dead_lettered_at": None} == {
        "recipient": "AF",
        "command": "SubmitReferral",
        "command_id": command["event_id"],
        "message_id": command["event_id"],
        "service": "referral",
        "reason": "unknown_version",
        "detail": "SubmitReferral v7",
        "dead_lettered_at": None,
    }
    assert notice["causation_id"] == command["event_id"]
    assert not personnummer_in(json.dumps(notice))
    for other in (Party.FK, Party.KOMMUN, Party.REGION):  # the other agencies hear nothing of it
        assert await amqp.message_count(settings.amqp_url, f"{ns}.agency.{other.value}") == 0

    # nor can an agency pass anything off as an operator's replay: the default exchange is closed to it
    with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
        await agencies[Party.AF].publish("", f"{ns}.referral", b"{}", headers={"x-trisam-replayed-by": "AF"})

    dead_queue = f"{ns}.referral.dead"
    code, shown = await dead_letters(settings, "show", "referral", command["event_id"])
    assert code == 0 and "unknown_version" in shown and "<redacted>" in shown, shown
    assert not personnummer_in(shown) and person[-4:] not in shown
    code, refused = await dead_letters(settings, "replay", "referral", command["event_id"])
    assert code == 1 and "redacted" in refused and "CommandDeadLettered" in refused, refused
    [dead] = await amqp.drain(settings.amqp_url, dead_queue)  # a refused replay leaves it there
    assert dead.headers[REASON_HEADER] == "unknown_version" and not personnummer_in(dead.body.decode())
