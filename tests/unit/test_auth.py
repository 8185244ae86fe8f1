from __future__ import annotations

import time

import jwt
import pydantic
import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from shared.contracts.vocabulary import Party
from shared.platform import auth
from shared.platform.auth import AuthError, Principal, Role, authenticate, main, mint_token, require_roles, verify_token
from shared.platform.config import Settings

SECRET = "unit-test-jwt-secret-of-at-least-32-bytes"
OTHER_SECRET = "another-jwt-secret-of-at-least-32-bytes!"


def _token(**overrides) -> str:
    args = dict(user_id="u1", party=Party.AF, role=Role.OFFICER, teams=["GAVLE-HC1"])
    return mint_token(SECRET, **(args | overrides))


def _raw(**claims) -> str:
    """A token signed with SECRET whose claims bypass mint_token's checks."""
    now = int(time.time())
    base = {"sub": "u1", "party": "AF", "role": "officer", "teams": [], "iss": "trisam", "iat": now, "exp": now + 60}
    return jwt.encode({k: v for k, v in (base | claims).items() if v is not None}, SECRET, algorithm="HS256")


def _code(token: str, secret: str = SECRET) -> str:
    with pytest.raises(AuthError) as exc:
        verify_token(secret, token)
    for part in filter(None, token.split(".")):  # the message never echoes the token
        assert part not in str(exc.value)
    return exc.value.code


def test_round_trip():
    principal = verify_token(SECRET, _token(teams=["GAVLE-HC1", "SANDVIKEN"]))
    assert principal == Principal(
        user_id="u1", party=Party.AF, role=Role.OFFICER, teams=frozenset({"GAVLE-HC1", "SANDVIKEN"})
    )
    assert principal.in_team("SANDVIKEN") and not principal.in_team("OTHER")
    assert verify_token(SECRET, _token(teams=())).teams == frozenset()


def test_expired_token():
    assert _code(_token(now=time.time() - 7200, ttl_seconds=3600)) == "token_expired"


def test_wrong_secret_and_tampering_and_garbage_are_invalid():
    token = _token()
    assert _code(token, OTHER_SECRET) == "token_invalid"
    header, payload, signature = token.split(".")
    forged = jwt.encode(
        {
            "sub": "u1",
            "party": "AF",
            "role": "admin",
            "teams": [],
            "iss": "trisam",
            "iat": int(time.time()),
            "exp": int(time.time()) + 60,
        },
        OTHER_SECRET,
        algorithm="HS256",
    ).split(".")[1]
    assert _code(f"{header}.{forged}.{signature}") == "token_invalid"
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    assert _code(f"{header}.{payload}.{flipped}") == "token_invalid"
    assert _code("not-a-token") == "token_invalid"
    unsigned = jwt.encode({"sub": "u1"}, None, algorithm="none")
    assert _code(unsigned) == "token_invalid"
    assert _code("") == "token_missing"


@pytest.mark.parametrize(
    "claims",
    [
        {"party": "SKATTEVERKET"},
        {"party": None},
        {"role": "superuser"},
        {"role": None},
        {"teams": "GAVLE-HC1"},
        {"teams": [1, 2]},
        {"teams": None},
        {"sub": None},
        {"sub": ""},
        {"sub": 42},
        {"exp": None},
        {"iat": None},
        {"iss": None},
        {"iss": "someone-else"},
    ],
)
def test_missing_or_invalid_claims(claims):
    assert _code(_raw(**claims)) == "claims_invalid"


def test_mint_refuses_bad_values():
    for bad in ({"party": "XX"}, {"role": "root"}, {"teams": [""]}, {"user_id": ""}, {"ttl_seconds": 0}):
        with pytest.raises(ValueError):
            _token(**bad)


def _app() -> TestClient:
    app = FastAPI()
    auth = authenticate(Settings(jwt_secret=SECRET))

    @app.get("/me")
    async def me(principal: Principal = Depends(auth)) -> dict:
        return {"user": principal.user_id, "teams": sorted(principal.teams)}

    @app.post("/teams")
    async def create_team(principal: Principal = Depends(auth)) -> dict:
        require_roles(principal, Role.ADMIN, Role.COORDINATOR)
        return {"ok": True}

    return TestClient(app)


def test_dependency_answers_401_without_or_with_a_bad_token():
    client = _app()
    response = client.get("/me")
    assert response.status_code == 401 and response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["detail"]["code"] == "token_missing"
    bad = _token()[:-3] + "xyz"
    response = client.get("/me", headers={"Authorization": f"Bearer {bad}"})
    assert response.status_code == 401 and response.json()["detail"]["code"] == "token_invalid"
    assert bad not in response.text
    response = client.get("/me", headers={"Authorization": f"Basic {_token()}"})
    assert response.status_code == 401 and response.json()["detail"]["code"] == "token_missing"


