"""The workspace in process, against fake services (httpx MockTransport) and a fake identity
provider: the authorisation matrix over every route, what reaches the browser, the forms'
CSRF token, the session cookie and security headers, the development sign-in refused outside
development, and the OpenID Connect sign-in (authorization code with PKCE, an in-process issuer
with a JWKS)."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import time
from urllib.parse import parse_qs, urlparse

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import ValidationError

from services.workspace import pages
from services.workspace.app import build_app
from services.workspace.client import Answer
from services.workspace.oidc import Oidc
from services.workspace.settings import WorkspaceSettings
from tests.support.identities import random_adult
from tests.support.privacy import personnummer_in

PERSONNUMMER = random_adult(random.Random(5))
CASE, MEETING, TEAM = "TS-AAAABBBBCCCCDDDD", "T1-20261201", "T1"
FOLLOWUP = f"{CASE}.six_months"
URLS = {f"{s}_url": f"http://{s}" for s in ("referral", "meeting", "followup", "metrics")}

_AGENDA_ITEM = {
    "case_ref": CASE, "place": 1, "referring_party": "AF", "referred_at": "2026-11-20T08:00:00+00:00",
    "status": "queued", "outcome": None, "postponements": 1,
    "last_postponement": {"reason": "consent_missing", "parties": ["FK"]},
    "consents": {"AF": "given", "REGION": "given", "FK": "withdrawn"},
}  # fmt: skip
_MEETING = {
    "meeting_id": MEETING, "team_id": TEAM, "meeting_date": "2026-12-01", "starts_at": "2026-12-01T08:00:00+00:00",
    "cutoff_at": "2026-11-26T08:00:00+00:00", "capacity": 5, "status": "closed", "cancel_reason": None,
    "pre_meeting_held_on": None, "agenda": [_AGENDA_ITEM],
}  # fmt: skip
_FOLLOWUP = {
    "followup_id": FOLLOWUP, "case_ref": CASE, "kind": "six_months", "team_id": TEAM, "responsible_party": "AF",
    "consultation_held_on": "2026-12-01", "due_on": "2027-06-01", "state": "due", "reminders_sent": 0,
    "revision": 0, "escalated": False,
}  # fmt: skip


class FakeServices:
    """The four services' answers, canned; the referral service gives details to REGION only
    (the others lack consent). Records every call with its bearer token."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        service, method, path = request.url.host, request.method, request.url.path
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        self.calls.append((service, method, path, token))
        claims = jwt.decode(token, options={"verify_signature": False}) if token.count(".") == 2 else {}
        if method == "POST":
            body = json.loads(request.content or b"{}")
            if path == "/api/v1/referrals" and body.get("personnummer") == "bad":
                reason = {"code": "personnummer_format", "field": "personnummer", "message_sv": "Fel format.",
                          "message_en": "Wrong format."}  # fmt: skip
                return httpx.Response(422, json={"status": "rejected", "reasons": [reason]})
            return httpx.Response(201, json={"case_ref": CASE, "status": "recorded"})
        answer = self.answer(service, path, claims)
        return httpx.Response(404, json={"detail": {"code": "not_found"}}) if answer is None else answer

    def answer(self, service: str, path: str, claims: dict) -> httpx.Response | None:
        if (service, path) == ("referral", f"/api/v1/cases/{CASE}"):
            if claims.get("party") != "REGION":
                return httpx.Response(403, json={"detail": {"code": "no_consent", "message": "no consent"}})
            return httpx.Response(200, json={"personnummer": PERSONNUMMER.replace("-", ""), "question": "Frågan",
                                             "protected_identity": False, "erased": False})  # fmt: skip
        canned = {
            ("referral", "/api/v1/referrals"): [
                {
                    "case_ref": CASE,
                    "agency_ref": "A1",
                    "team_id": TEAM,
                    "referred_at": "2026-11-20T08:00:00+00:00",
                    "closed_at": None,
                    "exit_reason": None,
                }  # fmt: skip
            ],
            ("referral", f"/api/v1/cases/{CASE}/consents"): {"case_ref": CASE, "history": []},
            ("referral", f"/api/v1/cases/{CASE}/access-log"): {"case_ref": CASE, "entries": []},
            ("meeting", "/api/v1/teams"): [{"team_id": TEAM, "name": "Team 1", "municipality": "Gävle"}],
            ("meeting", f"/api/v1/teams/{TEAM}/meetings"): {"team": {"name": "Team 1"}, "meetings": [_MEETING]},
            ("meeting", f"/api/v1/teams/{TEAM}/queue"): {"team_id": TEAM, "cases": []},
            ("meeting", f"/api/v1/meetings/{MEETING}"): _MEETING,
            ("meeting", f"/api/v1/cases/{CASE}/schedule"): {
                "case_ref": CASE,
                "team_id": TEAM,
                "status": "queued",
                "postponements": 0,
                "last_postponement": None,
                "position": 1,
                "meeting_id": MEETING,
                "meeting_date": "2026-12-01",
                "expected_date": "2026-12-01",
            },  # fmt: skip
            ("followup", "/api/v1/followups"): {"party": "AF", "state": "open", "followups": [_FOLLOWUP]},
            ("followup", f"/api/v1/teams/{TEAM}/followups"): {"team_id": TEAM, "followups": [_FOLLOWUP]},
            ("followup", f"/api/v1/followups/{FOLLOWUP}"): {**_FOLLOWUP, "records": []},
            ("metrics", "/api/v1/access-log"): {"reads": []},
        }
        found = canned.get((service, path))
        return None if found is None else httpx.Response(200, json=found)


