"""Privacy vault crypto, pure (no I/O): AES-256-GCM sealing of personal data, each case under
its own data key, wrapped by rotating master keys (envelope encryption).

The keyring of master keys comes from configuration (``TRISAM_ENCRYPTION_KEYS``) as
``"kid1:BASE64KEY,kid2:BASE64KEY"``: each key is 32 bytes in standard or URL-safe base64. The
first entry is the current key, used for every new wrapping; the others only unwrap, so that
old rows stay readable while their data keys are wrapped again (rotation, a few bytes per case).

Crypto-shredding: a case's fields are sealed under a random data key of its own (``seal``);
erasure destroys that key with the fields. A copy of the vault made before the erasure (a
backup, the WAL, a standby) still holds the data key wrapped under the master key of its time:
once every live data key is wrapped under a newer master key (``rewrap``, scheduled) and the old
master key is removed from the configuration, such copies can never be opened again.
Rows sealed before data keys existed (their fields directly under a master key) still open,
and are moved to a data key of their own by the same scheduled job.

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


# The key id of a field sealed under its case's own data key (not a master key id)
CASE_KEY = "case"


@dataclass(frozen=True)
class SealedCase:
    """A case's row of the vault: its sealed fields (personnummer, question, purpose; those it
    has), its data key wrapped by a master key (None: erased, or sealed before data keys), and
    when it was erased after the retention period, if it was."""

    fields: dict[str, Sealed] = field(default_factory=dict)
    erased_at: datetime | None = None
    data_key: Sealed | None = None

    def __repr__(self) -> str:
        return f"SealedCase(fields={sorted(self.fields)!r}, erased_at={self.erased_at!r})"


def associated_data(case_ref: str, field: str) -> bytes:
    """Binds a ciphertext to its row and field: ``b"TS-ABC|personnummer"``."""
    if "|" in case_ref or "|" in field:
        raise ValueError("case_ref and field must not contain '|'")
    return f"{case_ref}|{field}".encode()


def seal(keyring: Keyring, case_ref: str, values: Mapping[str, str]) -> SealedCase:
    """Encrypt a case's personal data, field by field, under a new data key of its own, which
    is wrapped by the current master key."""
    data_key = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
    cipher = AESGCM(data_key)
    fields = {}
    for name, value in values.items():
        nonce = os.urandom(NONCE_BYTES)
        blob = nonce + cipher.encrypt(nonce, value.encode(), associated_data(case_ref, name))
        fields[name] = Sealed(CASE_KEY, blob)
    return SealedCase(fields, data_key=keyring.encrypt(data_key, associated_data=_data_key_ad(case_ref)))


def reveal(keyring: Keyring, case_ref: str, sealed: SealedCase) -> dict[str, str]:
    """Decrypt a case's vault fields (call only after the access rules allowed it, and the read
    is in the access log). VaultError if one cannot be opened (its data key or master key
    destroyed, or tampered with)."""
    cipher = (
        AESGCM(keyring.decrypt(sealed.data_key, associated_data=_data_key_ad(case_ref))) if sealed.data_key else None
    )
    opened = {}
    for name, value in sealed.fields.items():
        ad = associated_data(case_ref, name)
        if value.key_id != CASE_KEY:  # sealed before data keys: under a master key
            opened[name] = keyring.decrypt(value, associated_data=ad).decode()
            continue
        if cipher is None:
            raise VaultError("the case's data key is destroyed")
        opened[name] = _open(cipher, value.blob, ad).decode()
    return opened


def rewrap(keyring: Keyring, case_ref: str, sealed: SealedCase) -> SealedCase:
    """The case under the current master key: its data key wrapped again, or (sealed before
    data keys) its fields sealed afresh under a new data key of their own."""
    if sealed.data_key is not None:
        wrapped = keyring.reseal(sealed.data_key, associated_data=_data_key_ad(case_ref))
        return SealedCase(sealed.fields, sealed.erased_at, wrapped)
    return seal(keyring, case_ref, reveal(keyring, case_ref, sealed))


def needs_rewrap(keyring: Keyring, sealed: SealedCase) -> bool:
    if sealed.data_key is not None:
        return keyring.needs_rotation(sealed.data_key)
    return any(value.key_id != CASE_KEY for value in sealed.fields.values())


def _data_key_ad(case_ref: str) -> bytes:
    return associated_data(case_ref, "data_key")


def _open(cipher: AESGCM, blob: bytes, ad: bytes) -> bytes:
    if len(blob) < NONCE_BYTES + TAG_BYTES:
        raise VaultError("sealed value is truncated")
    try:
        return cipher.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], ad)
    except InvalidTag:
        raise VaultError("authentication failed (wrong associated data or tampered)") from None


class Keyring:
    """AES-256-GCM keys by key id; the first one is current (encrypts), all of them decrypt."""

    def __init__(self, keys: Iterable[tuple[str, bytes]]):
        self._ciphers: dict[str, AESGCM] = {}
        for position, (key_id, key) in enumerate(keys, start=1):
            if not _KEY_ID.fullmatch(key_id):
                raise ValueError(f"encryption key {position}: key id must match [A-Za-z0-9_-]{{1,32}}")
            if key_id == CASE_KEY:
                raise ValueError(f"encryption key {position}: key id {CASE_KEY!r} is reserved")
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
        return _open(cipher, sealed.blob, associated_data)

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
