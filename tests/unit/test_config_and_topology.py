import ipaddress
from datetime import UTC, datetime, timedelta

import pydantic
import pytest
from pydantic import SecretStr

from shared.platform.config import Settings, with_database
from shared.platform.topology import SUBSCRIPTIONS, Topology


def test_dev_secrets_are_refused_outside_dev():
    """The vault's keys and the pseudonym key are the referral service's alone: it refuses their
    development defaults outside development; the other services never receive them."""
    from services.referral import app as referral_app
    from shared.platform.config import ConfigurationError

    elsewhere = Settings(env="production", jwks_url="https://idp.example/jwks", **REAL_URLS)
    assert elsewhere.env == "production"  # (meeting, follow-up, metrics: not theirs to set)
    real = {"pseudonym_key": "a-real-secret", "encryption_keys": "k1:" + "A" * 43 + "="}  # 32 bytes
    for field in real:
        with pytest.raises(ConfigurationError, match=f"TRISAM_{field.upper()} still has its development default"):
            referral_app.spec(elsewhere.model_copy(update={k: SecretStr(v) for k, v in real.items() if k != field}))
    assert referral_app.spec(Settings(env="production", jwks_url="https://idp.example/jwks", **real, **REAL_URLS))


REAL_URLS = {
    "database_url": "postgresql://trisam:s3cret@db:5432/postgres",
    "amqp_url": "amqp://trisam-svc-referral:s3cret@mq:5672/",
    "database_role_password": "a-service-role-password",
    "allow_plaintext": True,  # TLS: see test_plain_transport_is_refused_outside_dev
}


def test_passwordless_or_guest_urls_are_refused_outside_dev():
    real = {
        "pseudonym_key": "a-real-secret",
        "encryption_keys": "k1:" + "A" * 44,
        "jwks_url": "https://idp.example/jwks",
    }
    for url in ({"database_url": "postgresql://postgres@db:5432/postgres"}, {"amqp_url": "amqp://guest:guest@mq/"}):
        with pytest.raises(pydantic.ValidationError, match="no password"):
            Settings(env="production", **real, **{**REAL_URLS, **url})
    for role_password in (None, "short"):  # each service's own database role needs a real one
        with pytest.raises(pydantic.ValidationError, match="TRISAM_DATABASE_ROLE_PASSWORD"):
            Settings(env="production", **real, **{**REAL_URLS, "database_role_password": role_password})


def test_the_compose_setup_is_secure_by_default():
    """docker-compose.yml: production mode, every secret from .env (compose refuses to start
    without it), no trust authentication, nothing published beyond this host but the gateway."""
    from pathlib import Path

    import yaml

    compose = yaml.safe_load((Path(__file__).resolve().parents[2] / "docker-compose.yml").read_text())
    services = compose["services"]
    for name in ("referral", "meeting", "followup", "metrics"):
        env = services[name]["environment"]
        assert env["TRISAM_ENV"] == "production", name
        assert env["TRISAM_DATABASE_ROLE_PASSWORD"] == f"${{TRISAM_DB_PASSWORD_{name.upper()}:?run make secrets}}"
        for secret in ("TRISAM_PSEUDONYM_KEY", "TRISAM_ENCRYPTION_KEYS"):  # the referral service's alone
            if name == "referral":
                assert env[secret].startswith("${") and ":?" in env[secret], (name, secret)
            else:
                assert secret not in env, (name, secret)
        # public keys only, from the file `make secrets` writes; no private key, no shared secret
        assert f"./deploy/keys/jwks.local.json:{env['TRISAM_JWKS_FILE']}:ro" in services[name]["volumes"], name
        assert not {"TRISAM_SIGNING_KEY_FILE", "TRISAM_JWT_SECRET"} & set(env), name
        assert ":?" in env["TRISAM_DATABASE_URL"] and ":?" in env["TRISAM_AMQP_URL"], name
        assert "-dev@" not in env["TRISAM_AMQP_URL"], name
        # plain transport allowed on purpose: the compose network of one host (see the file)
        assert env["TRISAM_ALLOW_PLAINTEXT"] == "true", name
    # the workspace: production, its session key from .env, OpenID Connect configured, no service secret
    workspace = services["workspace"]["environment"]
    assert workspace["TRISAM_ENV"] == "production"
    assert workspace["TRISAM_WORKSPACE_SESSION_KEY"] == "${TRISAM_WORKSPACE_SESSION_KEY:?run make secrets}"
    assert ":?" in workspace["TRISAM_OIDC_ISSUER"] and ":?" in workspace["TRISAM_OIDC_CLIENT_ID"]
    assert not {"TRISAM_PSEUDONYM_KEY", "TRISAM_ENCRYPTION_KEYS", "TRISAM_DATABASE_URL", "TRISAM_AMQP_URL"} & set(
        workspace
    )
    assert services["postgres"]["environment"]["POSTGRES_HOST_AUTH_METHOD"] == "scram-sha-256"
    for name, service in services.items():
        for port in service.get("ports", []):
            assert name == "gateway" or str(port).startswith("127.0.0.1:"), (name, port)
    assert "definitions.local.json" in " ".join(services["rabbitmq"]["volumes"])


