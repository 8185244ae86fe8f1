"""The keys of the bearer tokens (``shared.platform.auth``): public keys that verify, a private
key that signs.

The services hold only public keys: a key set in JWKS form (RFC 7517), each key with its ``kid``,
from a file (``TRISAM_JWKS_FILE``) or a URL (``TRISAM_JWKS_URL``, the identity provider's). A token
names the key it was signed with in its ``kid`` header; several keys in the set allow a rotation
(the new key is added, tokens are signed with it, the old one is removed when its tokens have
expired). ``KeySource`` reads the set when first needed, and again when a token names a key it
does not hold (a rotation), at most once every ``MIN_REFRESH_SECONDS``; a URL's set is fetched
again after ``MAX_AGE_SECONDS`` at the latest (a removed key stops verifying).

Only where tokens are minted is there a private key: in production the identity provider's,
never the services'; in development the development key pair below (``signing_key``), known to
everyone, so a key set holding its public key is refused outside development.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import jwt

if TYPE_CHECKING:  # config imports this module
    from shared.platform.config import Settings

log = logging.getLogger(__name__)

# The signatures a key of the set may make (each key verifies only its own); never HS256
# (a shared secret) or none. Tokens minted here are EdDSA (Ed25519).
ALGORITHMS = ("EdDSA", "RS256")
SIGNING_ALGORITHM = "EdDSA"
MIN_REFRESH_SECONDS = 30.0
MAX_AGE_SECONDS = 600.0
FETCH_TIMEOUT_SECONDS = 5.0

# The development key pair (Ed25519). Public knowledge: refused outside development.
DEV_KEY_ID = "trisam-dev-1"
_DEV_PUBLIC = {"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": DEV_KEY_ID, "use": "sig"}
DEV_PUBLIC_X = "-xF5EY-uIUyrYpDToGo20lOjruyBzLyTilyHyUOlQHY"
DEV_JWKS: dict[str, Any] = {"keys": [_DEV_PUBLIC | {"x": DEV_PUBLIC_X}]}
DEV_SIGNING_KEY: dict[str, Any] = _DEV_PUBLIC | {"x": DEV_PUBLIC_X, "d": "XzNCeJjX_UdZhrpSO92HGVO3rnJsfAR72OPjJiZZgYA"}


class KeysUnavailable(ValueError):
    """The key set could not be read (its file or URL), or is not an acceptable key set."""


@dataclass(frozen=True)
class KeySet:
    """Public keys by their ``kid``."""

    keys: dict[str, jwt.PyJWK]

    @classmethod
    def from_jwks(cls, document: Any, *, dev: bool) -> KeySet:
        """The key set of a JWKS document, or ValueError saying what is wrong with it. ``dev``:
        whether the development key may be in it."""
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list) or not document["keys"]:
            raise ValueError('a key set is a JSON object {"keys": [...]} with at least one key')
        keys: dict[str, jwt.PyJWK] = {}
        for jwk in document["keys"]:
            kid = jwk.get("kid") if isinstance(jwk, dict) else None
            if not isinstance(kid, str) or not kid or kid in keys:
                raise ValueError("every key needs a kid of its own")
            if "d" in jwk or jwk.get("kty") == "oct":
                raise ValueError(f"key {kid} is private or a shared secret: the services hold public keys only")
            if jwk.get("x") == DEV_PUBLIC_X and not dev:
                raise ValueError(f"key {kid} is the development key, which is refused outside development")
            try:
                key = jwt.PyJWK(jwk)
            except jwt.PyJWKError as exc:
                raise ValueError(f"key {kid} is not usable: {exc}") from None
            if key.algorithm_name not in ALGORITHMS:
                raise ValueError(f"key {kid} is for {key.algorithm_name}; accepted: {', '.join(ALGORITHMS)}")
            keys[kid] = key
        return cls(keys)

    def get(self, kid: str) -> jwt.PyJWK | None:
        return self.keys.get(kid)


def read_jwks_file(path: str, *, dev: bool) -> KeySet:
    try:
        return KeySet.from_jwks(json.loads(Path(path).read_text(encoding="utf-8")), dev=dev)
    except (OSError, ValueError) as exc:  # json's errors are ValueErrors too
        raise KeysUnavailable(f"key set {path}: {exc}") from None


class KeySource:
    """The key set from a file or URL (None of either: the development key set), read when first
    needed and again for a kid it does not hold, at most once every ``MIN_REFRESH_SECONDS``."""

    def __init__(self, *, file: str | None = None, url: str | None = None, dev: bool = False):
        self.file, self.url, self.dev = file, url, dev
        self._keys: KeySet | None = None
        self._read_at = -MAX_AGE_SECONDS  # monotonic: never
        self._lock = asyncio.Lock()

    @classmethod
    def of(cls, settings: Settings) -> KeySource:
        """The key source that ``settings`` configure."""
        return cls(file=settings.jwks_file, url=settings.jwks_url, dev=settings.env == "dev")

    async def key(self, kid: str) -> jwt.PyJWK | None:
        """The public key named ``kid``; None if the set does not hold it, even when read again.
        KeysUnavailable if the set cannot be read and none was read before."""
        if self._stale(kid):
            async with self._lock:  # one read for the requests that wait together
                if self._stale(kid):
                    await self._read()
        if self._keys is None:
            raise KeysUnavailable(f"key set not read; tried again after {MIN_REFRESH_SECONDS:.0f} s")
        return self._keys.get(kid)

    def _stale(self, kid: str) -> bool:
        age = time.monotonic() - self._read_at
        if self._keys is None or self._keys.get(kid) is None:
            return age > MIN_REFRESH_SECONDS
        return age > MAX_AGE_SECONDS

    async def _read(self) -> None:
        self._read_at = time.monotonic()
        try:
            self._keys = await self._load()
        except KeysUnavailable as exc:
            if self._keys is None:
                raise
            log.error("key set not read again, the one read before stays: %s", exc)

    async def _load(self) -> KeySet:
        if self.file:
            return read_jwks_file(self.file, dev=self.dev)
        if not self.url:
            if not self.dev:
                raise KeysUnavailable("no key set: TRISAM_JWKS_FILE or TRISAM_JWKS_URL is needed outside development")
            return KeySet.from_jwks(DEV_JWKS, dev=True)
        try:
            async with httpx.AsyncClient(timeout=FETCH_TIMEOUT_SECONDS) as client:
                answer = await client.get(self.url, headers={"Accept": "application/json"})
                answer.raise_for_status()
                return KeySet.from_jwks(answer.json(), dev=self.dev)
        except (httpx.HTTPError, ValueError) as exc:
            raise KeysUnavailable(f"key set {self.url}: {exc}") from None


def load_signing_key(path: str | None) -> jwt.PyJWK:
    """The private key that mints tokens: a JWK file with its ``kid`` (``make secrets`` writes
    one), or None: the development key. Development only (see ``auth.signing_key``)."""
    jwk = DEV_SIGNING_KEY if path is None else json.loads(Path(path).read_text(encoding="utf-8"))
    if not jwk.get("kid") or "d" not in jwk:
        raise ValueError(f"{path}: a signing key is a private JWK with a kid")
    return jwt.PyJWK(jwk, algorithm=SIGNING_ALGORITHM)


def new_key_pair(kid: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A fresh Ed25519 key pair: (private JWK, public JWKS holding its public key)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from jwt.algorithms import OKPAlgorithm

    private = OKPAlgorithm.to_jwk(Ed25519PrivateKey.generate(), as_dict=True)
    public = {k: v for k, v in private.items() if k != "d"}
    extra = {"alg": SIGNING_ALGORITHM, "kid": kid, "use": "sig"}
    return private | extra, {"keys": [public | extra]}
