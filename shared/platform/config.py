"""Configuration from environment variables (prefix ``TRISAM_``), with local development defaults.

Secrets have development defaults so that a newcomer can start the system at once; outside dev
mode (``TRISAM_ENV`` other than ``dev``) the services refuse to start with them.
"""

from __future__ import annotations

import ipaddress
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, quote, urlparse, urlunparse

from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.platform.keys import read_jwks_file

DEV_PSEUDONYM_KEY = "dev-only-pseudonym-key-not-for-production"
DEV_ENCRYPTION_KEYS = "dev1:ZGV2LW9ubHktZW5jcnlwdGlvbi1rZXktMzItYnl0ZXM="  # key id:base64(32 bytes)
DEV_SECRETS = {
    "pseudonym_key": DEV_PSEUDONYM_KEY,
    "encryption_keys": DEV_ENCRYPTION_KEYS,
}

DEFAULT_HTTP_PORTS = {"referral": 8001, "meeting": 8002, "followup": 8003, "metrics": 8004, "workspace": 8005}

_NAMESPACE = re.compile(r"^[a-z][a-z0-9_]{0,30}$")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRISAM_", extra="ignore")

    # production unless development is asked for (make run and make test ask for it), and then
    # only on loopback
    env: Literal["dev", "production"] = "production"
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    # The PostgreSQL server; each service uses its own database on it, named "<namespace>_<service>".
    database_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    # Prefix of every exchange, queue and database name: isolates test runs from each other and
    # from a running `make run`.
    namespace: str = "trisam"

    http_host: str = "127.0.0.1"
    http_port: int | None = None  # default per service, see DEFAULT_HTTP_PORTS
    # The largest HTTP request body a service reads (413 above it, before parsing or sign-in)
    http_max_body_bytes: PositiveInt = 1024 * 1024

    log_level: str = "INFO"
    # OpenTelemetry traces go to this OTLP/HTTP collector (its base address, e.g.
    # http://collector:4318); unset: the standard OTEL_EXPORTER_OTLP_ENDPOINT, and without either
    # tracing is off (shared/platform/tracing.py)
    otlp_endpoint: str | None = None

    # Deliveries on their way to one consumer at once (unacked): enough for full batches below
    prefetch: int = 128
    # Connections of one service process to PostgreSQL at most (its pool; the outbox relay's
    # listener is one of them). See the README's connection budget: PostgreSQL allows 100 in
    # all by default.
    db_pool_max: PositiveInt = 8
    # Deliveries waiting at the same moment are applied in one transaction, up to this many
    # (group commit, see shared/platform/consumer.py); 1: one transaction per message.
    consume_batch_size: PositiveInt = 64
    # Partition queues per consuming service for several instances (shared/platform/topology.py):
    # a case's events all go to one, which one instance consumes at a time. 1: one queue. Needs
    # RabbitMQ's rabbitmq_consistent_hash_exchange plugin when more than 1.
    partitions: PositiveInt = 1
    # Broker-side bound on redeliveries (RabbitMQ 3.10 quorum queues have no default). A last
    # resort only, well above max_handler_attempts: the broker also counts redeliveries after
    # a cut connection, which are no fault of the message.
    delivery_limit: int = 50
    # Per agency, how many commands (and bytes) may wait; beyond it the agency's publishes are
    # refused (negative confirm) and the other agencies go on. See topology.py.
    intake_max_messages: int = Field(default=10_000, ge=1)
    intake_max_bytes: int = Field(default=256 * 1024 * 1024, ge=64 * 1024)
    # An agency command dead-lettered by the broker waits at most this long to be redacted
    unredacted_ttl_hours: int = Field(default=24, ge=1)
    # Our own bound: a handler that keeps failing with an unexpected error is dead-lettered
    # with the error as reason after this many deliveries.
    max_handler_attempts: int = 5
    # An event whose predecessor in its case's line has not been applied is held back (tried
    # again in place) at most this long; then it is applied and the gap counted and logged as
    # an error (shared/platform/sequences.py).
    sequence_hold_seconds: PositiveFloat = 120.0

    outbox_batch_size: int = 200
    outbox_poll_seconds: float = 1.0
    outbox_max_backoff_seconds: float = 30.0

    # Broker users of the agency systems and the party each speaks for. The party of an AMQP
    # command comes from the message's user_id (validated by RabbitMQ), never from the payload.
    # JSON in TRISAM_AGENCY_USERS; default: the namespace's development users,
    # "<namespace>-af", "-fk", "-kommun", "-region" (as `make run` creates them).
    agency_users: dict[str, str] = {}
    # The broker user each service publishes as (JSON in TRISAM_SERVICE_USERS). When set, a
    # consumer takes an event only from the service that owns its type (the message's user_id,
    # which RabbitMQ checks against the connection's user): a forged CaseClosed from anyone
    # else is dead-lettered (sender_not_owner). Production: "<namespace>-svc-<service>" unless
    # set; development (every service as one user, e.g. guest): no check unless set.
    service_users: dict[str, str] = {}
    teams_file: str | None = None  # default: deploy/teams.json
    # Personal data of a closed case is erased this long after closure; pseudonymous history stays.
    retention_days: int = 730
    retention_check_seconds: float = 3600.0

    # Meeting scheduling: how far ahead meetings are generated, how often cut-offs and the
    # calendar are checked, and the parties whose consent withdrawal takes a scheduled case
    # off the agenda (for the others the case stays; that party just gets no details).
    meeting_horizon_weeks: PositiveInt = 12
    meeting_check_seconds: PositiveFloat = 30.0
    postpone_on_withdrawal: frozenset[str] = frozenset({"FK"})
    # Follow-up: when plan checks and outcome follow-ups are due after the consultation, and
    # the reminders: overdue this long after the due reminder, repeated at an interval up to a
    # limit, then escalated to the team's coordinator.
    followup_plan_check_weeks: PositiveInt = 8
    followup_outcome_months: PositiveInt = 6
    followup_twelve_months: bool = False
    followup_long_months: PositiveInt = 12  # when the "twelve-month" follow-up is due
    followup_overdue_days: PositiveInt = 14
    followup_reminder_interval_days: PositiveInt = 7
    followup_reminder_limit: PositiveInt = 3
    followup_check_seconds: PositiveFloat = 30.0
    followup_batch_size: PositiveInt = 500

    # Metrics, public editions: counts 0 < n < this are shown as "<5" (docs/metrics.md). An
    # edition of a quarter or a year is made this many days after the period has closed (late
    # recordings come in meanwhile), checked every so many seconds; then it is frozen.
    suppression_threshold: PositiveInt = 5
    metrics_edition_grace_days: NonNegativeInt = 30
    metrics_edition_check_seconds: PositiveFloat = 300.0

    # Development only: run the services' domain clock this many days ahead (refused outside
    # dev), to try what happens at a cut-off or after a meeting without waiting for it.
    dev_clock_offset_days: float = 0.0
    # Development only: simulated seconds per real second, counted from the real moment
    # TRISAM_DEV_CLOCK_STARTED_AT (the same for every process; see shared/platform/clock.py). The
    # simulator's demo and the fault-injection run use it to let months pass in minutes.
    dev_clock_speed: PositiveFloat = 1.0
    dev_clock_started_at: datetime | None = None
    dev_clock_stops_at: datetime | None = None  # the simulated time stands still from here
    # Where the meeting service fetches the consent-gated case details for the pre-meeting.
    referral_url: str = "http://127.0.0.1:8001"

    # TLS (docs/deployment.md, "TLS"). The broker's and the database's are set in their URLs:
    # amqps://...?cafile=...&certfile=...&keyfile=... and
    # postgresql://...?sslmode=verify-full&sslrootcert=...&sslcert=...&sslkey=...
    # These are HTTP's: a service with a certificate and key serves HTTPS, and its HTTP clients
    # (the meeting service's calls to referral) verify servers with the CA file (default: the
    # system's CAs).
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_ca_file: str | None = None
    # Outside dev, plain transport (amqp://, a database URL without sslmode=verify-full, plain
    # HTTP) is refused unless this is set: for a deployment whose traffic never leaves one
    # host's private network (docker-compose.yml), or behind a proxy that does TLS.
    allow_plaintext: bool = False

    pseudonym_key: SecretStr = SecretStr(DEV_PSEUDONYM_KEY)
    encryption_keys: SecretStr = SecretStr(DEV_ENCRYPTION_KEYS)
    # The password of the service's own database role, named like its database
    # ("<namespace>_<service>"): it may use only that database and owns nothing there (the
    # migrations run as TRISAM_DATABASE_URL's user). None: no password (a server that trusts
    # local connections, as in development); required outside development.
    database_role_password: SecretStr | None = None
    # The public keys that verify the bearer tokens (shared/platform/keys.py): a JWKS file, or
    # the identity provider's JWKS URL. Neither: the development key set (refused outside dev).
    jwks_file: str | None = None
    jwks_url: str | None = None
    # Development only: the private key (a JWK file) that mints tokens (the mint command, the
    # metrics development sign-in, the launcher); unset: the development key.
    signing_key_file: str | None = None

    @field_validator("namespace")
    @classmethod
    def _namespace_is_a_plain_name(cls, value: str) -> str:
        if not _NAMESPACE.match(value):
            raise ValueError("TRISAM_NAMESPACE must be lower-case letters, digits and _ (max 31)")
        return value

    @field_validator("postpone_on_withdrawal")
    @classmethod
    def _parties(cls, value: frozenset[str]) -> frozenset[str]:
        unknown = set(value) - {"AF", "FK", "KOMMUN", "REGION"}
        if unknown:
            raise ValueError(f"TRISAM_POSTPONE_ON_WITHDRAWAL: unknown parties {sorted(unknown)}")
        return value

    @model_validator(mode="after")
    def _agency_users_of_the_namespace(self) -> Settings:
        if not self.agency_users:
            self.agency_users = {f"{self.namespace}-{p.lower()}": p for p in ("AF", "FK", "KOMMUN", "REGION")}
        if not self.service_users and self.env != "dev":
            self.service_users = {
                s: f"{self.namespace}-svc-{s}" for s in ("referral", "meeting", "followup", "metrics")
            }
        return self

    @model_validator(mode="after")
    def _dev_only_on_loopback(self) -> Settings:
        dev_only_on_loopback(self.env, self.http_host)
        return self

    @model_validator(mode="after")
    def _no_dev_secrets_outside_dev(self) -> Settings:
        if self.env != "dev" and (self.dev_clock_offset_days or self.dev_clock_speed != 1.0 or self.dev_clock_stops_at):
            raise ValueError(
                f"TRISAM_DEV_CLOCK_OFFSET_DAYS and TRISAM_DEV_CLOCK_SPEED are for "
                f"development; not allowed when TRISAM_ENV={self.env}"
            )
        if self.env != "dev":
            if self.database_role_password is None or len(self.database_role_password.get_secret_value()) < 16:
                raise ValueError(
                    f"TRISAM_DATABASE_ROLE_PASSWORD (16 characters at least) is required when TRISAM_ENV={self.env}"
                    " (production is the default; on a developer's machine set TRISAM_ENV=dev, as make run does)"
                )
            if not (self.jwks_file or self.jwks_url):
                raise ValueError(
                    f"TRISAM_JWKS_FILE or TRISAM_JWKS_URL must name the identity provider's keys when "
                    f"TRISAM_ENV={self.env} (the development key set is refused)"
                )
            if self.jwks_file:  # read now: a missing file or the development key stops the start
                read_jwks_file(self.jwks_file, dev=False)
            if self.signing_key_file:
                raise ValueError(
                    f"TRISAM_SIGNING_KEY_FILE is for development; when TRISAM_ENV={self.env} the identity "
                    f"provider signs the tokens and the services hold public keys only"
                )
            for name, url in (("TRISAM_DATABASE_URL", self.database_url), ("TRISAM_AMQP_URL", self.amqp_url)):
                parts = urlparse(url)
                if not parts.password or parts.username == "guest":
                    raise ValueError(
                        f"{name} has no password (or is the guest user); not allowed when TRISAM_ENV={self.env}"
                    )
        return self

    @model_validator(mode="after")
    def _tls_configured(self) -> Settings:
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ValueError("TRISAM_TLS_CERT_FILE and TRISAM_TLS_KEY_FILE go together: set both or neither")
        for variable, path in (
            ("TRISAM_TLS_CERT_FILE", self.tls_cert_file),
            ("TRISAM_TLS_KEY_FILE", self.tls_key_file),
            ("TRISAM_TLS_CA_FILE", self.tls_ca_file),
        ):
            if path and not Path(path).is_file():
                raise ValueError(f"{variable}: no such file {path}")
        if self.env != "dev" and not self.allow_plaintext and (plain := plaintext_transport(self)):
            raise ValueError(
                f"plain transport when TRISAM_ENV={self.env}: {'; '.join(plain)} "
                "(TRISAM_ALLOW_PLAINTEXT=true only where traffic never leaves a private network)"
            )
        return self

    @property
    def http_scheme(self) -> str:
        """How the services' HTTP APIs are reached: https when they have a certificate."""
        return "https" if self.tls_cert_file else "http"

    def database_name(self, service: str) -> str:
        return f"{self.namespace}_{service}"

    def service_database_url(self, service: str) -> str:
        return with_database(self.database_url, self.database_name(service))

    def real_secret(self, field: str) -> str:
        """A secret only one service holds (the vault's keys, the pseudonym key: the referral
        service's), asked for by that service: outside development its development default is
        refused (the others never receive it, so they cannot be asked to set it)."""
        value: str = getattr(self, field).get_secret_value()
        if self.env != "dev" and value == DEV_SECRETS[field]:
            raise ConfigurationError(
                f"TRISAM_{field.upper()} still has its development default; set a real secret when "
                f"TRISAM_ENV={self.env}"
            )
        return value

    def service_role_url(self, service: str) -> str:
        """The service's own database as its own role (what the running service connects as)."""
        parts = urlparse(self.service_database_url(service))
        password = self.database_role_password.get_secret_value() if self.database_role_password else None
        credentials = quote(self.database_name(service)) + (f":{quote(password, safe='')}" if password else "")
        host = parts.netloc.rsplit("@", 1)[-1]
        return urlunparse(parts._replace(netloc=f"{credentials}@{host}"))

    def port_for(self, service: str) -> int:
        return self.http_port or DEFAULT_HTTP_PORTS.get(service, 8000)