def test_plain_transport_is_refused_outside_dev(tmp_path):
    """Production: AMQPS with the broker verified, PostgreSQL with sslmode=verify-full, HTTPS
    served and called; plain only when explicitly allowed (TRISAM_ALLOW_PLAINTEXT)."""
    from tools.certs import Authority

    ca = Authority(tmp_path)
    cert, key = ca.server("referral")
    real = {"pseudonym_key": "a-real-secret", "encryption_keys": "k1:" + "A" * 44, "jwks_url": "https://idp/jwks"}
    real["database_role_password"] = "a-service-role-password"
    tls = {
        "amqp_url": f"amqps://trisam-svc-referral:s3cret@mq:5671/?cafile={ca.ca_file}",
        "database_url": f"postgresql://trisam:s3cret@db:5432/postgres?sslmode=verify-full&sslrootcert={ca.ca_file}",
        "tls_cert_file": str(cert),
        "tls_key_file": str(key),
        "tls_ca_file": str(ca.ca_file),
        "referral_url": "https://referral:8001",
    }
    assert Settings(env="production", **real, **tls).http_scheme == "https"
    for plain, says in (
        ({"amqp_url": "amqp://trisam-svc-referral:s3cret@mq:5672/"}, "TRISAM_AMQP_URL is not amqps"),
        ({"amqp_url": tls["amqp_url"] + "&no_verify_ssl=1"}, "TRISAM_AMQP_URL is not amqps"),
        ({"database_url": "postgresql://trisam:s3cret@db:5432/postgres?sslmode=require"}, "sslmode=verify-full"),
        ({"tls_cert_file": None, "tls_key_file": None}, "plain HTTP"),
        ({"referral_url": "http://referral:8001"}, "TRISAM_REFERRAL_URL is not https"),
    ):
        with pytest.raises(pydantic.ValidationError, match=says):
            Settings(env="production", **real, **{**tls, **plain})
        assert Settings(env="production", allow_plaintext=True, **real, **{**tls, **plain})
        assert Settings(**{**tls, **plain})  # development: TLS only where configured (`make run` has none)
    assert Settings().http_scheme == "http"


def test_tls_files_are_checked_at_start(tmp_path):
    from tools.certs import Authority

    cert, key = Authority(tmp_path).server("referral")
    with pytest.raises(pydantic.ValidationError, match="go together"):
        Settings(tls_cert_file=str(cert))
    with pytest.raises(pydantic.ValidationError, match="TRISAM_TLS_CA_FILE: no such file"):
        Settings(tls_ca_file=str(tmp_path / "missing.pem"))
    assert Settings(tls_cert_file=str(cert), tls_key_file=str(key)).http_scheme == "https"