@pytest.fixture
def fakes() -> FakeServices:
    return FakeServices()


def workspace(fakes: FakeServices, **settings) -> httpx.AsyncClient:
    app = build_app(WorkspaceSettings(**URLS, **settings), transport=httpx.MockTransport(fakes))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://workspace")


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


async def sign_in(client: httpx.AsyncClient, role: str, party: str = "AF", team: str = TEAM) -> str:
    """The development sign-in; gives the session's CSRF token."""
    csrf = csrf_of((await client.get("/sign-in")).text)
    answer = await client.post(
        "/dev/sign-in", data={"csrf": csrf, "user_id": f"{role}-1", "role": role, "party": party, "team": team}
    )
    assert answer.status_code == 303, answer.text
    return csrf_of((await client.get("/sign-in")).text)


# --------------------------------------------------------------------------- the matrix

ROLES = ("anonymous", "officer", "member", "coordinator", "auditor")
# every page and form of the workspace -> (method, path, form) and the status per role, in
# ROLES order: 303 = off to the sign-in page; 403 = not for this role. Written out by hand.
# (Sign-in, sign-out, language, health and static files are for anyone: see below.)
ROUTES = {
    "/team": ("GET", "/team", None, (303, 403, 403, 200, 403)),
    "/meetings/{meeting_id}": ("GET", f"/meetings/{MEETING}", None, (303, 403, 403, 200, 403)),
    "/meetings/{meeting_id}/cancellation": (
        "POST", f"/meetings/{MEETING}/cancellation", {"reason": "staff_absent"}, (303, 403, 403, 303, 403)),
    "/meetings/{meeting_id}/pre-meeting": (
        "POST", f"/meetings/{MEETING}/pre-meeting", {"held_on": "2026-11-30"}, (303, 403, 403, 303, 403)),
    "/meetings/{meeting_id}/cases/{case_ref}/consultation": (
        "GET", f"/meetings/{MEETING}/cases/{CASE}/consultation", None, (303, 403, 403, 200, 403)),
    "/meetings/{meeting_id}/cases/{case_ref}/consultation POST": (
        "POST", f"/meetings/{MEETING}/cases/{CASE}/consultation",
        {"outcome": "held", "held_on": "2026-12-01", "parties_present": "AF", "individual_attended": "no"},
        (303, 403, 403, 303, 403)),
    "/agenda": ("GET", "/agenda", None, (303, 403, 200, 200, 403)),
    "/agenda/purpose": ("POST", "/agenda/purpose", {"purpose": "förmöte", "meeting_id": MEETING},
                        (303, 403, 303, 303, 403)),
    "/referrals/new": ("GET", "/referrals/new", None, (303, 200, 403, 403, 403)),
    "/referrals/new POST": ("POST", "/referrals/new", {"agency_ref": "A1"}, (303, 303, 403, 403, 403)),
    "/cases": ("GET", "/cases", None, (303, 200, 403, 403, 403)),
    "/cases/{case_ref}": ("GET", f"/cases/{CASE}", None, (303, 200, 403, 403, 403)),
    "/cases/{case_ref}/consents": (
        "POST", f"/cases/{CASE}/consents", {"party": "FK", "given_on": "2026-11-30", "form_ref": "F"},
        (303, 303, 403, 403, 403)),
    "/cases/{case_ref}/withdrawal": (
        "POST", f"/cases/{CASE}/withdrawal", {"party": "FK", "withdrawn_on": "2026-11-30"},
        (303, 303, 403, 403, 403)),
    "/followups": ("GET", "/followups", None, (303, 200, 403, 403, 403)),
    "/followups/{followup_id}": ("GET", f"/followups/{FOLLOWUP}", None, (303, 200, 403, 403, 403)),
    "/followups/{followup_id} POST": (
        "POST", f"/followups/{FOLLOWUP}", {"recorded_on": "2027-06-01", "reached": "no"}, (303, 303, 403, 403, 403)),
    "/audit": ("GET", f"/audit?case_ref={CASE}", None, (303, 403, 403, 403, 200)),
    "/audit/figures": ("GET", "/audit/figures", None, (303, 403, 403, 403, 200)),
}  # fmt: skip
PUBLIC = {"/", "/sign-in", "/dev/sign-in", "/auth/login", "/auth/callback", "/sign-out", "/lang/{lang}",
          "/health/live", "/health/ready", "/static"}  # fmt: skip


