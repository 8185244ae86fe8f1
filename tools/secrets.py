"""`make secrets`: the secrets of a Docker Compose installation, generated once.

Writes `.env` (read by `docker compose`; mode 600, never committed) with a random value for
every secret the services and servers need, `deploy/rabbitmq/definitions.local.json` (the
broker's users with those passwords, hashed; never committed) and the token key pair in place of
an identity provider: `deploy/keys/jwks.local.json` (the public key set the services verify
with) and `deploy/keys/signing-key.local.json` (its private key, mode 600, for the development
mint command only: `TRISAM_SIGNING_KEY_FILE=deploy/keys/signing-key.local.json python -m
shared.platform.auth mint ...`; never given to the services). `docker-compose.yml` refuses to
start without them, and the services refuse development secrets when `TRISAM_ENV=production`
(the compose default). An existing `.env` is kept unless `--force`: rotating a secret is a
deliberate act (see docs/deployment.md).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import sys
from datetime import UTC, datetime
from pathlib import Path

from shared.contracts.vocabulary import Party
from shared.platform.keys import new_key_pair
from tools.broker_users import SERVICES, agency_user, definitions, service_user

ROOT = Path(__file__).resolve().parents[1]
ENV_FILE = ROOT / ".env"
DEFINITIONS = ROOT / "deploy" / "rabbitmq" / "definitions.local.json"
JWKS = ROOT / "deploy" / "keys" / "jwks.local.json"
SIGNING_KEY = ROOT / "deploy" / "keys" / "signing-key.local.json"
NAMESPACE = "trisam"


def generate() -> dict[str, str]:
    """A fresh random value for every secret."""
    key_id = "k" + datetime.now(UTC).strftime("%Y%m%d")
    values = {
        "TRISAM_PSEUDONYM_KEY": secrets.token_urlsafe(48),
        "TRISAM_ENCRYPTION_KEYS": f"{key_id}:{base64.b64encode(secrets.token_bytes(32)).decode()}",
        "TRISAM_POSTGRES_PASSWORD": secrets.token_urlsafe(24),
        "TRISAM_RABBITMQ_ADMIN_PASSWORD": secrets.token_urlsafe(24),
        "TRISAM_WORKSPACE_SESSION_KEY": secrets.token_urlsafe(48),  # signs the workspace's session cookie
    }
    for service in SERVICES:
        values[f"TRISAM_BROKER_PASSWORD_{service.upper()}"] = secrets.token_urlsafe(24)
        values[f"TRISAM_DB_PASSWORD_{service.upper()}"] = secrets.token_urlsafe(24)  # its own database role
    for party in Party:
        values[f"TRISAM_BROKER_PASSWORD_{party.value}"] = secrets.token_urlsafe(24)
    return values


def broker_definitions(values: dict[str, str]) -> dict:
    users = [
        agency_user(
            f"{NAMESPACE}-{p.value.lower()}",
            values[f"TRISAM_BROKER_PASSWORD_{p.value}"],
            p,
            NAMESPACE,
            (f"{NAMESPACE}.intake",),
        )
        for p in Party
    ]
    users += [
        service_user(f"{NAMESPACE}-svc-{s}", values[f"TRISAM_BROKER_PASSWORD_{s.upper()}"], NAMESPACE, s)
        for s in SERVICES
    ]
    return definitions(users, admin=("trisam-admin", values["TRISAM_RABBITMQ_ADMIN_PASSWORD"]), salt=os.urandom(4))


def add_missing(env_file: Path) -> list[str]:
    """Secrets that a newer version needs (the workspace's session key) added to an existing
    .env; nothing there is changed. The names added."""
    text = env_file.read_text(encoding="utf-8")
    present = {line.split("=", 1)[0] for line in text.splitlines() if "=" in line}
    new = {k: v for k, v in generate().items() if k == "TRISAM_WORKSPACE_SESSION_KEY" and k not in present}
    if new:
        env_file.write_text(text.rstrip("\n") + "\n" + "".join(f"{k}={v}\n" for k, v in new.items()), encoding="utf-8")
    return list(new)


def write_key_pair(*, keep_old: bool = False) -> None:
    """The token key pair in place of an identity provider: the services' public key set, and
    its private key for the development mint command only. ``keep_old``: a rotation, the set
    keeps the public keys it had (tokens signed before still verify until they are removed)."""
    private, public = new_key_pair(f"k{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(3)}")
    if keep_old and JWKS.exists():
        public["keys"] += json.loads(JWKS.read_text(encoding="utf-8"))["keys"]
    JWKS.parent.mkdir(exist_ok=True)
    SIGNING_KEY.write_text(json.dumps(private, indent=2) + "\n", encoding="utf-8")
    SIGNING_KEY.chmod(0o600)
    JWKS.write_text(json.dumps(public, indent=2) + "\n", encoding="utf-8")
    JWKS.chmod(0o644)  # read by the services' own user in their containers (public keys only)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make secrets", description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="replace an existing .env (rotates every secret)")
    parser.add_argument(
        "--rotate-token-key",
        action="store_true",
        help="a new token key pair only; the key set keeps the old public keys (remove them by hand later)",
    )
    args = parser.parse_args(argv)
    if args.rotate_token_key or not JWKS.exists() or args.force:
        write_key_pair(keep_old=args.rotate_token_key)
        print(f"wrote {JWKS} and {SIGNING_KEY}", file=sys.stderr)
    if args.rotate_token_key:
        return 0
    if ENV_FILE.exists() and not args.force:
        added = add_missing(ENV_FILE)
        print(
            f"{ENV_FILE} exists: kept (--force replaces every secret)"
            + (f"; added the new {', '.join(added)}" if added else ""),
            file=sys.stderr,
        )
        return 0
    values = generate()
    ENV_FILE.write_text("".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")
    ENV_FILE.chmod(0o600)
    DEFINITIONS.write_text(json.dumps(broker_definitions(values), indent=2) + "\n", encoding="utf-8")
    DEFINITIONS.chmod(0o644)  # read by the broker's own user in its container (hashes only)
    print(f"wrote {ENV_FILE} and {DEFINITIONS}; keep them and deploy/keys/ out of version control", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