def test_make_certs_signs_what_clients_verify_and_keeps_what_exists(tmp_path):
    from cryptography import x509
    from cryptography.x509.verification import PolicyBuilder, Store

    from tools.certs import SERVERS, make_all

    ca = make_all(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    make_all(tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # idempotent
    store = Store([ca.cert])
    for server in SERVERS:
        leaf = x509.load_pem_x509_certificate((tmp_path / f"{server}.pem").read_bytes())
        for host in (x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))):
            PolicyBuilder().store(store).build_server_verifier(host).verify(leaf, [])
        assert (tmp_path / f"{server}.key").stat().st_mode & 0o077 == 0  # private keys: owner only
    agency = x509.load_pem_x509_certificate((tmp_path / "trisam-af.pem").read_bytes())
    assert agency.subject.rfc4514_string() == "CN=trisam-af"  # the broker user it logs in as


def test_each_service_has_its_own_database_on_the_server():
    s = Settings(database_url="postgresql://u:p@db:5432/postgres?sslmode=require", namespace="abc")
    assert s.service_database_url("meeting") == "postgresql://u:p@db:5432/abc_meeting?sslmode=require"
    assert with_database("postgresql://h/x", "y") == "postgresql://h/y"


def test_namespace_must_be_a_plain_name():
    with pytest.raises(pydantic.ValidationError):
        Settings(namespace="Bad-Name!")


def test_every_consuming_queue_is_quorum_with_a_delivery_limit_and_dead_lettering():
    topology = Topology("ns", delivery_limit=7)
    for service in SUBSCRIPTIONS:
        queue = topology.queue(service)
        args = queue.arguments
        assert args["x-queue-type"] == "quorum" and queue.durable
        assert args["x-delivery-limit"] == 7
        assert args["x-dead-letter-exchange"] == "ns.dlx"
        assert args["x-dead-letter-routing-key"] == service
        assert args["x-dead-letter-strategy"] == "at-least-once"
        assert args["x-overflow"] == "reject-publish"


def test_each_agency_has_its_own_capped_intake_queue_whose_broker_dead_letters_wait_to_be_redacted():
    topology = Topology(
        "ns", delivery_limit=7, intake_max_messages=20, intake_max_bytes=1 << 20, unredacted_ttl_ms=60_000
    )
    for service in ("referral", "followup"):  # the services that take agency commands
        for party in ("AF", "FK", "KOMMUN", "REGION"):
            queue = topology.intake_queue(service, party)
            args = queue.arguments
            assert queue.name == f"ns.{service}.intake.{party}" and args["x-queue-type"] == "quorum"
            assert args["x-max-length"] == 20 and args["x-max-length-bytes"] == 1 << 20
            assert args["x-overflow"] == "reject-publish" and args["x-delivery-limit"] == 7
            assert args["x-dead-letter-exchange"] == "ns.dlx"
            assert args["x-dead-letter-routing-key"] == f"{service}.unredacted"
            assert queue.name in topology.all_queue_names()
        assert topology.unredacted_queue(service).arguments["x-message-ttl"] == 60_000
    limited = Topology.of(Settings(namespace="ns", intake_max_messages=5))
    assert limited.intake_queue("referral", "AF").arguments["x-max-length"] == 5


def test_every_published_event_has_a_consumer_and_every_binding_a_handler():
    """An event nobody is bound to is returned by the broker (mandatory publish) and would
    stay in the outbox for ever; a binding without a handler would dead-letter every message."""
    from shared.platform.topology import AGENCY, AGGREGATES, EVENTS, INTAKE, SUBSCRIPTIONS
    from tools.catalogue import SPECS

    specs = {name: make(Settings()) for name, make in SPECS.items()}
    bound = {b.routing_key for bindings in SUBSCRIPTIONS.values() for b in bindings if b.exchange == EVENTS}
    for name, spec in specs.items():
        for contract_cls, _ in spec.publishes:
            if contract_cls.exchange == EVENTS:
                assert contract_cls.name in bound, f"{name} publishes {contract_cls.name}: no consumer"
            else:  # each agency's own queue, or the aggregates queue, takes it
                assert contract_cls.exchange in (AGENCY, AGGREGATES)
        for binding in SUBSCRIPTIONS[name]:
            handled = binding.routing_key.split(".")[-1]
            assert handled in spec.handlers.names, f"{name} is bound to {binding.routing_key} without a handler"
            assert binding.exchange in (EVENTS, INTAKE)