def test_the_matrix_covers_every_route_of_the_workspace():
    app = build_app(WorkspaceSettings(**URLS))
    routes = set()
    for route in app.routes:
        path = getattr(route, "path", None) or getattr(route, "path_format", None)
        for method in getattr(route, "methods", None) or {"GET"}:
            if path and method != "HEAD":
                routes.add(path if method == "GET" or f"{path} POST" not in ROUTES else f"{path} POST")
    covered = set(ROUTES) | PUBLIC
    assert routes - covered == set(), "routes missing from the authorisation matrix"


async def test_authorisation_matrix(fakes):
    mismatches = []
    for index, role in enumerate(ROLES):
        async with workspace(fakes) as client:
            csrf = await sign_in(client, role, party="REGION") if role != "anonymous" else ""
            for name, (method, path, form, expected) in ROUTES.items():
                if method == "GET":
                    got = (await client.get(path)).status_code
                else:
                    got = (await client.post(path, data={**form, "csrf": csrf})).status_code
                if got != expected[index]:
                    mismatches.append(f"{name} as {role}: expected {expected[index]}, got {got}")
    assert not mismatches, "\n".join(mismatches)


# --------------------------------------------------------------------------- what reaches the browser


async def test_a_member_without_consent_gets_the_notice_and_no_personal_data(fakes):
    async with workspace(fakes) as fk:
        csrf = await sign_in(fk, "member", party="FK")
        before = await fk.get("/agenda")
        assert "purpose-form" in before.text and not [c for c in fakes.calls if c[2] == f"/api/v1/cases/{CASE}"]
        await fk.post("/agenda/purpose", data={"csrf": csrf, "purpose": "förmöte", "meeting_id": MEETING})
        page = (await fk.get("/agenda")).text
        assert "återkallat samtycket" in page  # FK's consent is withdrawn: that notice
        assert personnummer_in(page) == [] and "Frågan" not in page
    async with workspace(fakes) as region:
        csrf = await sign_in(region, "member", party="REGION")
        await region.post("/agenda/purpose", data={"csrf": csrf, "purpose": "förmöte", "meeting_id": MEETING})
        page = (await region.get("/agenda")).text
        assert PERSONNUMMER.replace("-", "") in page and "Frågan" in page
    reads = [c for c in fakes.calls if c[2] == f"/api/v1/cases/{CASE}"]
    assert len(reads) == 2 and all(c[3] for c in reads)  # each read with the person's own token


async def test_a_purpose_holding_an_identity_number_is_refused_before_it_is_sent(fakes):
    async with workspace(fakes) as client:
        csrf = await sign_in(client, "member", party="REGION")
        refused = await client.post(
            "/agenda/purpose", data={"csrf": csrf, "purpose": f"om {PERSONNUMMER}", "meeting_id": MEETING}
        )
        assert refused.status_code == 422 and "personnummer" in refused.text
        assert personnummer_in(refused.text) == []


