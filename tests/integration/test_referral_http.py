"""Referral HTTP API: the same rules as AMQP, consent-gated audited reads, and an authorisation
matrix over every route and role. Real PostgreSQL (and broker for the outbox)."""

from __future__ import annotations

import random
from datetime import date, timedelta

import asyncpg
import pytest

from services.referral import app as referral_app
from shared.platform.auth import mint_token, signing_key
from tests.support.http import client_for, token
from tests.support.referrals import TEAM, submit_referral

pytestmark = pytest.mark.infra
OTHER_TEAM = "SANDVIKEN-JARBO"


@pytest.fixture
async def api(settings, runtimes):
    runtime = await runtimes(referral_app.spec(settings), settings)
    async with client_for(runtime) as client:
        client.runtime = runtime
        yield client


def payload(**overrides) -> dict:
    return submit_referral(random.Random(), **overrides)["payload"]


async def test_http_submission_is_accepted_and_idempotent(settings, api):
    officer = token(settings, party="FK", role="officer", teams=[TEAM])
    body = payload()
    first = await api.post("/api/v1/referrals", json=body, headers=officer)
    assert first.status_code == 201, first.text
    again = await api.post("/api/v1/referrals", json=body, headers=officer)
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    async with api.runtime.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM referrals") == 1
        assert await conn.fetchval("SELECT referring_party FROM referrals") == "FK"


async def test_the_same_referral_submitted_at_once_opens_one_case_with_one_vault_row_and_its_consents(settings, api):
    """Eight submissions of one referral at the same moment: every one sees no earlier case, one
    opens it (case, vault row and consents in one statement), the others are refused by its
    unique index with nothing written, decide again and get the same answer."""
    import asyncio

    officer = token(settings, party="FK", role="officer", teams=[TEAM])
    body = payload()
    answers = await asyncio.gather(*(api.post("/api/v1/referrals", json=body, headers=officer) for _ in range(8)))
    assert {a.status_code for a in answers} == {201}, [a.text for a in answers]
    assert len({a.json()["case_ref"] for a in answers}) == 1
    async with api.runtime.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM referrals") == 1
        assert await conn.fetchval("SELECT count(*) FROM vault WHERE personnummer IS NOT NULL") == 1
        consents = await conn.fetchval("SELECT count(*) FROM consent_history")
    assert consents == len(body["consents"])


@pytest.mark.parametrize(
    "overrides, code",
    [
        ({"personnummer": "19800230-9810"}, "personnummer_birth_date"),
        ({"personnummer": "1980-05-17"}, "personnummer_format"),
        ({"personnummer": None}, "identity_missing"),
        ({"team_id": "NOPE"}, "unknown_team"),
        ({"question": ""}, "question_empty"),
        ({"reason_codes": ["BOGUS"]}, "unknown_reason_code"),
        ({"income_source": "LOTTERY"}, "unknown_income_source"),
        ({"consents": []}, "consent_missing"),
        ({"consents": [{"party": "XX", "given_on": "2026-01-01", "form_ref": "F"}]}, "unknown_party"),
        (
            {"consents": [{"party": "FK", "given_on": str(date.today() + timedelta(days=2)), "form_ref": "F"}]},
            "consent_in_future",
        ),
        ({"shoe_size": 44}, "unknown_field"),
        ({"agency_ref": None}, "invalid_value"),
        ({"question": "x" * 70_000}, "payload_too_large"),
    ],
)
async def test_each_rule_over_http(settings, api, overrides, code):
    body = payload(**overrides)
    if overrides.get("agency_ref", "") is None:
        del body["agency_ref"]
        code = "missing_field"
    response = await api.post(
        "/api/v1/referrals", json=body, headers=token(settings, party="AF", role="officer", teams=[TEAM])
    )
    assert response.status_code == 422, response.text
    reasons = response.json()["reasons"]
    assert code in [r["code"] for r in reasons]
    assert all(r["message_sv"] and r["message_en"] for r in reasons)
    if body.get("personnummer"):
        assert body["personnummer"] not in response.text


async def test_rejections_are_kept_for_the_agency(settings, api):
    officer = token(settings, party="KOMMUN", role="officer")
    await api.post("/api/v1/referrals", json=payload(team_id="NOPE"), headers=officer)
    listed = (await api.get("/api/v1/referrals/rejections", headers=officer)).json()
    assert len(listed) == 1 and listed[0]["reasons"][0]["code"] == "unknown_team"
    other = token(settings, party="AF", role="officer")
    assert (await api.get("/api/v1/referrals/rejections", headers=other)).json() == []


