"""Privacy vault crypto: sealing, associated data, tampering, rotation and key configuration."""

from __future__ import annotations

import base64
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.referral.vault import Keyring, Sealed, VaultError, associated_data
from shared.platform.config import DEV_ENCRYPTION_KEYS

OLD_KEY, NEW_KEY = bytes(range(32)), b"\xfb\xff" * 16  # the second one has '+/' in base64
AD = associated_data("TS-ABC", "personnummer")


def config(*entries: tuple[str, bytes], urlsafe: bool = False) -> str:
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    return ",".join(f"{kid}:{encode(key).decode()}" for kid, key in entries)


@pytest.fixture
def keyring() -> Keyring:
    return Keyring.from_config(config(("k1", OLD_KEY)))


def test_associated_data_binds_case_and_field():
    assert AD == b"TS-ABC|personnummer"
    with pytest.raises(ValueError):
        associated_data("TS-A|B", "personnummer")


@given(st.binary(max_size=2048), st.binary(max_size=256))
def test_round_trip_of_arbitrary_bytes(plaintext, ad):
    keyring = Keyring.from_config(config(("k1", OLD_KEY)))
    sealed = keyring.encrypt(plaintext, associated_data=ad)
    assert sealed.key_id == "k1"
    assert keyring.decrypt(sealed, associated_data=ad) == plaintext


def test_two_encryptions_of_the_same_plaintext_differ(keyring):
    first = keyring.encrypt(b"199001011234", associated_data=AD)
    second = keyring.encrypt(b"199001011234", associated_data=AD)
    assert first.blob[:12] != second.blob[:12]
    assert first.blob != second.blob


@pytest.mark.parametrize("other", [associated_data("TS-XYZ", "personnummer"), associated_data("TS-ABC", "name"), b""])
def test_wrong_associated_data_fails(keyring, other):
    sealed = keyring.encrypt(b"secret", associated_data=AD)
    with pytest.raises(VaultError):
        keyring.decrypt(sealed, associated_data=other)


@pytest.mark.parametrize("index", [0, 11, 12, -1])  # nonce, ciphertext, tag
def test_tampered_blob_fails(keyring, index):
    sealed = keyring.encrypt(b"secret", associated_data=AD)
    blob = bytearray(sealed.blob)
    blob[index] ^= 0x01
    with pytest.raises(VaultError):
        keyring.decrypt(Sealed(sealed.key_id, bytes(blob)), associated_data=AD)


def test_truncated_blob_fails(keyring):
    sealed = keyring.encrypt(b"", associated_data=AD)
    with pytest.raises(VaultError):
        keyring.decrypt(Sealed(sealed.key_id, sealed.blob[:20]), associated_data=AD)


def test_unknown_key_id_fails(keyring):
    sealed = keyring.encrypt(b"secret", associated_data=AD)
    destroyed = Keyring.from_config(config(("k2", NEW_KEY)))
    with pytest.raises(VaultError, match="k1"):
        destroyed.decrypt(sealed, associated_data=AD)


def test_rotation_old_ciphertext_decrypts_and_reseal_moves_it_to_the_new_key(keyring):
    old = keyring.encrypt(b"secret", associated_data=AD)
    rotated = Keyring.from_config(config(("k2", NEW_KEY), ("k1", OLD_KEY)))
    assert rotated.current_key_id == "k2"
    assert rotated.decrypt(old, associated_data=AD) == b"secret"
    assert rotated.needs_rotation(old)

    resealed = rotated.reseal(old, associated_data=AD)
    assert resealed.key_id == "k2"
    assert not rotated.needs_rotation(resealed)
    assert rotated.decrypt(resealed, associated_data=AD) == b"secret"
    # once the old key is removed, only the resealed value can still be opened
    retired = Keyring.from_config(config(("k2", NEW_KEY)))
    assert retired.decrypt(resealed, associated_data=AD) == b"secret"
    with pytest.raises(VaultError):
        retired.decrypt(old, associated_data=AD)


def test_reseal_still_authenticates(keyring):
    sealed = keyring.encrypt(b"secret", associated_data=AD)
    with pytest.raises(VaultError):
        keyring.reseal(sealed, associated_data=associated_data("TS-XYZ", "personnummer"))


def test_dev_key_parses():
    keyring = Keyring.from_config(DEV_ENCRYPTION_KEYS)
    assert keyring.current_key_id == "dev1"
    sealed = keyring.encrypt(b"x", associated_data=AD)
    assert keyring.decrypt(sealed, associated_data=AD) == b"x"


@pytest.mark.parametrize("urlsafe", [False, True])
def test_standard_and_urlsafe_base64_give_the_same_key(urlsafe):
    sealed = Keyring.from_config(config(("k", NEW_KEY))).encrypt(b"x", associated_data=AD)
    keyring = Keyring.from_config(config(("k", NEW_KEY), urlsafe=urlsafe).rstrip("="))
    assert keyring.decrypt(sealed, associated_data=AD) == b"x"


def test_whitespace_around_entries_is_allowed():
    keyring = Keyring.from_config(f" {config(('a', NEW_KEY))} , {config(('b', OLD_KEY))} ")
    assert keyring.key_ids == ("a", "b")