async def test_the_referral_forms_refusal_shows_the_apis_message_in_either_language(fakes):
    async with workspace(fakes) as client:
        csrf = await sign_in(client, "officer")
        refused = await client.post("/referrals/new", data={"csrf": csrf, "personnummer": "bad", "agency_ref": "A"})
        assert refused.status_code == 422 and "Fel format." in refused.text
        await client.get("/lang/en?next=/cases")
        refused = await client.post("/referrals/new", data={"csrf": csrf, "personnummer": "bad", "agency_ref": "A"})
        assert "Wrong format." in refused.text and 'lang="en"' in refused.text


async def test_a_consultation_form_with_problems_says_each_and_sends_nothing(fakes):
    async with workspace(fakes) as client:
        csrf = await sign_in(client, "coordinator", party="REGION")
        path = f"/meetings/{MEETING}/cases/{CASE}/consultation"
        refused = await client.post(path, data={"csrf": csrf, "outcome": "held", "action_0_type": "sip"})
        assert refused.status_code == 422
        for field in ("held_on", "parties_present", "individual_attended", "action_0"):
            assert f'id="{field}-error"' in refused.text, field
        assert not [c for c in fakes.calls if c[1] == "POST"]


# --------------------------------------------------------------------------- the session and the headers


async def test_forms_need_the_sessions_csrf_token_and_the_cookie_is_httponly_and_strict(fakes):
    async with workspace(fakes) as client:
        first = await client.get("/sign-in")
        cookie = first.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie  # dev: http
        forged = await client.post("/dev/sign-in", data={"csrf": "x", "user_id": "u", "role": "officer", "party": "AF"})
        assert forged.status_code == 403
        csrf = await sign_in(client, "officer")
        assert (await client.post(f"/cases/{CASE}/consents", data={"party": "FK"})).status_code == 403
        assert (await client.post("/sign-out", data={"csrf": csrf})).status_code == 303
        assert (await client.get("/cases")).status_code == 303  # signed out


async def test_every_page_has_the_security_headers_and_no_inline_script(fakes):
    async with workspace(fakes) as client:
        await sign_in(client, "coordinator", party="REGION")
        page = await client.get("/team")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert page.headers["x-content-type-options"] == "nosniff" and page.headers["cache-control"] == "no-store"
        assert "X-Correlation-Id".lower() in page.headers
        assert re.findall(r"<script(?![^>]*\bsrc=)", page.text) == []  # every script from a file
        assert re.findall(r"\sstyle=", page.text) == [] and "<style" not in page.text
        assert "Inloggad som" in page.text and "rehabkoordinator" in page.text
        htmx = await client.get("/static/htmx.min.js")
        assert htmx.status_code == 200 and "htmx" in htmx.text[:200]


async def test_the_development_sign_in_is_refused_outside_development(fakes, monkeypatch):
    production = {
        "env": "production",
        "workspace_session_key": "k" * 40,
        "oidc_issuer": "https://idp.example",
        "oidc_client_id": "workspace",
        "allow_plaintext": True,
    }
    async with workspace(fakes, **production) as client:
        page = await client.get("/sign-in")
        assert "dev-sign-in" not in page.text and "/auth/login" in page.text
        assert "secure" in page.headers["set-cookie"].lower()
        refused = await client.post("/dev/sign-in", data={"csrf": "x", "user_id": "u", "role": "officer"})
        assert refused.status_code == 404
    for missing in ("workspace_session_key", "oidc_issuer"):
        with pytest.raises(ValidationError):
            WorkspaceSettings(**URLS, **{k: v for k, v in production.items() if k != missing})
    with pytest.raises(ValidationError, match="HTTPS"):
        WorkspaceSettings(**URLS, **{k: v for k, v in production.items() if k != "allow_plaintext"})


def test_a_cases_status_for_the_officer():
    referral = {"case_ref": CASE, "closed_at": None}
    schedule = Answer(200, {"status": "queued", "meeting_id": MEETING, "meeting_date": "2026-12-01"})
    assert pages.case_status(referral, schedule, [])["status"] == "scheduled_for"
    postponed = Answer(200, {"status": "queued", "postponements": 1, "last_postponement": {"reason": "x"}})
    assert pages.case_status(referral, postponed, [])["status"] == "postponed"
    assert pages.case_status(referral, Answer(200, {"status": "consulted"}), [_FOLLOWUP])["status"] == "followup_due"
    assert pages.case_status(referral, Answer(200, {"status": "consulted"}), [])["status"] == "consulted"
    assert pages.case_status({**referral, "closed_at": "x"}, schedule, [])["status"] == "case_closed"
    assert pages.case_status(referral, Answer(200, {"status": "queued"}), [])["status"] == "accepted"