async def _new_case(settings, api, consents=("AF", "FK", "KOMMUN", "REGION"), **overrides) -> tuple[str, dict]:
    body = payload(consents=[{"party": p, "given_on": "2026-11-01", "form_ref": "F"} for p in consents], **overrides)
    response = await api.post(
        "/api/v1/referrals", json=body, headers=token(settings, party="AF", role="officer", teams=[TEAM])
    )
    assert response.status_code == 201, response.text
    return response.json()["case_ref"], body


async def test_details_only_with_consent_and_every_read_audited(settings, api):
    case_ref, body = await _new_case(settings, api, consents=("AF", "REGION"))
    region_member = token(settings, party="REGION", role="member", teams=[TEAM], user="rk-1")
    fk_member = token(settings, party="FK", role="member", teams=[TEAM], user="fk-1")

    read = await api.get(f"/api/v1/cases/{case_ref}", params={"purpose": "förmöte"}, headers=region_member)
    assert read.status_code == 200, read.text
    details = read.json()
    assert details["personnummer"] == body["personnummer"].replace("-", "")
    assert details["question"] == body["question"]

    denied = await api.get(f"/api/v1/cases/{case_ref}", params={"purpose": "förmöte"}, headers=fk_member)
    assert denied.status_code == 403 and denied.json()["detail"]["code"] == "no_consent"
    assert body["personnummer"] not in denied.text

    log = await api.get(f"/api/v1/cases/{case_ref}/access-log", headers=token(settings, party="REGION", role="auditor"))
    entries = log.json()["entries"]
    assert [(e["user_id"], e["outcome"], e["purpose"]) for e in entries] == [
        ("rk-1", "granted", "förmöte"),
        ("fk-1", "denied", "förmöte"),
    ]

    # the access log is append-only: the service's own role may not delete from it, and even
    # the tables' owner (the administrator who migrates) is refused by its trigger
    async with api.runtime.pool.acquire() as conn:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("DELETE FROM access_log")
    owner = await asyncpg.connect(settings.service_database_url("referral"))
    try:
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await owner.execute("DELETE FROM access_log")
    finally:
        await owner.close()


async def test_consent_withdrawal_stops_reads_and_consent_given_later_allows_them(settings, api):
    case_ref, _ = await _new_case(settings, api, consents=("AF", "FK"))
    fk_member = token(settings, party="FK", role="member", teams=[TEAM])
    officer = token(settings, party="AF", role="officer", teams=[TEAM])  # an officer records on their teams' cases
    url = f"/api/v1/cases/{case_ref}"
    assert (await api.get(url, params={"purpose": "plan"}, headers=fk_member)).status_code == 200

    withdrawn = await api.post(
        f"{url}/consents/FK/withdrawal",
        json={"withdrawn_on": str(date.today()), "on_behalf_of_individual": True},
        headers=officer,
    )
    assert withdrawn.status_code == 201, withdrawn.text
    assert (await api.get(url, params={"purpose": "plan"}, headers=fk_member)).status_code == 403

    given = await api.post(
        f"{url}/consents", json={"party": "FK", "given_on": str(date.today()), "form_ref": "F-9"}, headers=officer
    )
    assert given.status_code == 201
    assert (await api.get(url, params={"purpose": "plan"}, headers=fk_member)).status_code == 200
    history = (await api.get(f"{url}/consents", headers=fk_member)).json()["history"]
    assert [(h["party"], h["action"]) for h in history] == [
        ("AF", "given"),
        ("FK", "given"),
        ("FK", "withdrawn"),
        ("FK", "given"),
    ]


# --------------------------------------------------------------------------- authorisation matrix

ROLES = ["officer", "member", "coordinator", "admin", "auditor"]