def test_the_dev_clock_offset_is_refused_outside_dev_and_shifts_the_clock():
    from datetime import timedelta

    from shared.platform.clock import Clock

    with pytest.raises(pydantic.ValidationError, match="DEV_CLOCK_OFFSET"):
        Settings(
            env="production",
            dev_clock_offset_days=3,
            pseudonym_key="p" * 40,
            encryption_keys="k1:" + "A" * 44,
            jwks_url="https://idp.example/jwks",
        )
    ahead = Clock.from_settings(Settings(dev_clock_offset_days=9)).now() - Clock().now()
    assert timedelta(days=9) - timedelta(seconds=5) < ahead < timedelta(days=9, seconds=5)


def test_a_fast_dev_clock_is_refused_outside_dev_and_catches_up_from_the_past():
    from datetime import datetime, timedelta
    from unittest import mock

    from shared.platform import clock as clock_module
    from shared.platform.clock import Clock

    with pytest.raises(pydantic.ValidationError, match="DEV_CLOCK_SPEED"):
        Settings(
            env="production",
            dev_clock_speed=100,
            pseudonym_key="p" * 40,
            encryption_keys="k1:" + "A" * 44,
            jwks_url="https://idp.example/jwks",
        )
    start = datetime(2026, 11, 23, 12, tzinfo=UTC)

    def at(real: datetime, settings: Settings) -> datetime:
        with mock.patch.object(clock_module, "datetime", wraps=datetime) as fake:
            fake.now.return_value = real
            return Clock.from_settings(settings).now()

    history = Settings(dev_clock_offset_days=-365, dev_clock_speed=86400, dev_clock_started_at=start)
    assert at(start, history) == start - timedelta(days=365)
    assert at(start + timedelta(seconds=10), history) == start - timedelta(days=355)  # a day a second
    # caught up: from then on it is the real time
    assert at(start + timedelta(seconds=400), history) == start + timedelta(seconds=400)
    ahead = Settings(dev_clock_speed=3600, dev_clock_started_at=start)  # an hour a second
    assert at(start + timedelta(seconds=48), ahead) == start + timedelta(days=2)
    stopping = Settings(dev_clock_speed=3600, dev_clock_started_at=start, dev_clock_stops_at=start + timedelta(days=1))
    assert at(start + timedelta(seconds=48), stopping) == start + timedelta(days=1)


def test_the_agency_users_follow_the_namespace_unless_set():
    # an integrator's `TRISAM_NAMESPACE=x make run` creates the broker users x-af, x-fk, ...;
    # the services must take those for the agencies (else every command is dead-lettered)
    assert Settings(namespace="x").agency_users == {
        "x-af": "AF",
        "x-fk": "FK",
        "x-kommun": "KOMMUN",
        "x-region": "REGION",
    }
    assert Settings(namespace="x", agency_users={"sys-af": "AF"}).agency_users == {"sys-af": "AF"}


async def test_every_service_tells_its_clock():
    import httpx

    from services.metrics import app as metrics_app
    from shared.platform.runtime import Runtime, build_app

    settings = Settings(dev_clock_offset_days=30)
    app = build_app(Runtime(metrics_app.spec(settings), settings))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        body = (await client.get("/health/clock")).json()
    now, wall = datetime.fromisoformat(body["now"]), datetime.fromisoformat(body["wall_clock"])
    assert body["simulated"] is True and body["offset_days"] == 30
    assert timedelta(days=29, hours=23) < now - wall < timedelta(days=30, minutes=1)