# --------------------------------------------------------------------------- OpenID Connect

ISSUER, CLIENT = "https://idp.test", "trisam-workspace"


class FakeProvider:
    """An identity provider in process: discovery, JWKS, and a token endpoint that checks the
    PKCE verifier against the challenge of the authorization request."""

    def __init__(self, claims: dict) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.claims, self.challenge, self.nonce, self.verified = claims, "", "", False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/.well-known/openid-configuration":
            return httpx.Response(200, json={
                "issuer": ISSUER, "authorization_endpoint": f"{ISSUER}/authorize", "token_endpoint": f"{ISSUER}/token",
                "jwks_uri": f"{ISSUER}/jwks", "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
            })  # fmt: skip
        if path == "/jwks":
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
            return httpx.Response(200, json={"keys": [{**jwk, "kid": "idp-1", "alg": "RS256", "use": "sig"}]})
        if path == "/token":
            form = parse_qs(request.content.decode())
            verifier = form["code_verifier"][0]
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if form["code"] != ["the-code"] or digest != self.challenge:
                return httpx.Response(400, json={"error": "invalid_grant"})
            self.verified = True
            now = int(time.time())
            id_token = jwt.encode(
                {"iss": ISSUER, "aud": CLIENT, "sub": "rk-7", "iat": now, "exp": now + 600, "nonce": self.nonce,
                 **self.claims},
                self.key, algorithm="RS256", headers={"kid": "idp-1"},
            )  # fmt: skip
            return httpx.Response(200, json={"access_token": "access-token-of-rk-7", "token_type": "Bearer",
                                             "expires_in": 600, "id_token": id_token})  # fmt: skip
        return httpx.Response(404)


async def _oidc_sign_in(fakes: FakeServices, provider: FakeProvider) -> tuple[httpx.AsyncClient, httpx.Response]:
    settings = WorkspaceSettings(
        **URLS, oidc_issuer=ISSUER, oidc_client_id=CLIENT, oidc_client_secret="s3cret",
        oidc_role_claim="trisam_role", oidc_party_claim="trisam_party", oidc_teams_claim="trisam_teams",
    )  # fmt: skip
    app = build_app(settings, Oidc(settings, transport=httpx.MockTransport(provider)), httpx.MockTransport(fakes))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://workspace")
    away = await client.get("/auth/login")
    assert away.status_code == 302 and away.headers["location"].startswith(f"{ISSUER}/authorize")
    asked = parse_qs(urlparse(away.headers["location"]).query)
    assert asked["code_challenge_method"] == ["S256"] and asked["client_id"] == [CLIENT]
    provider.challenge, provider.nonce = asked["code_challenge"][0], asked["nonce"][0]
    back = await client.get("/auth/callback", params={"code": "the-code", "state": asked["state"][0]})
    return client, back


async def test_openid_connect_sign_in_with_pkce_against_a_provider(fakes):
    provider = FakeProvider({"trisam_role": "coordinator", "trisam_party": "REGION", "trisam_teams": [TEAM]})
    client, back = await _oidc_sign_in(fakes, provider)
    try:
        assert provider.verified and back.status_code == 303 and back.headers["location"] == "/team"
        page = await client.get("/team")
        assert page.status_code == 200 and "rk-7" in page.text and "rehabkoordinator" in page.text
        assert {c[3] for c in fakes.calls} == {"access-token-of-rk-7"}  # the provider's token, passed on
        # a code used again (or a forged state) signs no one in
        again = await client.get("/auth/callback", params={"code": "the-code", "state": "forged"})
        assert again.status_code == 401
    finally:
        await client.aclose()


async def test_openid_connect_refuses_a_role_the_workspace_does_not_serve(fakes):
    provider = FakeProvider({"trisam_role": "board", "trisam_party": None, "trisam_teams": []})
    client, back = await _oidc_sign_in(fakes, provider)
    try:
        assert back.status_code == 401 and "Din roll får inte göra detta." in back.text
        assert (await client.get("/team")).status_code == 303  # not signed in
    finally:
        await client.aclose()