# (role, party, teams) of the caller -> expected status per route, for a case of TEAM referred
# by AF with consent from AF and REGION only. Written out by hand from the rules, on purpose.
CALLERS = {
    "af-officer": ("officer", "AF", [TEAM]),
    "fk-officer": ("officer", "FK", [TEAM]),
    "af-officer-other-team": ("officer", "AF", [OTHER_TEAM]),
    "region-member-in-team": ("member", "REGION", [TEAM]),
    "fk-member-in-team": ("member", "FK", [TEAM]),
    "region-member-other-team": ("member", "REGION", [OTHER_TEAM]),
    "region-coordinator-in-team": ("coordinator", "REGION", [TEAM]),
    "region-coordinator-other-team": ("coordinator", "REGION", [OTHER_TEAM]),
    "kommun-admin": ("admin", "KOMMUN", [TEAM]),
    "region-auditor": ("auditor", "REGION", []),
}
EXPECTED = {
    # route:                   af-off fk-off af-oth r-mem fk-mem r-oth r-coo r-coo-oth admin auditor
    "submit": (201, 201, 403, 403, 403, 403, 403, 403, 403, 403),
    "rejections": (200, 200, 200, 403, 403, 403, 403, 403, 403, 403),
    "party_referrals": (200, 200, 200, 403, 403, 403, 403, 403, 403, 403),
    "details": (403, 403, 403, 200, 403, 403, 200, 403, 403, 403),
    "consents": (200, 200, 403, 200, 200, 403, 200, 403, 403, 200),
    "record_consent": (201, 201, 403, 403, 403, 403, 201, 403, 403, 403),
    "withdraw_consent": (201, 403, 201, 403, 403, 403, 201, 403, 403, 403),
    "access_log": (403, 403, 403, 403, 403, 403, 403, 403, 403, 200),
}


async def test_authorisation_matrix(settings, api):
    case_ref, _ = await _new_case(settings, api, consents=("AF", "REGION"))
    today = str(date.today())
    calls = {
        "submit": lambda h: api.post("/api/v1/referrals", json=payload(), headers=h),
        "rejections": lambda h: api.get("/api/v1/referrals/rejections", headers=h),
        "party_referrals": lambda h: api.get("/api/v1/referrals", headers=h),
        "details": lambda h: api.get(f"/api/v1/cases/{case_ref}", params={"purpose": "test"}, headers=h),
        "consents": lambda h: api.get(f"/api/v1/cases/{case_ref}/consents", headers=h),
        # FK may record its own consent; KOMMUN's may be withdrawn by the referring party (AF)
        # or the team's coordinator only
        "record_consent": lambda h: api.post(
            f"/api/v1/cases/{case_ref}/consents", headers=h, json={"party": "FK", "given_on": today, "form_ref": "F"}
        ),
        "withdraw_consent": lambda h: api.post(
            f"/api/v1/cases/{case_ref}/consents/KOMMUN/withdrawal", headers=h, json={"withdrawn_on": today}
        ),
        "access_log": lambda h: api.get(f"/api/v1/cases/{case_ref}/access-log", headers=h),
    }
    mismatches = []
    for route, call in calls.items():
        assert (await call({})).status_code == 401, f"{route} without a token"
        assert (await call({"Authorization": "Bearer not.a.token"})).status_code == 401
        # a token for another service only (the metrics dashboard's, say) is refused here
        for_metrics = mint_token(
            signing_key(settings),
            user_id="rk-1",
            party="REGION",
            role="coordinator",
            teams=[TEAM],
            audience=["metrics"],
        )
        refused = await call({"Authorization": f"Bearer {for_metrics}"})
        assert refused.status_code == 401 and refused.json()["detail"]["code"] == "wrong_audience", route
        for (caller, (role, party, teams)), expected in zip(CALLERS.items(), EXPECTED[route], strict=True):
            got = (await call(token(settings, party=party, role=role, teams=teams))).status_code
            if got != expected:
                mismatches.append(f"{route} as {caller}: expected {expected}, got {got}")
    assert not mismatches, "\n".join(mismatches)


