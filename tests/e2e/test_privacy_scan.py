"""A full run through the four service processes and the workspace, scanned for personal
identity numbers: every log line, every message the platform published (events and agency
replies, the notice of a dead-lettered command among them), every dead letter, what the
operators' dead-letter tool prints of them, every HTTP error body, and the workspace's pages of
every role (what consent allows it to see cut out). None may hold a personnummer."""

from __future__ import annotations

import asyncio
import json
import random
import re
from datetime import date

import aio_pika
import httpx
import pytest

from shared.contracts.vocabulary import Party
from tests.support import broker as amqp
from tests.support.agencies import take_replies
from tests.support.dead_letters import dead_letters
from tests.support.http import token
from tests.support.identities import generated_personnummer, random_adult
from tests.support.privacy import personnummer_in
from tests.support.referrals import TEAM, send_command, send_referral, submit_referral
from tests.support.system import running_system

pytestmark = pytest.mark.infra


async def test_no_personnummer_in_logs_messages_or_error_bodies(agencies, settings):
    async with running_system(settings, workspace=True) as processes:
        await scan_a_full_run(agencies, settings, processes)


async def scan_a_full_run(agencies, settings, processes) -> None:
    conn = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await conn.channel()
        tap = await channel.declare_queue(f"{settings.namespace}.tap", auto_delete=True)
        for kind in ("events", "agency"):
            await tap.bind(f"{settings.namespace}.{kind}", routing_key="#")

        rng = random.Random(77)
        numbers, error_bodies = [], []
        people = [random_adult(rng) for _ in range(6)]
        numbers += people
        for i, person in enumerate(people):  # accepted
            party = list(Party)[i % 4]
            await send_referral(agencies[party], settings.namespace, submit_referral(personnummer=person))
        too_young = generated_personnummer(date.today().replace(year=date.today().year - 15))
        numbers.append(too_young)
        await send_referral(
            agencies[Party.AF], settings.namespace, submit_referral(personnummer=too_young)
        )  # rejected: age
        await send_referral(
            agencies[Party.FK], settings.namespace, submit_referral(personnummer=people[0])
        )  # rejected: duplicate
        replies = {
            p: await take_replies(agencies[p], settings.namespace, n)
            for p, n in ((Party.AF, 3), (Party.FK, 3), (Party.KOMMUN, 1), (Party.REGION, 1))
        }
        # an accepted AF referral (replies to different cases may come in any order)
        case_ref = next(r["payload"]["case_ref"] for r in replies[Party.AF] if "case_ref" in r["payload"])
        await send_command(
            agencies[Party.AF],
            settings.namespace,
            amqp.envelope("WithdrawConsent", {"case_ref": case_ref, "party": "FK", "withdrawn_on": str(date.today())}),
        )

        # a command that is dead-lettered (no such version): redacted, its agency told
        poison_person = random_adult(rng)
        numbers.append(poison_person)
        poison = submit_referral(personnummer=poison_person)
        poison["version"] = 9
        await agencies[Party.KOMMUN].publish(
            f"{settings.namespace}.intake",
            "KOMMUN.SubmitReferral",
            json.dumps(poison).encode(),
            message_id=poison["event_id"],
        )
        [notice] = await take_replies(agencies[Party.KOMMUN], settings.namespace, 1)
        assert notice["event_type"] == "CommandDeadLettered"
        tool_output = [json.dumps(notice)]
        for command in (("list", "referral"), ("show", "referral", poison["event_id"])):
            code, output = await dead_letters(settings, *command)
            assert code == 0, output
            tool_output.append(output)

        async with httpx.AsyncClient(base_url=processes.url("referral")) as http:
            officer = token(settings, party="KOMMUN", role="officer", teams=[TEAM])
            for person in (people[1], too_young, person_with_bad_check_digit(people[2])):
                numbers.append(person)
                body = submit_referral(personnummer=person)["payload"]
                response = await http.post("/api/v1/referrals", json=body, headers=officer)
                assert response.status_code == 422
                error_bodies.append(response.text)
            response = await http.post(
                "/api/v1/referrals", headers=officer, json={"personnummer": people[3], "junk": people[3]}
            )
            error_bodies.append(response.text)
            fk = token(settings, party="FK", role="member", teams=[TEAM])
            await asyncio.sleep(1.0)
            denied = await http.get(f"/api/v1/cases/{case_ref}", params={"purpose": people[4]}, headers=fk)
            assert denied.status_code == 422  # a purpose holding a number is not stored
            error_bodies.append(denied.text)
            bad_token = await http.get(f"/api/v1/cases/{case_ref}", headers={"Authorization": f"Bearer {people[5]}"})
            error_bodies.append(bad_token.text)

        pages = await workspace_pages(processes, case_ref)

        await asyncio.sleep(1.0)  # let every service finish
        published = []
        while (message := await tap.get(no_ack=True, fail=False)) is not None:
            published.append(message.body.decode())
        dead = []
        for service in ("referral", "meeting", "followup", "metrics"):
            dead += [
                m.body.decode() for m in await amqp.drain(settings.amqp_url, f"{settings.namespace}.{service}.dead")
            ]
    finally:
        await conn.close()

    assert len(published) >= 6 + 8  # six CaseReferred, eight replies, and more
    everything = {
        "logs": processes.logs(),
        "published": "\n".join(published),
        "dead letters": "\n".join(dead),
        "the dead-letter tool's output": "\n".join(tool_output),
        "http errors": "\n".join(error_bodies),
        "workspace pages where the role lacks consent": "\n".join(pages),
    }
    for where, text in everything.items():
        assert personnummer_in(text) == [], f"a personnummer in {where}"
        for number in numbers:
            assert number not in text and number.replace("-", "") not in text, where
    assert '"event": "consent withdrawal applied"' in everything["logs"]


