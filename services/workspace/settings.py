"""The workspace's configuration (environment variables, prefix ``TRISAM_``).

The workspace holds no data and no service secret of the others (no database, no broker, no
encryption key): only where the services are, the key that signs its session cookie, and its
identity provider. Outside development the session key must be a real one, the sign-in is
OpenID Connect (the development sign-in is refused) and the services are called over HTTPS.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlparse

from pydantic import PositiveInt, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.platform.config import DEFAULT_HTTP_PORTS, dev_only_on_loopback

DEV_SESSION_KEY = "dev-only-workspace-session-key-not-for-production"
DEFAULT_PORT = DEFAULT_HTTP_PORTS["workspace"]


class WorkspaceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRISAM_", extra="ignore")

    env: Literal["dev", "production"] = "production"  # development only when asked for, on loopback
    http_host: str = "127.0.0.1"
    http_port: int | None = None  # default DEFAULT_PORT
    http_max_body_bytes: PositiveInt = 256 * 1024  # forms are small
    log_level: str = "INFO"
    # the services it calls, with the signed-in person's own token
    referral_url: str = "http://127.0.0.1:8001"
    meeting_url: str = "http://127.0.0.1:8002"
    followup_url: str = "http://127.0.0.1:8003"
    metrics_url: str = "http://127.0.0.1:8004"
    service_timeout_seconds: float = 10.0
    # signs the session cookie (HMAC, itsdangerous); 32 characters at least outside development
    workspace_session_key: SecretStr = SecretStr(DEV_SESSION_KEY)
    # a session lasts at most a working day (as a token: shared.platform.auth.MAX_LIFETIME_SECONDS)
    workspace_session_seconds: PositiveInt = 8 * 3600
    # OpenID Connect (authorization code with PKCE): the organisation's identity provider. Its
    # access token is what the services verify (TRISAM_JWKS_URL there); the claims below, of the
    # ID token, say who signed in and in which role, party and teams.
    oidc_issuer: str | None = None  # discovery at <issuer>/.well-known/openid-configuration
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    oidc_scope: str = "openid profile"
    oidc_redirect_url: str | None = None  # https://<workspace>/auth/callback; default: from the request
    oidc_user_claim: str = "sub"
    oidc_role_claim: str = "role"
    oidc_party_claim: str = "party"
    oidc_teams_claim: str = "teams"
    # TLS: the workspace's own certificate (HTTPS), and the CA the services' are checked against
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_ca_file: str | None = None
    # as the services' TRISAM_ALLOW_PLAINTEXT: plain HTTP to them only where traffic never leaves one
    # host's private network (docker-compose.yml)
    allow_plaintext: bool = False
    # development only: the key that mints the development sign-in's tokens (unset: the development key)
    signing_key_file: str | None = None

    @model_validator(mode="after")
    def _production(self) -> WorkspaceSettings:
        dev_only_on_loopback(self.env, self.http_host)
        if self.env == "dev":
            return self
        key = self.workspace_session_key.get_secret_value()
        if key == DEV_SESSION_KEY or len(key) < 32:
            raise ValueError(
                f"TRISAM_WORKSPACE_SESSION_KEY (32 characters at least, not the development one) is required "
                f"when TRISAM_ENV={self.env}"
            )
        if not (self.oidc_issuer and self.oidc_client_id):
            raise ValueError(f"TRISAM_OIDC_ISSUER and TRISAM_OIDC_CLIENT_ID are required when TRISAM_ENV={self.env}")
        if self.signing_key_file:
            raise ValueError(f"TRISAM_SIGNING_KEY_FILE is for development; not allowed when TRISAM_ENV={self.env}")
        plain = [url for url in self.service_urls().values() if urlparse(url).scheme != "https"]
        if plain and not self.allow_plaintext:
            raise ValueError(f"the services are called over HTTPS when TRISAM_ENV={self.env}: {', '.join(plain)}")
        return self

    @property
    def dev(self) -> bool:
        return self.env == "dev"

    @property
    def port(self) -> int:
        return self.http_port or DEFAULT_PORT

    @property
    def oidc_configured(self) -> bool:
        return bool(self.oidc_issuer and self.oidc_client_id)

    def service_urls(self) -> dict[str, str]:
        return {
            "referral": self.referral_url,
            "meeting": self.meeting_url,
            "followup": self.followup_url,
            "metrics": self.metrics_url,
        }