async def test_a_body_too_large_or_too_deep_is_refused_before_parsing_or_sign_in(settings, api):
    # found by a review: FastAPI parsed a JSON body before the bearer check; a deeply nested
    # one gave a 500. Bounded before anything reads it: 413 and 422, nothing stored.
    async with api.runtime.pool.acquire() as conn:
        before = await conn.fetchval("SELECT count(*) FROM referrals")
    officer = token(settings, party="AF", role="officer")
    big = b'{"question": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    for headers in ({}, officer):  # with or without a token: not even read
        response = await api.post(
            "/api/v1/referrals", content=big, headers={**headers, "Content-Type": "application/json"}
        )
        assert response.status_code == 413, response.text
        assert response.json()["detail"]["code"] == "payload_too_large"
    deep = b"[" * 10_000 + b"]" * 10_000
    response = await api.post(
        "/api/v1/referrals", content=deep, headers={**officer, "Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"]["code"] == "too_deeply_nested"
    async with api.runtime.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM referrals") == before


async def test_an_officer_lists_the_partys_referrals_without_personal_data(settings, api):
    af_case, _ = await _new_case(settings, api, consents=("AF",))
    fk = token(settings, party="FK", role="officer", teams=[TEAM])
    fk_body = payload()
    fk_case = (await api.post("/api/v1/referrals", json=fk_body, headers=fk)).json()["case_ref"]
    listed = await api.get("/api/v1/referrals", headers=fk)
    assert listed.status_code == 200
    assert [c["case_ref"] for c in listed.json()] == [fk_case]
    [case] = listed.json()
    assert set(case) == {"case_ref", "agency_ref", "team_id", "referred_at", "closed_at", "exit_reason"}
    assert case["agency_ref"] == fk_body["agency_ref"] and case["closed_at"] is None
    af = token(settings, party="AF", role="officer")
    assert [c["case_ref"] for c in (await api.get("/api/v1/referrals", headers=af)).json()] == [af_case]
    assert (await api.get("/api/v1/referrals", params={"limit": 0}, headers=af)).status_code == 422


async def test_a_coordinator_who_records_another_partys_consent_gains_no_read_from_it(settings, api):
    """No self-granted access, on the real service: the team's coordinator (REGION) records FK's
    consent on a case without REGION's; the coordinator is still refused (no_consent, and the
    refusal logged), FK's member may now read, and the consent names who recorded it."""
    case_ref, body = await _new_case(settings, api, consents=("AF",))
    coordinator = token(settings, party="REGION", role="coordinator", teams=[TEAM], user="rk-1")
    url = f"/api/v1/cases/{case_ref}"
    given = await api.post(
        f"{url}/consents", json={"party": "FK", "given_on": str(date.today()), "form_ref": "F-2"}, headers=coordinator
    )
    assert given.status_code == 201, given.text
    refused = await api.get(url, params={"purpose": "plan"}, headers=coordinator)
    assert refused.status_code == 403 and refused.json()["detail"]["code"] == "no_consent"
    assert body["personnummer"] not in refused.text
    fk_member = token(settings, party="FK", role="member", teams=[TEAM], user="fk-1")
    assert (await api.get(url, params={"purpose": "plan"}, headers=fk_member)).status_code == 200
    log = await api.get(f"{url}/access-log", headers=token(settings, party="REGION", role="auditor"))
    assert [(e["user_id"], e["outcome"]) for e in log.json()["entries"]] == [("rk-1", "denied"), ("fk-1", "granted")]
    async with api.runtime.pool.acquire() as conn:
        recorded = await conn.fetchval(
            "SELECT recorded_by_user FROM consent_history WHERE case_ref = $1 AND party = 'FK'", case_ref
        )
    assert recorded == "rk-1"


async def test_a_token_too_long_lived_for_another_service_or_of_an_unknown_key_is_refused(settings, api):
    """The real service refuses, 401 with the reason: a token living longer than the cap, a
    token for another service only, a token signed by a key not in its key set; a well-formed
    one of the same claims is taken."""
    import time

    import jwt
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from shared.platform.auth import ISSUER, MAX_LIFETIME_SECONDS

    key = signing_key(settings)
    now = int(time.time())
    claims = {"sub": "af-1", "party": "AF", "role": "officer", "teams": [TEAM], "iss": ISSUER, "iat": now}

    def bearer(extra: dict, private=key.key, kid=key.key_id) -> dict:
        value = jwt.encode({**claims, **extra}, private, algorithm="EdDSA", headers={"kid": kid})
        return {"Authorization": f"Bearer {value}"}

    cases = {
        "token_lifetime_too_long": bearer({"aud": ["referral"], "exp": now + MAX_LIFETIME_SECONDS + 3600}),
        "wrong_audience": bearer({"aud": ["meeting"], "exp": now + 600}),
        "key_unknown": bearer({"aud": ["referral"], "exp": now + 600}, Ed25519PrivateKey.generate(), "not-ours"),
    }
    for code, headers in cases.items():
        response = await api.get("/api/v1/referrals", headers=headers)
        assert response.status_code == 401 and response.json()["detail"]["code"] == code, (code, response.text)
    assert (
        await api.get("/api/v1/referrals", headers=bearer({"aud": ["referral"], "exp": now + 600}))
    ).status_code == 200