def person_with_bad_check_digit(pnr: str) -> str:
    return pnr[:-1] + str((int(pnr[-1]) + 1) % 10)


async def workspace_pages(processes, case_ref: str) -> list[str]:
    """The workspace's pages of every role, as each sees them (signed in with the development
    sign-in), with the details a role may see cut out: what remains is what it may not see. The
    FK member reads the agenda with a purpose: FK's consent for ``case_ref`` is withdrawn."""
    seen = []
    for role, party, paths in (
        ("officer", "KOMMUN", ["/cases", "/referrals/new", "/followups"]),
        ("coordinator", "REGION", ["/team"]),
        ("auditor", "REGION", [f"/audit?case_ref={case_ref}", "/audit/figures"]),
        ("member", "FK", ["/agenda"]),
    ):
        async with processes.client("workspace", follow_redirects=True, timeout=10) as browser:
            csrf = re.search(r'name="csrf" value="([^"]+)"', (await browser.get("/sign-in")).text).group(1)
            signed = await browser.post(
                "/dev/sign-in", data={"csrf": csrf, "user_id": f"{role}-1", "role": role, "party": party, "team": TEAM}
            )
            assert signed.status_code == 200 and f"{role}-1" in signed.text
            csrf = re.search(r'name="csrf" value="([^"]+)"', signed.text).group(1)  # the session's own
            if role == "member":
                meeting_id = re.search(r'name="meeting_id" value="([^"]+)"', (await browser.get("/agenda")).text)
                purpose = {"csrf": csrf, "purpose": "förmöte", "meeting_id": meeting_id.group(1) if meeting_id else ""}
                read = await browser.post("/agenda/purpose", data=purpose)
                assert read.status_code == 200 and 'id="purpose-shown"' in read.text
            for path in paths:
                page = await browser.get(path)
                assert page.status_code == 200, (path, page.status_code)
                seen.append(_DETAILS.sub("", page.text))  # what the role may see, by consent, cut out
    return seen


_DETAILS = re.compile(r'<li class="card" data-case="[^"]+" data-shown="details">.*?</li>', re.S)
