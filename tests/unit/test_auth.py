from __future__ import annotations

import base64
import functools
import json
import time

import httpx
import jwt
import pydantic
import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from shared.contracts.vocabulary import Party
from shared.platform import auth, keys
from shared.platform.auth import AuthError, Principal, Role, authenticate, main, mint_token, require_roles, verify_token
from shared.platform.config import Settings
from shared.platform.keys import DEV_JWKS, KeySet, KeySource, new_key_pair

# The identity provider's key pair in these tests (kid k1), and its public key set
_PRIVATE, _PUBLIC = new_key_pair("k1")
KEY = jwt.PyJWK(_PRIVATE)
KEYS = KeySet.from_jwks(_PUBLIC, dev=False)
# Production settings but for the key set
REAL = {
    "pseudonym_key": "a-real-secret",
    "encryption_keys": "k1:" + "A" * 44,
    "database_url": "postgresql://trisam:s3cret@db:5432/postgres",
    "amqp_url": "amqp://trisam-svc-referral:s3cret@mq:5672/",
    "database_role_password": "a-service-role-password",
    "allow_plaintext": True,  # TLS: tests/unit/test_config_and_topology.py
}


def _token(**overrides) -> str:
    args = dict(user_id="u1", party=Party.AF, role=Role.OFFICER, teams=["GAVLE-HC1"])
    return mint_token(KEY, **(args | overrides))


def _raw(**claims) -> str:
    """A token signed with KEY whose claims bypass mint_token's checks."""
    now = int(time.time())
    base = {"sub": "u1", "party": "AF", "role": "officer", "teams": [], "iss": "trisam", "iat": now, "exp": now + 60}
    return jwt.encode(
        {k: v for k, v in (base | claims).items() if v is not None}, KEY.key, algorithm="EdDSA", headers={"kid": "k1"}
    )


def _code(token: str, keys: KeySet = KEYS) -> str:
    with pytest.raises(AuthError) as exc:
        verify_token(keys, token)
    for part in filter(None, token.split(".")):  # the message never echoes the token
        assert part not in str(exc.value)
    return exc.value.code


def test_round_trip():
    principal = verify_token(KEYS, _token(teams=["GAVLE-HC1", "SANDVIKEN"]))
    assert principal == Principal(
        user_id="u1", party=Party.AF, role=Role.OFFICER, teams=frozenset({"GAVLE-HC1", "SANDVIKEN"})
    )
    assert principal.in_team("SANDVIKEN") and not principal.in_team("OTHER")
    assert verify_token(KEYS, _token(teams=())).teams == frozenset()
    assert jwt.get_unverified_header(_token()) == {"alg": "EdDSA", "kid": "k1", "typ": "JWT"}


def test_expired_token_beyond_the_clock_skew_leeway():
    assert _code(_token(now=time.time() - 7200, ttl_seconds=3600)) == "token_expired"
    expired_a_moment_ago = _token(now=time.time() - 3600 - auth.LEEWAY_SECONDS + 5, ttl_seconds=3600)
    assert verify_token(KEYS, expired_a_moment_ago).user_id == "u1"  # the other host's clock may be behind
    assert _code(_token(now=time.time() - 3600 - auth.LEEWAY_SECONDS - 5, ttl_seconds=3600)) == "token_expired"


def test_another_key_and_tampering_and_garbage_are_invalid():
    token = _token()
    other_private, other_public = new_key_pair("k1")  # the same kid, another key
    assert _code(token, KeySet.from_jwks(other_public, dev=False)) == "token_invalid"
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
        jwt.PyJWK(other_private).key,
        algorithm="EdDSA",
    ).split(".")[1]
    assert _code(f"{header}.{forged}.{signature}") == "token_invalid"
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    assert _code(f"{header}.{payload}.{flipped}") == "token_invalid"
    assert _code("not-a-token") == "token_invalid"
    assert _code("") == "token_missing"


def test_a_token_signed_with_a_key_not_in_the_set_is_refused():
    """A good signature, but by a key the services do not hold (the development key, say)."""
    stranger_private, _ = new_key_pair("k9")
    assert _code(mint_token(jwt.PyJWK(stranger_private), user_id="u1", party="AF", role="admin")) == "key_unknown"
    assert _code(mint_token(auth.load_signing_key(None), user_id="u1", party="AF", role="admin")) == "key_unknown"
    no_kid = jwt.encode({"sub": "u1"}, KEY.key, algorithm="EdDSA")
    assert _code(no_kid) == "key_unknown"