KEY_B64 = base64.b64encode(NEW_KEY).decode()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no encryption keys"),
        ("   ", "no encryption keys"),
        (KEY_B64, "expected 'key_id:base64key'"),
        (f"k1:{KEY_B64},", "expected 'key_id:base64key'"),
        ("k1:", "expected 'key_id:base64key'"),
        (f":{KEY_B64}", "expected 'key_id:base64key'"),
        (f"bad id:{KEY_B64}", "key id must match"),
        (f"{'k' * 33}:{KEY_B64}", "key id must match"),
        (f"k1:{KEY_B64}!", "not valid base64"),
        (f"k1:{base64.b64encode(NEW_KEY[:16]).decode()}", "must be 32 bytes, got 16"),
        (f"k1:{base64.b64encode(NEW_KEY + b'x').decode()}", "must be 32 bytes, got 33"),
        (f"k1:{KEY_B64},k1:{base64.b64encode(OLD_KEY).decode()}", "duplicate key id 'k1'"),
    ],
)
def test_bad_configuration_is_refused_without_showing_key_material(text, message):
    with pytest.raises(ValueError, match=message) as caught:
        Keyring.from_config(text)
    assert KEY_B64 not in str(caught.value)
    assert KEY_B64[:8] not in str(caught.value)


def test_reprs_show_no_key_material_or_plaintext():
    keyring = Keyring.from_config(config(("new", NEW_KEY), ("old", OLD_KEY)))
    plaintext = os.urandom(16).hex().encode()
    sealed = keyring.encrypt(plaintext, associated_data=AD)
    text = repr(keyring) + str(keyring) + repr(sealed)
    assert repr(keyring) == "Keyring(key_ids=['new', 'old'], current='new')"
    for secret in (NEW_KEY, OLD_KEY):
        assert base64.b64encode(secret).decode()[:8] not in text
        assert repr(secret)[2:20] not in text
    assert plaintext.decode() not in text
    assert sealed.blob.hex()[:16] not in text and repr(sealed.blob)[2:20] not in text


# --------------------------------------------------------------------------- a data key per case


PERSONAL = {"personnummer": "19850101-1234", "question": "Stöd till arbete?"}


def test_a_case_is_sealed_under_a_data_key_of_its_own_wrapped_by_the_master_key(keyring):
    from services.referral.vault import CASE_KEY, reveal, seal

    sealed = seal(keyring, "TS-ABC", PERSONAL)
    assert sealed.data_key is not None and sealed.data_key.key_id == "k1"
    assert {f.key_id for f in sealed.fields.values()} == {CASE_KEY}
    assert reveal(keyring, "TS-ABC", sealed) == PERSONAL
    other = seal(keyring, "TS-ABC", PERSONAL)
    assert other.data_key != sealed.data_key  # a new key for every case
    with pytest.raises(VaultError):  # fields bound to their case: not opened under another's key
        reveal(keyring, "TS-ABC", type(sealed)(other.fields, data_key=sealed.data_key))
    assert "1234" not in repr(sealed) and "Stöd" not in repr(sealed)


def test_erasure_destroys_the_case_key_and_a_backup_dies_with_its_master_key(keyring):
    """Crypto-shredding: the erased row has no key; a copy taken before the erasure (a backup)
    opens only while its master key is configured. The scheduled re-wrap moves every live case
    to the new master key, so that the old one can be removed: the backup is then dead, the
    live cases are not."""
    from services.referral.vault import SealedCase, needs_rewrap, reveal, rewrap, seal

    erased, kept = seal(keyring, "TS-ERASED", PERSONAL), seal(keyring, "TS-KEPT", PERSONAL)
    backup = erased  # the copy in last night's backup
    after_erasure = SealedCase(erased.fields, data_key=None)  # the row now (fields gone too, in life)
    with pytest.raises(VaultError):
        reveal(keyring, "TS-ERASED", after_erasure)
    rotated = Keyring.from_config(config(("k2", NEW_KEY), ("k1", OLD_KEY)))
    assert needs_rewrap(rotated, kept)
    kept = rewrap(rotated, "TS-KEPT", kept)
    assert not needs_rewrap(rotated, kept) and kept.data_key is not None and kept.data_key.key_id == "k2"
    assert reveal(rotated, "TS-ERASED", backup) == PERSONAL  # until the old master key goes
    retired = Keyring.from_config(config(("k2", NEW_KEY)))
    assert reveal(retired, "TS-KEPT", kept) == PERSONAL
    with pytest.raises(VaultError):
        reveal(retired, "TS-ERASED", backup)


def test_a_row_sealed_before_data_keys_opens_and_is_moved_to_a_key_of_its_own(keyring):
    from services.referral.vault import CASE_KEY, SealedCase, needs_rewrap, reveal, rewrap

    legacy = SealedCase(
        {
            name: keyring.encrypt(v.encode(), associated_data=associated_data("TS-OLD", name))
            for name, v in PERSONAL.items()
        }
    )
    assert reveal(keyring, "TS-OLD", legacy) == PERSONAL and needs_rewrap(keyring, legacy)
    moved = rewrap(keyring, "TS-OLD", legacy)
    assert moved.data_key is not None and {f.key_id for f in moved.fields.values()} == {CASE_KEY}
    assert reveal(keyring, "TS-OLD", moved) == PERSONAL and not needs_rewrap(keyring, moved)


def test_the_case_key_id_is_reserved():
    with pytest.raises(ValueError, match="reserved"):
        Keyring.from_config(config(("case", OLD_KEY)))
