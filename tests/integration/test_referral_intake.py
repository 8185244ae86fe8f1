"""Referral intake over AMQP: who sent it, every rule, replies to that agency alone, duplicates,
protected identity, and what the broker itself refuses. Real RabbitMQ and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, date, datetime, timedelta

import aio_pika
import aiormq
import pytest

from services.referral import app as referral_app
from shared.contracts.vocabulary import Party
from shared.platform.clock import stockholm_date
from shared.platform.consumer import REASON_HEADER
from tests.support import broker as amqp
from tests.support.agencies import allow_only_own_routing_keys, take_replies
from tests.support.identities import generated_personnummer, random_adult
from tests.support.referrals import send_command, send_referral, submit_referral

pytestmark = pytest.mark.infra


@pytest.fixture
async def referral(settings, runtimes):
    return await runtimes(referral_app.spec(settings), settings)


async def count(runtime, sql: str, *args) -> int:
    async with runtime.pool.acquire() as conn:
        return await conn.fetchval(sql, *args)


def swedish_today() -> date:
    """The date the services go by (Swedish), not the machine's: they differ for an hour or two
    around midnight."""
    return stockholm_date(datetime.now(UTC))


def born_years_ago(years: int, days: int = 0) -> date:
    today = swedish_today()
    return today.replace(year=today.year - years) - timedelta(days=days)


async def test_an_accepted_referral_is_answered_to_that_agency_alone(agencies, settings, referral):
    command = submit_referral(random.Random(1))
    await send_referral(agencies[Party.KOMMUN], settings.namespace, command)
    [reply] = await take_replies(agencies[Party.KOMMUN], settings.namespace, 1)
    assert reply["event_type"] == "ReferralAccepted"
    assert reply["payload"]["agency_ref"] == command["payload"]["agency_ref"]
    assert reply["payload"]["case_ref"].startswith("TS-")
    assert reply["correlation_id"] == command["correlation_id"]
    assert reply["causation_id"] == command["event_id"]
    for other in (Party.AF, Party.FK, Party.REGION):
        assert await amqp.message_count(settings.amqp_url, f"{settings.namespace}.agency.{other}") == 0
    async with referral.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM referrals")
        vault = await conn.fetchrow("SELECT * FROM vault")
    assert row["referring_party"] == "KOMMUN" and row["municipality"] == "Gävle"
    digits = command["payload"]["personnummer"].replace("-", "").encode()
    assert digits not in vault["personnummer"] and b"Vilket" not in vault["question"]


async def test_every_problem_is_reported_at_once_with_codes_and_texts(agencies, settings, referral):
    pnr = generated_personnummer(date(1980, 5, 17))
    wrong_check_digit = pnr[:-1] + str((int(pnr[-1]) + 1) % 10)
    bad = submit_referral(
        team_id="NO-SUCH-TEAM",
        question="   ",
        personnummer=wrong_check_digit,
        consents=[{"party": "AF", "given_on": str(swedish_today() + timedelta(days=3)), "form_ref": "F"}],
        reason_codes=["SJUKSKRIVEN_MED_INTYG", "NOT_A_CODE"],
        favourite_colour="blue",
    )
    await send_referral(agencies[Party.AF], settings.namespace, bad)
    [reply] = await take_replies(agencies[Party.AF], settings.namespace, 1)
    assert reply["event_type"] == "ReferralRejected"
    codes = {(r["code"], r["field"]) for r in reply["payload"]["reasons"]}
    assert codes == {
        ("unknown_reason_code", "reason_codes.1"),
        ("unknown_field", "favourite_colour"),
        ("personnummer_check_digit", "personnummer"),
        ("unknown_team", "team_id"),
        ("question_empty", "question"),
    }
    assert all(r["message_sv"] and r["message_en"] for r in reply["payload"]["reasons"])
    assert reply["payload"]["agency_ref"] == bad["payload"]["agency_ref"]
    assert bad["payload"]["personnummer"] not in json.dumps(reply)
    assert await count(referral, "SELECT count(*) FROM referrals") == 0
    async with referral.pool.acquire() as conn:
        stored = await conn.fetchrow("SELECT * FROM rejections")
    assert stored["party"] == "AF" and "unknown_team" in stored["codes"]
    assert bad["payload"]["personnummer"] not in stored["reasons"]
    rejected = referral.metrics.rejected.labels("referral", "SubmitReferral", "AF", "unknown_team")
    assert rejected._value.get() == 1


async def test_a_valid_shape_is_checked_by_the_rules(agencies, settings, referral):
    """Consent dated in the future (a well-formed command that breaks a rule)."""
    bad = submit_referral(
        consents=[{"party": "FK", "given_on": str(swedish_today() + timedelta(days=1)), "form_ref": "F"}]
    )
    await send_referral(agencies[Party.FK], settings.namespace, bad)
    [reply] = await take_replies(agencies[Party.FK], settings.namespace, 1)
    assert [r["code"] for r in reply["payload"]["reasons"]] == ["consent_in_future"]


async def test_an_oversized_referral_is_answered_not_dropped(agencies, settings, referral):
    big = submit_referral(question="x" * 70_000)
    await send_referral(agencies[Party.REGION], settings.namespace, big)
    [reply] = await take_replies(agencies[Party.REGION], settings.namespace, 1)
    assert [r["code"] for r in reply["payload"]["reasons"]] == ["payload_too_large"]


async def test_resubmitting_the_same_agency_reference_gives_the_same_answer(agencies, settings, referral):
    command = submit_referral(random.Random(5))
    again = dict(command, event_id="00000000-0000-4000-8000-000000000001")
    await send_referral(agencies[Party.AF], settings.namespace, command)
    await send_referral(agencies[Party.AF], settings.namespace, again)
    first, second = await take_replies(agencies[Party.AF], settings.namespace, 2)
    assert first["event_type"] == second["event_type"] == "ReferralAccepted"
    assert first["payload"]["case_ref"] == second["payload"]["case_ref"]
    assert first["payload"]["accepted_at"] == second["payload"]["accepted_at"]
    assert await count(referral, "SELECT count(*) FROM referrals") == 1
    assert await count(referral, "SELECT count(*) FROM outbox WHERE event_type = 'CaseReferred'") == 1


async def test_a_person_with_an_open_case_is_not_referred_again(agencies, settings, referral):
    person = random_adult(random.Random(9))
    await send_referral(agencies[Party.AF], settings.namespace, submit_referral(personnummer=person))
    [accepted] = await take_replies(agencies[Party.AF], settings.namespace, 1)
    await send_referral(agencies[Party.FK], settings.namespace, submit_referral(personnummer=person))
    [rejected] = await take_replies(agencies[Party.FK], settings.namespace, 1)
    assert [r["code"] for r in rejected["payload"]["reasons"]] == ["duplicate_open_case"]

    # once the case is closed, the person can be referred again
    closed = amqp.envelope(
        "CaseClosed",
        {
            "case_ref": accepted["payload"]["case_ref"],
            "reason": "PLAN_COMPLETED",
            "closed_at": datetime.now(UTC).isoformat(),
        },
    )
    await amqp.publish(settings.amqp_url, f"{settings.namespace}.events", "CaseClosed", closed)
    await amqp.eventually(
        lambda: count(referral, "SELECT count(*) FROM referrals WHERE closed_at IS NOT NULL"), what="the case closed"
    )
    await send_referral(agencies[Party.FK], settings.namespace, submit_referral(personnummer=person))
    [again] = await take_replies(agencies[Party.FK], settings.namespace, 1)
    assert again["event_type"] == "ReferralAccepted"


@pytest.mark.parametrize(
    "born, coordination, expected",
    [
        (born_years_ago(16), False, "ReferralAccepted"),
        (born_years_ago(16, days=-1), False, "age_out_of_range"),  # turns 16 tomorrow
        (born_years_ago(65), False, "ReferralAccepted"),
        (born_years_ago(66), False, "age_out_of_range"),
        (born_years_ago(40), True, "ReferralAccepted"),  # samordningsnummer
    ],
)
async def test_age_and_coordination_numbers(agencies, settings, referral, born, coordination, expected):
    pnr = generated_personnummer(born, coordination=coordination)
    await send_referral(agencies[Party.AF], settings.namespace, submit_referral(personnummer=pnr))
    [reply] = await take_replies(agencies[Party.AF], settings.namespace, 1)
    got = reply["event_type"] if reply["event_type"] == "ReferralAccepted" else reply["payload"]["reasons"][0]["code"]
    assert got == expected


async def test_protected_identity_makes_a_case_without_identity(agencies, settings, referral):
    command = submit_referral(personnummer=None, protected_identity=True)
    await send_referral(agencies[Party.REGION], settings.namespace, command)
    [reply] = await take_replies(agencies[Party.REGION], settings.namespace, 1)
    assert reply["event_type"] == "ReferralAccepted"
    async with referral.pool.acquire() as conn:
        case_referred = json.loads(await conn.fetchval("SELECT body FROM outbox WHERE event_type = 'CaseReferred'"))[
            "payload"
        ]
        vault = await conn.fetchrow("SELECT * FROM vault")
    assert case_referred["gender"] == "UNKNOWN" and case_referred["age_band"] == "UNKNOWN"
    assert vault["personnummer"] is None and vault["question"] is not None

    both = submit_referral(protected_identity=True)  # protected, yet a number: refused
    await send_referral(agencies[Party.REGION], settings.namespace, both)
    [refused] = await take_replies(agencies[Party.REGION], settings.namespace, 1)
    assert [r["code"] for r in refused["payload"]["reasons"]] == ["identity_with_protected_flag"]


async def test_a_forged_user_id_is_refused_by_the_broker(agencies, settings, referral):
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed):
        await send_referral(agencies[Party.AF], settings.namespace, submit_referral(), user_id=agencies[Party.FK].user)
    await asyncio.sleep(0.5)
    assert await count(referral, "SELECT count(*) FROM inbox") == 0


async def test_an_agency_cannot_read_another_agencys_queue(agencies, settings, referral):
    conn = await aio_pika.connect(agencies[Party.AF].amqp_url)
    try:
        channel = await conn.channel()
        with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
            queue = await channel.get_queue(f"{settings.namespace}.agency.FK", ensure=False)
            await queue.get(fail=False)
    finally:
        await conn.close()


async def test_an_agency_may_publish_only_its_own_routing_keys(infra, agencies, settings, referral):
    await allow_only_own_routing_keys(infra, agencies, f"{settings.namespace}.intake")
    body = json.dumps(submit_referral()).encode()
    with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
        await agencies[Party.AF].publish(f"{settings.namespace}.intake", "FK.SubmitReferral", body)


async def test_a_command_without_user_id_is_dead_lettered_with_the_reason(agencies, settings, referral):
    await send_referral(agencies[Party.AF], settings.namespace, submit_referral(), user_id=None)
    dead_queue = f"{settings.namespace}.referral.dead"
    await amqp.eventually(
        lambda: amqp.message_count(settings.amqp_url, dead_queue), what="the anonymous command dead-lettered"
    )
    [dead] = await amqp.drain(settings.amqp_url, dead_queue)
    assert dead.headers[REASON_HEADER] == "sender_unknown"
    assert await count(referral, "SELECT count(*) FROM referrals") == 0


async def test_consent_commands_are_answered(agencies, settings, referral):
    await send_referral(
        agencies[Party.AF],
        settings.namespace,
        submit_referral(consents=[{"party": "AF", "given_on": "2026-11-01", "form_ref": "F-1"}]),
    )
    [accepted] = await take_replies(agencies[Party.AF], settings.namespace, 1)
    case_ref = accepted["payload"]["case_ref"]
    record = amqp.envelope(
        "RecordConsent", {"case_ref": case_ref, "party": "FK", "given_on": "2026-11-03", "form_ref": "F-2"}
    )
    await send_command(agencies[Party.AF], settings.namespace, record)
    withdraw = amqp.envelope(
        "WithdrawConsent",
        {"case_ref": case_ref, "party": "AF", "withdrawn_on": "2026-11-04", "on_behalf_of_individual": True},
    )
    await send_command(agencies[Party.AF], settings.namespace, withdraw)
    unknown = amqp.envelope(
        "RecordConsent", {"case_ref": "TS-AAAAAAAAAAAAAAAA", "party": "FK", "given_on": "2026-11-03", "form_ref": "F-2"}
    )
    await send_command(agencies[Party.AF], settings.namespace, unknown)
    replies = await take_replies(agencies[Party.AF], settings.namespace, 3)
    # replies about different cases may come in any order (the relay publishes cases side by side)
    assert sorted(r["event_type"] for r in replies) == ["CommandAccepted", "CommandAccepted", "CommandRejected"]
    [rejected] = [r for r in replies if r["event_type"] == "CommandRejected"]
    assert [r["code"] for r in rejected["payload"]["reasons"]] == ["case_not_found"]
    async with referral.pool.acquire() as conn:
        history = await conn.fetch("SELECT party, action FROM consent_history ORDER BY id")
        events = await conn.fetch("SELECT event_type FROM outbox WHERE exchange = 'events' ORDER BY id")
    assert [(r["party"], r["action"]) for r in history] == [("AF", "given"), ("FK", "given"), ("AF", "withdrawn")]
    assert [e["event_type"] for e in events] == ["CaseReferred", "ConsentRecorded", "ConsentWithdrawn"]


async def test_an_agencys_commands_on_one_case_are_applied_in_the_order_it_sent_them(agencies, settings, referral):
    """Twenty consent changes for one case, sent back to back on one channel: each is applied
    after the one before it (applied out of order, a consent would be dated before a withdrawal
    already recorded and be rejected, or the history would be shuffled)."""
    await send_referral(
        agencies[Party.AF],
        settings.namespace,
        submit_referral(consents=[{"party": "AF", "given_on": "2026-10-01", "form_ref": "F-1"}]),
    )
    [accepted] = await take_replies(agencies[Party.AF], settings.namespace, 1)
    case_ref = accepted["payload"]["case_ref"]
    sent = []
    for day in range(1, 21):
        on = f"2026-10-{day + 1:02d}"
        if day % 2:
            command = amqp.envelope(
                "RecordConsent", {"case_ref": case_ref, "party": "FK", "given_on": on, "form_ref": f"F-{day}"}
            )
        else:
            command = amqp.envelope(
                "WithdrawConsent",
                {"case_ref": case_ref, "party": "FK", "withdrawn_on": on, "on_behalf_of_individual": True},
            )
        sent.append(command)
    await agencies[Party.AF].publish_many(
        f"{settings.namespace}.intake",
        [(f"AF.{c['event_type']}", json.dumps(c).encode()) for c in sent],
    )
    replies = await take_replies(agencies[Party.AF], settings.namespace, len(sent))
    assert [r["event_type"] for r in replies] == ["CommandAccepted"] * len(sent)
    async with referral.pool.acquire() as conn:
        history = await conn.fetch("SELECT action FROM consent_history WHERE party = 'FK' ORDER BY id")
    assert [r["action"] for r in history] == ["given", "withdrawn"] * 10


async def test_control_characters_are_rejected_not_crashed_on(agencies, settings, referral):
    bad = submit_referral(agency_ref="AF-\u0000-1", officer_id="o\u0000")
    await send_referral(agencies[Party.AF], settings.namespace, bad)
    [reply] = await take_replies(agencies[Party.AF], settings.namespace, 1)
    assert reply["event_type"] == "ReferralRejected"
    assert reply["payload"]["agency_ref"] is None
    assert await amqp.message_count(settings.amqp_url, f"{settings.namespace}.referral.dead") == 0


async def test_an_agency_over_its_intake_limit_is_refused_at_publish_while_the_others_go_on(
    agencies, settings, runtimes
):
    """Each agency's commands wait in its own capped queue: once AF's holds three (a quorum
    queue takes one more before it refuses), AF's next publish is refused by the broker (a
    negative publisher confirm, which the agency's client raises), while FK's is taken; once
    the service runs, every command that was taken is answered, and AF has room again."""
    from shared.platform import topology as topo

    limited = settings.model_copy(update={"intake_max_messages": 3})
    await topo.declare(limited.amqp_url, topo.Topology.of(limited))
    taken = 0
    for _ in range(3):
        await send_referral(agencies[Party.AF], settings.namespace, submit_referral())
        taken += 1
    with pytest.raises(aio_pika.exceptions.DeliveryError):
        for _ in range(2):
            await send_referral(agencies[Party.AF], settings.namespace, submit_referral())
            taken += 1
    await send_referral(agencies[Party.FK], settings.namespace, submit_referral())
    await runtimes(referral_app.spec(limited), limited)
    af = await take_replies(agencies[Party.AF], settings.namespace, taken)
    fk = await take_replies(agencies[Party.FK], settings.namespace, 1)
    assert {r["event_type"] for r in af + fk} <= {"ReferralAccepted", "ReferralRejected"}
    await asyncio.sleep(0.5)
    assert await amqp.message_count(settings.amqp_url, f"{settings.namespace}.agency.AF") == 0  # none refused came
    await send_referral(agencies[Party.AF], settings.namespace, submit_referral())  # room again
    await take_replies(agencies[Party.AF], settings.namespace, 1)


async def test_a_command_the_broker_dead_letters_reaches_the_dead_letter_queue_redacted(agencies, settings, runtimes):
    """Over its queue's delivery limit (say it crashed the service each time), the broker
    dead-letters an agency's command itself: the service moves it on, without its identity, to
    its dead-letter queue with the reason; nothing with a personnummer is left on the broker."""
    from shared.platform import topology as topo

    once = settings.model_copy(update={"delivery_limit": 1})
    topology = topo.Topology.of(once)
    await topo.declare(once.amqp_url, topology)
    person = random_adult(random.Random())
    await send_referral(agencies[Party.AF], settings.namespace, submit_referral(personnummer=person))
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(topology.intake_queue_name("referral", Party.AF), ensure=False)
        for _ in range(2):  # delivered, returned; delivered again, returned: over the limit
            message = await amqp.eventually(lambda: queue.get(no_ack=False, fail=False), what="the command")
            await message.nack(requeue=True)
    finally:
        await connection.close()
    await runtimes(referral_app.spec(once), once)
    dead_queue = topology.dead_letter_queue_name("referral")
    await amqp.eventually(
        lambda: _has_messages(settings.amqp_url, dead_queue), what="the command in the dead-letter queue"
    )
    [dead] = await amqp.drain(settings.amqp_url, dead_queue)
    assert dead.headers[REASON_HEADER] == "delivery_limit"
    assert dead.headers["x-trisam-original-exchange"] == f"{settings.namespace}.intake"
    assert person.encode() not in dead.body and person[-4:].encode() not in dead.body
    assert json.loads(dead.body)["redacted"] is True
    assert await amqp.message_count(settings.amqp_url, topology.unredacted_queue_name("referral")) == 0
    [notice] = await take_replies(agencies[Party.AF], settings.namespace, 1)  # AF is told, to send it again
    assert (notice["event_type"], notice["payload"]["reason"]) == ("CommandDeadLettered", "delivery_limit")
    assert person.encode() not in json.dumps(notice).encode()


async def _has_messages(amqp_url: str, queue: str) -> bool:
    return await amqp.message_count(amqp_url, queue) > 0


async def test_a_10000_deep_json_command_is_dead_lettered_with_its_reason_and_the_agency_told(
    agencies, settings, referral
):
    """A command nested 10,000 deep (a parser's stack, not its size) is refused without a parse
    that could crash the consumer: dead-lettered with the reason, the agency told, nothing
    stored; the next referral is applied as ever."""
    command = submit_referral(random.Random(7))
    frame = json.dumps({k: v for k, v in command.items() if k != "payload"})
    body = (frame[:-1] + ', "payload": {"question": ' + "[" * 10_000 + "]" * 10_000 + "}}").encode()
    await send_referral(
        agencies[Party.FK], settings.namespace, body, message_id=command["event_id"], type="SubmitReferral"
    )
    dead_queue = f"{settings.namespace}.referral.dead"
    await amqp.eventually(lambda: _has_messages(settings.amqp_url, dead_queue), what="the deep command dead-lettered")
    [dead] = await amqp.drain(settings.amqp_url, dead_queue)
    assert dead.headers[REASON_HEADER] == "bad_envelope"
    assert len(dead.body) < 1_000 and b"[[[[" not in dead.body  # redacted: the nesting is not kept either
    [notice] = await take_replies(agencies[Party.FK], settings.namespace, 1)
    assert (notice["event_type"], notice["payload"]["reason"]) == ("CommandDeadLettered", "bad_envelope")
    assert await count(referral, "SELECT count(*) FROM referrals") == 0
    await send_referral(agencies[Party.FK], settings.namespace, submit_referral(random.Random(8)))
    [reply] = await take_replies(agencies[Party.FK], settings.namespace, 1)
    assert reply["event_type"] == "ReferralAccepted"


async def test_the_broker_itself_refuses_a_message_over_its_max_message_size(infra, agencies, settings, referral):
    """Compose's broker takes at most ``max_message_size`` (deploy/rabbitmq/20-trisam.conf): set
    the same on the test broker, an agency's 3 MiB publish is refused by the broker, nothing
    reaches the service; under it, the service's own limit answers."""
    from pathlib import Path

    from tests.support.agencies import rabbitmqctl_runner

    conf = (Path(__file__).resolve().parents[2] / "deploy" / "rabbitmq" / "20-trisam.conf").read_text()
    [limit] = [int(line.split("=")[1]) for line in conf.splitlines() if line.startswith("max_message_size")]
    assert 1024 * 1024 < limit <= 16 * 1024 * 1024
    run = rabbitmqctl_runner(infra)
    assert run is not None, "rabbitmqctl is needed to set the broker's max_message_size"
    before = run(["eval", "application:get_env(rabbit, max_message_size)."]).strip()
    run(["eval", f"application:set_env(rabbit, max_message_size, {limit})."])
    try:
        with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed, match="max size"):
            await send_referral(agencies[Party.AF], settings.namespace, b"x" * (limit + 1024 * 1024))
        await send_referral(agencies[Party.AF], settings.namespace, submit_referral(question="x" * 70_000))
        [reply] = await take_replies(agencies[Party.AF], settings.namespace, 1)
        assert [r["code"] for r in reply["payload"]["reasons"]] == ["payload_too_large"]
        assert await count(referral, "SELECT count(*) FROM inbox") == 1
    finally:
        value = before.removeprefix("{ok,").removesuffix("}") if before.startswith("{ok,") else "134217728"
        run(["eval", f"application:set_env(rabbit, max_message_size, {value})."])