def test_dependency_gives_the_principal_and_require_roles_answers_403():
    client = _app()
    headers = {"Authorization": f"Bearer {_token()}"}
    response = client.get("/me", headers=headers)
    assert response.status_code == 200
    assert response.json() == {"user": "u1", "teams": ["GAVLE-HC1"]}
    response = client.post("/teams", headers=headers)
    assert response.status_code == 403
    assert response.json()["detail"]["code"] == "role_not_allowed"
    admin = {"Authorization": f"Bearer {_token(role=Role.ADMIN)}"}
    assert client.post("/teams", headers=admin).status_code == 200


def test_openapi_shows_bearer_auth():
    schemes = _app().get("/openapi.json").json()["components"]["securitySchemes"]
    assert schemes["HTTPBearer"]["scheme"] == "bearer"


def test_cli_mints_a_token_that_verifies(monkeypatch, capsys):
    monkeypatch.delenv("TRISAM_ENV", raising=False)
    monkeypatch.setenv("TRISAM_JWT_SECRET", SECRET)
    assert (
        main(
            [
                "mint",
                "--sub",
                "U",
                "--party",
                "FK",
                "--role",
                "coordinator",
                "--team",
                "T1",
                "--team",
                "T2",
                "--ttl",
                "600",
            ]
        )
        == 0
    )
    principal = verify_token(SECRET, capsys.readouterr().out.strip())
    assert principal == Principal(user_id="U", party=Party.FK, role=Role.COORDINATOR, teams=frozenset({"T1", "T2"}))


def test_dev_jwt_secret_is_refused_outside_dev():
    real = {
        "pseudonym_key": "a-real-secret",
        "encryption_keys": "k1:" + "A" * 44,
        "database_url": "postgresql://trisam:s3cret@db:5432/postgres",
        "amqp_url": "amqp://trisam-svc-referral:s3cret@mq:5672/",
        "database_role_password": "a-service-role-password",
        "allow_plaintext": True,
    }
    with pytest.raises(pydantic.ValidationError, match="TRISAM_JWT_SECRET"):
        Settings(env="production", **real)
    assert Settings(env="production", jwt_secret=SECRET, **real).env == "production"


def test_a_token_that_lives_too_long_is_refused_and_cannot_be_minted():
    # found by a review: a token valid for 100 years was accepted
    now = time.time()
    claims = {
        "sub": "x",
        "party": "AF",
        "role": "officer",
        "teams": [],
        "iss": auth.ISSUER,
        "iat": int(now),
        "exp": int(now) + 100 * 365 * 86400,
    }
    forged = jwt.encode(claims, SECRET, algorithm=auth.ALGORITHM)
    with pytest.raises(auth.AuthError) as refused:
        auth.verify_token(SECRET, forged)
    assert refused.value.code == "token_lifetime_too_long"
    with pytest.raises(ValueError):
        auth.mint_token(SECRET, user_id="x", party="AF", role="officer", ttl_seconds=auth.MAX_LIFETIME_SECONDS + 1)
    assert auth.verify_token(
        SECRET, auth.mint_token(SECRET, user_id="x", party="AF", role="officer", ttl_seconds=auth.MAX_LIFETIME_SECONDS)
    )


def test_a_signing_secret_shorter_than_32_bytes_is_refused():
    # found by a review: a token signed with a 1-byte secret was accepted
    with pytest.raises(pydantic.ValidationError, match="32 bytes"):
        Settings(jwt_secret="k")


def test_the_mint_command_is_for_development_only(monkeypatch):
    monkeypatch.setenv("TRISAM_ENV", "production")
    for name, value in {
        "TRISAM_JWT_SECRET": SECRET,
        "TRISAM_PSEUDONYM_KEY": "a-real-secret",
        "TRISAM_ENCRYPTION_KEYS": "k1:" + "A" * 44,
        "TRISAM_DATABASE_URL": "postgresql://trisam:s3cret@db:5432/postgres",
        "TRISAM_AMQP_URL": "amqp://trisam-svc-referral:s3cret@mq:5672/",
        "TRISAM_DATABASE_ROLE_PASSWORD": "a-service-role-password",
        "TRISAM_ALLOW_PLAINTEXT": "true",
    }.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit):
        main(["mint", "--sub", "U", "--role", "board"])


def test_a_token_is_accepted_only_by_the_services_it_names():
    """An audience per service: a token minted for the metrics service only is refused by the
    referral service; a token without an audience is refused where one is checked."""
    for_metrics = _token(audience=["metrics"])
    assert verify_token(SECRET, for_metrics, "metrics").user_id == "u1"
    with pytest.raises(AuthError) as exc:
        verify_token(SECRET, for_metrics, "referral")
    assert exc.value.code == "wrong_audience"
    assert verify_token(SECRET, _token(), "referral").user_id == "u1"  # the default: every service
    with pytest.raises(AuthError) as exc:
        verify_token(SECRET, _raw(), "referral")
    assert exc.value.code == "claims_invalid"
