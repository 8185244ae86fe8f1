"""Privacy vault crypto, pure (no I/O): AES-256-GCM sealing of personal data under rotating keys.

The keyring comes from configuration (``TRISAM_ENCRYPTION_KEYS``) as
``"kid1:BASE64KEY,kid2:BASE64KEY"``: each key is 32 bytes in standard or URL-safe base64. The
first entry is the current key, used for every new encryption; the others only decrypt, so that
old rows stay readable while they are resealed (rotation). Removing a key id from the
configuration destroys everything sealed under it (crypto-shredding).

Every ciphertext is bound by its associated data to its row and field (see
:func:`associated_data`), so a sealed value copied to another case or column fails to decrypt.
Nothing here ever puts key material or plaintext into a repr or an error message.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")


class VaultError(Exception):
    """A sealed value cannot be opened: unknown (e.g. destroyed) key, or authentication failed."""


@dataclass(frozen=True)
class Sealed:
    key_id: str
    blob: bytes  # nonce (12 bytes) + ciphertext + GCM tag (16 bytes)

    def __repr__(self) -> str:
        return f"Sealed(key_id={self.key_id!r}, blob=<{len(self.blob)} bytes>)"


@dataclass(frozen=True)
class SealedCase:
    """A case's row of the vault: its sealed fields (personnummer, question, purpose; those it
    has), and when they were erased after the retention period, if they were."""

    fields: dict[str, Sealed] = field(default_factory=dict)
    erased_at: datetime | None = None


def associated_data(case_ref: str, field: str) -> bytes:
    """Binds a ciphertext to its row and field: ``b"TS-ABC|personnummer"``."""
    if "|" in case_ref or "|" in field:
        raise ValueError("case_ref and field must not contain '|'")
    return f"{case_ref}|{field}".encode()


def seal(keyring: Keyring, case_ref: str, values: Mapping[str, str]) -> dict[str, Sealed]:
    """Encrypt a case's personal data, field by field, under the current key."""
    return {
        name: keyring.encrypt(value.encode(), associated_data=associated_data(case_ref, name))
        for name, value in values.items()
    }


def reveal(keyring: Keyring, case_ref: str, sealed: Mapping[str, Sealed]) -> dict[str, str]:
    """Decrypt a case's vault fields (call only after the access rules allowed it, and the read
    is in the access log). VaultError if one cannot be opened (e.g. its key was destroyed)."""
    return {
        name: keyring.decrypt(value, associated_data=associated_data(case_ref, name)).decode()
        for name, value in sealed.items()
    }


class Keyring:
    """AES-256-GCM keys by key id; the first one is current (encrypts), all of them decrypt."""

    def __init__(self, keys: Iterable[tuple[str, bytes]]):
        self._ciphers: dict[str, AESGCM] = {}
        for position, (key_id, key) in enumerate(keys, start=1):
            if not _KEY_ID.fullmatch(key_id):
                raise ValueError(f"encryption key {position}: key id must match [A-Za-z0-9_-]{{1,32}}")
            if key_id in self._ciphers:
                raise ValueError(f"encryption key {position}: duplicate key id {key_id!r}")
            if len(key) != KEY_BYTES:
                raise ValueError(f"encryption key {key_id!r}: must be {KEY_BYTES} bytes, got {len(key)}")
            self._ciphers[key_id] = AESGCM(key)
        if not self._ciphers:
            raise ValueError("no encryption keys configured")
        self._current = next(iter(self._ciphers))

    @classmethod
    def from_config(cls, text: str) -> Keyring:
        """Parse ``"kid1:BASE64KEY,kid2:BASE64KEY"`` (first entry current)."""
        if not text.strip():
            raise ValueError("no encryption keys configured")
        keys: list[tuple[str, bytes]] = []
        for position, entry in enumerate(text.split(","), start=1):
            key_id, sep, encoded = entry.strip().partition(":")
            if not sep or not key_id or not encoded.strip():
                raise ValueError(f"encryption key {position}: expected 'key_id:base64key'")
            keys.append((key_id.strip(), _decode_key(encoded.strip(), position)))
        return cls(keys)

    @property
    def current_key_id(self) -> str:
        return self._current

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._ciphers)

    def encrypt(self, plaintext: bytes, *, associated_data: bytes) -> Sealed:
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = self._ciphers[self._current].encrypt(nonce, plaintext, associated_data)
        return Sealed(key_id=self._current, blob=nonce + ciphertext)

    def decrypt(self, sealed: Sealed, *, associated_data: bytes) -> bytes:
        cipher = self._ciphers.get(sealed.key_id)
        if cipher is None:
            raise VaultError(f"unknown encryption key id {sealed.key_id!r}")
        if len(sealed.blob) < NONCE_BYTES + TAG_BYTES:
            raise VaultError("sealed value is truncated")
        nonce, ciphertext = sealed.blob[:NONCE_BYTES], sealed.blob[NONCE_BYTES:]
        try:
            return cipher.decrypt(nonce, ciphertext, associated_data)
        except InvalidTag:
            raise VaultError("authentication failed (wrong associated data or tampered)") from None

    def needs_rotation(self, sealed: Sealed) -> bool:
        return sealed.key_id != self._current

    def reseal(self, sealed: Sealed, *, associated_data: bytes) -> Sealed:
        """Decrypt (authenticating it) and encrypt again under the current key."""
        plaintext = self.decrypt(sealed, associated_data=associated_data)
        return self.encrypt(plaintext, associated_data=associated_data)

    def __repr__(self) -> str:
        return f"Keyring(key_ids={list(self._ciphers)!r}, current={self._current!r})"

    __str__ = __repr__


def _decode_key(encoded: str, position: int) -> bytes:
    """Standard or URL-safe base64, padding optional."""
    normalised = encoded.replace("-", "+").replace("_", "/").rstrip("=")
    normalised += "=" * (-len(normalised) % 4)
    try:
        return base64.b64decode(normalised, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"encryption key {position}: key is not valid base64") from None