@pytest.mark.parametrize(
    "secret",
    [
        "unit-test-jwt-secret-of-at-least-32-bytes",
        _PUBLIC["keys"][0]["x"],  # the public key itself, as an HMAC secret: algorithm confusion
        base64.urlsafe_b64decode(_PUBLIC["keys"][0]["x"] + "="),
    ],
    ids=["a-secret", "the-public-key-text", "the-public-key-bytes"],
)
def test_hs256_tokens_are_refused_whatever_they_are_signed_with(secret):
    now = int(time.time())
    claims = {"sub": "u1", "party": "AF", "role": "admin", "teams": [], "iss": "trisam", "iat": now, "exp": now + 60}
    hs256 = jwt.encode(claims, secret, algorithm="HS256", headers={"kid": "k1"})
    with pytest.raises(AuthError, match="algorithm 'HS256' is not accepted") as exc:
        verify_token(KEYS, hs256)
    assert exc.value.code == "token_invalid"
    # and even with the header check gone, the key's own algorithm is pinned
    with pytest.raises(AuthError) as exc:
        auth.verify_with(KEYS.get("k1"), hs256)
    assert exc.value.code == "token_invalid"


def test_unsigned_tokens_are_refused():
    now = int(time.time())
    claims = {"sub": "u1", "party": "AF", "role": "admin", "teams": [], "iss": "trisam", "iat": now, "exp": now + 60}
    for headers in (None, {"kid": "k1"}):
        unsigned = jwt.encode(claims, None, algorithm="none", headers=headers)
        assert _code(unsigned) == "token_invalid"
        with pytest.raises(AuthError) as exc:
            auth.verify_with(KEYS.get("k1"), unsigned)
        assert exc.value.code == "token_invalid"


def test_rotation_every_key_of_the_set_verifies():
    """Two keys in the set (the old one and the new one): tokens of both verify, each with its
    own key; once the old one is removed, its tokens are refused."""
    new_private, new_public = new_key_pair("k2")
    both = KeySet.from_jwks({"keys": _PUBLIC["keys"] + new_public["keys"]}, dev=False)
    old_token = _token()
    new_token = mint_token(jwt.PyJWK(new_private), user_id="u2", party="FK", role="member")
    assert verify_token(both, old_token).user_id == "u1"
    assert verify_token(both, new_token).user_id == "u2"
    assert _code(old_token, KeySet.from_jwks(new_public, dev=False)) == "key_unknown"


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


def _app(tmp_path) -> TestClient:
    app = FastAPI()
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(_PUBLIC))
    auth = authenticate(Settings(jwks_file=str(jwks)))

    @app.get("/me")
    async def me(principal: Principal = Depends(auth)) -> dict:
        return {"user": principal.user_id, "teams": sorted(principal.teams)}

    @app.post("/teams")
    async def create_team(principal: Principal = Depends(auth)) -> dict:
        require_roles(principal, Role.ADMIN, Role.COORDINATOR)
        return {"ok": True}

    return TestClient(app)


def test_dependency_answers_401_without_or_with_a_bad_token(tmp_path):
    client = _app(tmp_path)
    response = client.get("/me")
    assert response.status_code == 401 and response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["detail"]["code"] == "token_missing"
    bad = _token()[:-3] + "xyz"
    response = client.get("/me", headers={"Authorization": f"Bearer {bad}"})
    assert response.status_code == 401 and response.json()["detail"]["code"] == "token_invalid"
    assert bad not in response.text
    response = client.get("/me", headers={"Authorization": f"Basic {_token()}"})
    assert response.status_code == 401 and response.json()["detail"]["code"] == "token_missing"
    stranger = mint_token(jwt.PyJWK(new_key_pair("k9")[0]), user_id="u1", party="AF", role="admin")
    response = client.get("/me", headers={"Authorization": f"Bearer {stranger}"})
    assert response.status_code == 401 and response.json()["detail"]["code"] == "key_unknown"


def test_dependency_answers_503_while_the_key_set_cannot_be_read(tmp_path):
    app = FastAPI()
    dependency = authenticate(Settings(jwks_file=str(tmp_path / "missing.json")))

    @app.get("/me")
    async def me(principal: Principal = Depends(dependency)) -> dict:
        return {"user": principal.user_id}

    response = TestClient(app).get("/me", headers={"Authorization": f"Bearer {_token()}"})
    assert response.status_code == 503 and response.json()["detail"]["code"] == "keys_unavailable"