def test_make_secrets_generates_what_production_accepts(tmp_path, monkeypatch):
    from services.referral.vault import Keyring
    from shared.platform.auth import mint_token, signing_key, verify_token
    from shared.platform.keys import read_jwks_file
    from tools import secrets as make_secrets

    monkeypatch.setattr(make_secrets, "JWKS", tmp_path / "keys" / "jwks.local.json")
    monkeypatch.setattr(make_secrets, "SIGNING_KEY", tmp_path / "keys" / "signing-key.local.json")
    make_secrets.write_key_pair()
    assert make_secrets.SIGNING_KEY.stat().st_mode & 0o077 == 0  # the private key: its owner only
    values = make_secrets.generate()
    settings = Settings(
        env="production",
        jwks_file=str(make_secrets.JWKS),
        pseudonym_key=values["TRISAM_PSEUDONYM_KEY"],
        encryption_keys=values["TRISAM_ENCRYPTION_KEYS"],
        database_url=f"postgresql://postgres:{values['TRISAM_POSTGRES_PASSWORD']}@postgres:5432/postgres",
        amqp_url=f"amqp://trisam-svc-referral:{values['TRISAM_BROKER_PASSWORD_REFERRAL']}@rabbitmq:5672/",
        database_role_password=values["TRISAM_DB_PASSWORD_REFERRAL"],
        allow_plaintext=True,  # as docker-compose.yml: one host's private network
    )
    assert Keyring.from_config(settings.encryption_keys.get_secret_value())
    # the development mint side signs with the private key, the services verify with the set
    token = mint_token(
        signing_key(Settings(signing_key_file=str(make_secrets.SIGNING_KEY))), user_id="u", party=None, role="board"
    )
    assert verify_token(read_jwks_file(str(settings.jwks_file), dev=False), token).user_id == "u"
    # a rotation: a new pair; the set verifies the tokens of both keys until the old one is removed
    make_secrets.write_key_pair(keep_old=True)
    rotated = mint_token(
        signing_key(Settings(signing_key_file=str(make_secrets.SIGNING_KEY))), user_id="v", party=None, role="board"
    )
    both = read_jwks_file(str(settings.jwks_file), dev=False)
    assert len(both.keys) == 2 and {verify_token(both, t).user_id for t in (token, rotated)} == {"u", "v"}
    users = {u["name"] for u in make_secrets.broker_definitions(values)["users"]}
    assert {"trisam-admin", "trisam-af", "trisam-svc-referral"} <= users and "guest" not in users
    assert values != make_secrets.generate()  # random each time


def test_production_serves_no_api_pages_from_a_cdn_but_the_openapi_document():
    """Swagger UI and ReDoc load scripts from a CDN: off in production; /openapi.json stays."""
    from fastapi.testclient import TestClient

    from services.referral import app as referral_app
    from shared.platform.runtime import Runtime, build_app

    production = Settings(
        env="production",
        pseudonym_key="a-real-secret",
        encryption_keys="k1:" + "A" * 43 + "=",  # 32 bytes
        jwks_url="https://idp.example/jwks",
        **REAL_URLS,
    )
    for settings, pages in ((production, 404), (Settings(), 200)):
        client = TestClient(build_app(Runtime(referral_app.spec(settings), settings)))  # not started
        assert client.get("/docs").status_code == pages and client.get("/redoc").status_code == pages
        assert client.get("/openapi.json").status_code == 200


def test_production_is_the_default_and_development_only_on_loopback(monkeypatch):
    """Nothing set, a service starts in production and refuses to start without its secrets;
    development is asked for (make run, make test) and serves on loopback only, the workspace's
    development sign-in too."""
    from services.workspace.settings import WorkspaceSettings

    monkeypatch.delenv("TRISAM_ENV", raising=False)
    with pytest.raises(pydantic.ValidationError, match="production is the default"):
        Settings()
    with pytest.raises(pydantic.ValidationError, match="TRISAM_WORKSPACE_SESSION_KEY"):
        WorkspaceSettings()
    for host in ("127.0.0.1", "::1", "localhost"):
        assert Settings(env="dev", http_host=host).env == "dev"
        assert WorkspaceSettings(env="dev", http_host=host).env == "dev"
    for host in ("0.0.0.0", "10.1.2.3", "trisam.example"):
        with pytest.raises(pydantic.ValidationError, match="only on loopback"):
            Settings(env="dev", http_host=host)
        with pytest.raises(pydantic.ValidationError, match="only on loopback"):
            WorkspaceSettings(env="dev", http_host=host)
    assert Settings(env="production", http_host="0.0.0.0", jwks_url="https://idp.example/jwks", **REAL_URLS)
