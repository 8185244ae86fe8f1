"""Consent withdrawal reaches every service; personal data is erased after retention."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, date, datetime, timedelta

import pytest
from pydantic import SecretStr

from services.followup import app as followup_app
from services.meeting import app as meeting_app
from services.metrics import app as metrics_app
from services.referral import app as referral_app
from shared.contracts.vocabulary import Party
from tests.support import broker as amqp
from tests.support.agencies import take_replies
from tests.support.http import client_for, token
from tests.support.referrals import TEAM, send_command, send_referral, submit_referral

pytestmark = pytest.mark.infra


async def test_consent_withdrawal_reaches_every_consuming_service(agencies, settings, runtimes):
    referral = await runtimes(referral_app.spec(settings), settings)
    others = [
        await runtimes(spec(settings), settings) for spec in (meeting_app.spec, followup_app.spec, metrics_app.spec)
    ]
    await send_referral(agencies[Party.KOMMUN], settings.namespace, submit_referral(random.Random(3)))
    [accepted] = await take_replies(agencies[Party.KOMMUN], settings.namespace, 1)
    case_ref = accepted["payload"]["case_ref"]
    withdraw = amqp.envelope(
        "WithdrawConsent",
        {"case_ref": case_ref, "party": "FK", "withdrawn_on": str(date.today()), "on_behalf_of_individual": True},
    )
    await send_command(agencies[Party.KOMMUN], settings.namespace, withdraw)

    async def applied_everywhere():
        states = []
        for runtime in others:
            async with runtime.pool.acquire() as conn:
                states.append(
                    await conn.fetchval(
                        "SELECT status FROM consent_state WHERE case_ref = $1 AND party = 'FK'", case_ref
                    )
                )
        return states == ["withdrawn"] * 3

    await amqp.eventually(applied_everywhere, what="every service to apply the withdrawal")
    for runtime in others:  # the other parties' consent is untouched
        async with runtime.pool.acquire() as conn:
            assert (
                await conn.fetchval("SELECT status FROM consent_state WHERE case_ref = $1 AND party = 'AF'", case_ref)
                == "given"
            )
    async with client_for(referral) as api:
        fk = token(settings, party="FK", role="member", teams=[TEAM])
        denied = await api.get(f"/api/v1/cases/{case_ref}", params={"purpose": "x-check"}, headers=fk)
        assert denied.status_code == 403


async def test_personal_data_is_erased_after_retention_and_history_stays(agencies, settings, runtimes):
    settings = settings.model_copy(update={"retention_days": 30, "retention_check_seconds": 0.2})
    referral = await runtimes(referral_app.spec(settings), settings)
    rng = random.Random(4)
    for _ in range(2):
        await send_referral(agencies[Party.AF], settings.namespace, submit_referral(rng))
    old, recent = [r["payload"]["case_ref"] for r in await take_replies(agencies[Party.AF], settings.namespace, 2)]
    now = datetime.now(UTC)
    for case_ref, closed_at in ((old, now - timedelta(days=31)), (recent, now - timedelta(days=29))):
        closed = amqp.envelope(
            "CaseClosed", {"case_ref": case_ref, "reason": "PLAN_COMPLETED", "closed_at": closed_at.isoformat()}
        )
        await amqp.publish(settings.amqp_url, f"{settings.namespace}.events", "CaseClosed", closed)

    async def erased():
        async with referral.pool.acquire() as conn:
            return await conn.fetch("SELECT case_ref FROM vault WHERE erased_at IS NOT NULL")

    await amqp.eventually(erased, what="the old case's personal data erased")
    await asyncio.sleep(0.5)
    assert [r["case_ref"] for r in await erased()] == [old]
    async with referral.pool.acquire() as conn:
        vault = await conn.fetchrow("SELECT * FROM vault WHERE case_ref = $1", old)
        kept = await conn.fetchrow("SELECT * FROM vault WHERE case_ref = $1", recent)
        case = await conn.fetchrow("SELECT * FROM referrals WHERE case_ref = $1", old)
    assert vault["personnummer"] is None and vault["question"] is None
    # crypto-shredding: the case's own data key is gone (a backup of the row opens only while
    # the master key of its time is configured; see services/referral/vault.py)
    assert vault["data_key"] is None and vault["data_key_id"] is None
    assert kept["data_key"] is not None and kept["personnummer_key"] == "case"
    # the pseudonym goes too (whoever holds the key could match it to a number); the case's
    # non-identifying history stays for the figures
    assert case["person_pseudonym"] is None
    assert case["gender"] != "" and case["age_band"] and case["team_id"] == TEAM
    async with client_for(referral) as api:
        read = await api.get(
            f"/api/v1/cases/{old}",
            params={"purpose": "audit"},
            headers=token(settings, party="AF", role="member", teams=[TEAM]),
        )
        assert read.status_code == 200
        assert read.json()["erased"] is True and read.json()["personnummer"] is None


async def test_a_new_master_key_is_taken_up_by_every_live_case_in_the_background(agencies, settings, runtimes):
    """Key rotation on the real database: the referral service re-wraps each live case's data
    key under the new master key (a scheduled job), after which the old key can be removed and
    the details are still read."""
    import base64

    referral = await runtimes(referral_app.spec(settings), settings)
    await send_referral(agencies[Party.AF], settings.namespace, submit_referral(random.Random(5)))
    [accepted] = await take_replies(agencies[Party.AF], settings.namespace, 1)
    case_ref = accepted["payload"]["case_ref"]
    await referral.stop()

    new_master = "k-new:" + base64.b64encode(b"\x07" * 32).decode()
    old_keys = settings.encryption_keys.get_secret_value()
    rotated = settings.model_copy(
        update={"encryption_keys": SecretStr(f"{new_master},{old_keys}"), "retention_check_seconds": 0.2}
    )
    referral = await runtimes(referral_app.spec(rotated), rotated)

    async def rewrapped():
        async with referral.pool.acquire() as conn:
            return await conn.fetchval("SELECT data_key_id FROM vault WHERE case_ref = $1", case_ref) == "k-new"

    await amqp.eventually(rewrapped, what="the case's key wrapped by the new master key")
    await referral.stop()
    retired = settings.model_copy(update={"encryption_keys": SecretStr(new_master)})
    referral = await runtimes(referral_app.spec(retired), retired)
    async with client_for(referral) as api:
        read = await api.get(
            f"/api/v1/cases/{case_ref}",
            params={"purpose": "plan"},
            headers=token(settings, party="AF", role="member", teams=[TEAM]),
        )
    assert read.status_code == 200 and read.json()["personnummer"]