def test_dependency_gives_the_principal_and_require_roles_answers_403(tmp_path):
    client = _app(tmp_path)
    headers = {"Authorization": f"Bearer {_token()}"}
    response = client.get("/me", headers=headers)
    assert response.status_code == 200
    assert response.json() == {"user": "u1", "teams": ["GAVLE-HC1"]}
    response = client.post("/teams", headers=headers)
    assert response.status_code == 403
    assert response.json()["detail"]["code"] == "role_not_allowed"
    admin = {"Authorization": f"Bearer {_token(role=Role.ADMIN)}"}
    assert client.post("/teams", headers=admin).status_code == 200


def test_openapi_shows_bearer_auth(tmp_path):
    schemes = _app(tmp_path).get("/openapi.json").json()["components"]["securitySchemes"]
    assert schemes["HTTPBearer"]["scheme"] == "bearer"


def test_cli_mints_a_token_that_verifies(monkeypatch, capsys):
    monkeypatch.setenv("TRISAM_ENV", "dev")
    monkeypatch.delenv("TRISAM_SIGNING_KEY_FILE", raising=False)
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
    principal = verify_token(KeySet.from_jwks(DEV_JWKS, dev=True), capsys.readouterr().out.strip())
    assert principal == Principal(user_id="U", party=Party.FK, role=Role.COORDINATOR, teams=frozenset({"T1", "T2"}))


def test_cli_mints_with_the_signing_key_file(monkeypatch, capsys, tmp_path):
    """`make secrets` writes a key pair for compose: its private key mints, its key set verifies."""
    signing = tmp_path / "signing-key.json"
    signing.write_text(json.dumps(_PRIVATE))
    monkeypatch.setenv("TRISAM_ENV", "dev")
    monkeypatch.setenv("TRISAM_SIGNING_KEY_FILE", str(signing))
    assert main(["mint", "--sub", "B", "--role", "board"]) == 0
    assert verify_token(KEYS, capsys.readouterr().out.strip()).role == Role.BOARD


def test_the_development_key_set_is_refused_outside_dev(tmp_path):
    """Everyone has the development private key: production refuses to start with the
    development key set, be it the default or a file holding the development key."""
    with pytest.raises(pydantic.ValidationError, match="TRISAM_JWKS_FILE or TRISAM_JWKS_URL"):
        Settings(env="production", **REAL)
    dev_file = tmp_path / "dev-jwks.json"
    dev_file.write_text(json.dumps(DEV_JWKS))
    with pytest.raises(pydantic.ValidationError, match="development key"):
        Settings(env="production", jwks_file=str(dev_file), **REAL)
    assert Settings(jwks_file=str(dev_file)).env == "dev"
    with pytest.raises(pydantic.ValidationError, match="missing.json"):
        Settings(env="production", jwks_file=str(tmp_path / "missing.json"), **REAL)
    real_file = tmp_path / "jwks.json"
    real_file.write_text(json.dumps(_PUBLIC))
    assert Settings(env="production", jwks_file=str(real_file), **REAL).env == "production"
    assert Settings(env="production", jwks_url="https://idp.example/jwks", **REAL).env == "production"
    with pytest.raises(pydantic.ValidationError, match="TRISAM_SIGNING_KEY_FILE"):
        Settings(env="production", jwks_url="https://idp.example/jwks", signing_key_file=str(real_file), **REAL)
    with pytest.raises(RuntimeError, match="identity provider"):
        auth.signing_key(Settings(env="production", jwks_url="https://idp.example/jwks", **REAL))


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ({"keys": []}, "at least one key"),
        ({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "abc"}]}, "kid"),
        ({"keys": [_PRIVATE]}, "public keys only"),
        ({"keys": [{"kty": "oct", "kid": "s", "k": "c2VjcmV0"}]}, "public keys only"),
        (DEV_JWKS, "development key"),
        ({"keys": _PUBLIC["keys"] * 2}, "kid of its own"),
    ],
)
def test_a_key_set_holds_distinct_public_keys_only(document, reason):
    with pytest.raises(ValueError, match=reason):
        KeySet.from_jwks(document, dev=False)


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
    forged = _raw(**claims)
    with pytest.raises(auth.AuthError) as refused:
        auth.verify_token(KEYS, forged)
    assert refused.value.code == "token_lifetime_too_long"
    assert _code(_raw(exp=int(now) + auth.MAX_LIFETIME_SECONDS + 1, iat=int(now))) == "token_lifetime_too_long"
    with pytest.raises(ValueError):
        auth.mint_token(KEY, user_id="x", party="AF", role="officer", ttl_seconds=auth.MAX_LIFETIME_SECONDS + 1)
    assert auth.verify_token(
        KEYS, auth.mint_token(KEY, user_id="x", party="AF", role="officer", ttl_seconds=auth.MAX_LIFETIME_SECONDS)
    )