def plaintext_transport(settings: Settings) -> list[str]:
    """What of the settings would carry data unencrypted, or to a server not verified, in words."""
    found = []
    amqp = urlparse(settings.amqp_url)
    if amqp.scheme != "amqps" or parse_qs(amqp.query).get("no_verify_ssl", ["0"]) != ["0"]:
        found.append("TRISAM_AMQP_URL is not amqps:// with the broker's certificate verified")
    if parse_qs(urlparse(settings.database_url).query).get("sslmode") != ["verify-full"]:
        found.append("TRISAM_DATABASE_URL has no sslmode=verify-full")
    if not settings.tls_cert_file:
        found.append("no TRISAM_TLS_CERT_FILE and TRISAM_TLS_KEY_FILE (the HTTP API would be plain HTTP)")
    if urlparse(settings.referral_url).scheme != "https":
        found.append("TRISAM_REFERRAL_URL is not https://")
    return found


def with_database(url: str, database: str) -> str:
    """The same PostgreSQL server URL with another database name."""
    head, sep, query = url.partition("?")
    scheme, _, rest = head.partition("://")
    authority = rest.split("/", 1)[0]
    return f"{scheme}://{authority}/{database}" + (sep + query if sep else "")


class ConfigurationError(SystemExit):
    """Settings that cannot be used: the process stops with a message saying which and why."""


def load_settings() -> Settings:
    """Settings from the environment, or a clear message (no traceback) and exit code 2."""
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error.get("loc", ()))
            variable = f"TRISAM_{where.upper()}" if where else "the settings"
            lines.append(f"  {variable}: {error.get('msg')}")
        print("configuration error:\n" + "\n".join(lines), file=sys.stderr)
        raise ConfigurationError(2) from None


def dev_only_on_loopback(env: str, http_host: str) -> None:
    """Development (its secrets, keys and sign-in) is served on this machine's loopback only."""
    if env == "dev" and not is_loopback(http_host):
        raise ValueError(
            f"TRISAM_ENV=dev serves only on loopback (127.0.0.1, ::1, localhost), not on "
            f"TRISAM_HTTP_HOST={http_host}: development secrets and sign-in must not be reachable"
        )


def is_loopback(host: str) -> bool:
    """Whether an HTTP host to bind is this machine's loopback only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