def test_the_mint_command_is_for_development_only(monkeypatch):
    monkeypatch.setenv("TRISAM_ENV", "production")
    for name, value in {
        "TRISAM_JWKS_URL": "https://idp.example/jwks",
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
    assert verify_token(KEYS, for_metrics, "metrics").user_id == "u1"
    with pytest.raises(AuthError) as exc:
        verify_token(KEYS, for_metrics, "referral")
    assert exc.value.code == "wrong_audience"
    assert verify_token(KEYS, _token(), "referral").user_id == "u1"  # the default: every service
    with pytest.raises(AuthError) as exc:
        verify_token(KEYS, _raw(), "referral")
    assert exc.value.code == "claims_invalid"


async def test_the_key_set_is_read_again_for_an_unknown_kid_at_most_every_so_often(tmp_path, monkeypatch):
    """A rotation: the new key is added to the file; the first token that names it has the set
    read again. Tokens naming keys that are nowhere do not have it read again and again."""
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(_PUBLIC))
    source = KeySource(file=str(jwks))
    assert (await source.key("k1")) is not None
    new_private, new_public = new_key_pair("k2")
    jwks.write_text(json.dumps({"keys": _PUBLIC["keys"] + new_public["keys"]}))
    assert (await source.key("k2")) is None  # just read: not again so soon
    monkeypatch.setattr(keys, "MIN_REFRESH_SECONDS", 0.0)
    assert (await source.key("k2")) is not None
    jwks.write_text("not json")  # a broken file: the set read before stays
    assert (await source.key("k3")) is None and (await source.key("k1")) is not None
    assert (await KeySource(dev=True).key(keys.DEV_KEY_ID)) is not None  # development: its own set
    with pytest.raises(keys.KeysUnavailable, match="TRISAM_JWKS_FILE or TRISAM_JWKS_URL"):
        await KeySource(dev=False).key(keys.DEV_KEY_ID)


async def test_the_key_set_from_a_url(monkeypatch):
    """The identity provider's JWKS, fetched once, again for an unknown kid; unreadable at
    first: KeysUnavailable (the dependency answers 503)."""
    fetched = []
    documents = [{"error": "starting"}, _PUBLIC]

    def idp(request: httpx.Request) -> httpx.Response:
        fetched.append(request.url)
        return httpx.Response(200, json=documents[min(len(fetched) - 1, 1)])

    monkeypatch.setattr(
        keys.httpx, "AsyncClient", functools.partial(httpx.AsyncClient, transport=httpx.MockTransport(idp))
    )
    monkeypatch.setattr(keys, "MIN_REFRESH_SECONDS", 0.0)
    source = KeySource(url="https://idp.example/jwks")
    with pytest.raises(keys.KeysUnavailable, match="idp.example"):
        await source.key("k1")
    assert (await source.key("k1")) is not None and (await source.key("k1")) is not None
    assert len(fetched) == 2  # the second time, and then from the cache
    assert (await source.key("k9")) is None and len(fetched) == 3


def test_an_identity_providers_rs256_key_verifies_its_own_algorithm_only():
    """Identity providers often sign RS256: such a key verifies RS256 tokens, and nothing else."""
    from cryptography.hazmat.primitives.asymmetric import rsa
    from jwt.algorithms import RSAAlgorithm

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True) | {"kid": "idp-1", "alg": "RS256"}
    both = KeySet.from_jwks({"keys": [public, *_PUBLIC["keys"]]}, dev=False)
    claims = {"sub": "u1", "party": "AF", "role": "officer", "teams": [], "iss": "trisam"}
    now = int(time.time())
    rs256 = jwt.encode(claims | {"iat": now, "exp": now + 60}, private, algorithm="RS256", headers={"kid": "idp-1"})
    assert verify_token(both, rs256).user_id == "u1"
    as_eddsa = jwt.encode(claims | {"iat": now, "exp": now + 60}, KEY.key, algorithm="EdDSA", headers={"kid": "idp-1"})
    assert _code(as_eddsa, both) == "token_invalid"
