"""The AES-256-GCM envelope, as pure functions: round trips, and every kind of tampering rejected."""

from __future__ import annotations

import base64
import dataclasses
import os
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from portico.vault.crypto import (
    Keyring,
    Sealed,
    VaultKey,
    associated_data,
    key_id_of,
    new_key_text,
    parse_key,
    parse_keys,
    seal,
    unseal,
)
from portico.vault.model import SecretIntegrityError, VaultError, VaultKeyError

KEY = VaultKey(bytes(range(32)))
OTHER = VaultKey(bytes(range(1, 33)))
SCOPE, NAME = "server:github", "token"


def _flip(data: bytes, index: int) -> bytes:
    out = bytearray(data)
    out[index] ^= 0x01
    return bytes(out)


@pytest.mark.parametrize(
    "value",
    ["ghp_abc123", "x", "pässwörd ✓ 🔑", "a" * 100_000, "line1\nline2\r\n", " spaces kept "],
)
def test_a_sealed_value_opens_to_exactly_the_same_text(value: str) -> None:
    assert unseal(Keyring(KEY), SCOPE, NAME, seal(KEY, SCOPE, NAME, value)) == value


def test_every_seal_uses_a_fresh_nonce_so_equal_values_give_different_ciphertexts() -> None:
    sealed = [seal(KEY, SCOPE, NAME, "same") for _ in range(50)]
    assert len({s.nonce for s in sealed}) == 50
    assert len({s.ciphertext for s in sealed}) == 50
    assert all(len(s.nonce) == 12 for s in sealed)


def test_the_envelope_is_standard_aes_gcm_with_the_documented_associated_data() -> None:
    sealed = seal(KEY, SCOPE, NAME, "hello")
    assert AESGCM(KEY.material).decrypt(sealed.nonce, sealed.ciphertext, associated_data(SCOPE, NAME)) == b"hello"
    assert associated_data(SCOPE, NAME) == b"portico-vault/1\x00\x00\x00\x0dserver:github\x00\x00\x00\x05token"


TAMPERING: list[tuple[str, Callable[[Sealed], Sealed]]] = [
    ("first ciphertext byte", lambda s: dataclasses.replace(s, ciphertext=_flip(s.ciphertext, 0))),
    ("last tag byte", lambda s: dataclasses.replace(s, ciphertext=_flip(s.ciphertext, -1))),
    ("nonce", lambda s: dataclasses.replace(s, nonce=_flip(s.nonce, 5))),
    ("truncated tag", lambda s: dataclasses.replace(s, ciphertext=s.ciphertext[:-1])),
    ("appended byte", lambda s: dataclasses.replace(s, ciphertext=s.ciphertext + b"\x00")),
    ("ciphertext shorter than a tag", lambda s: dataclasses.replace(s, ciphertext=b"\x00" * 15)),
    ("short nonce", lambda s: dataclasses.replace(s, nonce=s.nonce[:8])),
    ("another envelope's nonce", lambda s: dataclasses.replace(s, nonce=seal(KEY, SCOPE, NAME, "v").nonce)),
]


@pytest.mark.requirement("vault:tamper-evident")
@pytest.mark.parametrize(("case", "tamper"), TAMPERING, ids=[c for c, _ in TAMPERING])
def test_a_tampered_envelope_fails_its_integrity_check(case: str, tamper: Callable[[Sealed], Sealed]) -> None:
    with pytest.raises(SecretIntegrityError):
        unseal(Keyring(KEY), SCOPE, NAME, tamper(seal(KEY, SCOPE, NAME, "ghp_abc123")))


ADDRESSES = [
    ("another name", SCOPE, "token2"),
    ("another server", "server:gitlab", NAME),
    ("the same server for one user", "user:alice:server:github", NAME),
    ("name moved into the scope", "server:githubtoken", ""),
    ("case changed", "server:github", "Token"),
]


@pytest.mark.requirement("vault:bound-to-address")
@pytest.mark.parametrize(("case", "scope", "name"), ADDRESSES, ids=[c for c, _, _ in ADDRESSES])
def test_an_envelope_moved_to_another_address_does_not_open(case: str, scope: str, name: str) -> None:
    with pytest.raises(SecretIntegrityError):
        unseal(Keyring(KEY), scope, name, seal(KEY, SCOPE, NAME, "ghp_abc123"))


def test_associated_data_is_length_prefixed_so_no_two_addresses_share_it() -> None:
    assert associated_data("ab", "c") != associated_data("a", "bc")


def test_an_envelope_whose_key_is_not_configured_is_a_key_error_naming_the_key_id() -> None:
    sealed = seal(OTHER, SCOPE, NAME, "ghp_abc123")
    with pytest.raises(VaultKeyError) as caught:
        unseal(Keyring(KEY), SCOPE, NAME, sealed)
    assert OTHER.id in caught.value.public


def test_an_envelope_opened_with_the_wrong_key_under_its_id_fails_its_integrity_check() -> None:
    sealed = dataclasses.replace(seal(OTHER, SCOPE, NAME, "ghp_abc123"), key_id=KEY.id)
    with pytest.raises(SecretIntegrityError):
        unseal(Keyring(KEY), SCOPE, NAME, sealed)


def test_a_previous_key_still_opens_what_it_sealed() -> None:
    sealed = seal(OTHER, SCOPE, NAME, "ghp_abc123")
    assert unseal(Keyring(KEY, (OTHER,)), SCOPE, NAME, sealed) == "ghp_abc123"


def test_a_value_that_is_not_unicode_text_is_refused_without_echoing_it() -> None:
    with pytest.raises(VaultError) as caught:
        seal(KEY, SCOPE, NAME, "hunter2\ud800")
    assert "hunter2" not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


# ------------------------------------------------------------------------------------------------ keys

RAW = os.urandom(32)
GOOD_KEYS = [
    ("standard base64", base64.b64encode(RAW).decode()),
    ("url-safe base64", base64.urlsafe_b64encode(RAW).decode()),
    ("without padding", base64.b64encode(RAW).decode().rstrip("=")),
    ("with a trailing newline", base64.b64encode(RAW).decode() + "\n"),
    ("with surrounding spaces", "  " + base64.b64encode(RAW).decode() + " "),
]


@pytest.mark.parametrize(("case", "text"), GOOD_KEYS, ids=[c for c, _ in GOOD_KEYS])
def test_a_base64_32_byte_key_is_accepted(case: str, text: str) -> None:
    assert parse_key(text, "$K").material == RAW


BAD_KEYS = [
    ("empty", ""),
    ("16 bytes", base64.b64encode(os.urandom(16)).decode()),
    ("33 bytes", base64.b64encode(os.urandom(33)).decode()),
    ("not base64", "this is not a key!!" * 3),
    ("hex instead of base64", os.urandom(32).hex()),
    ("non-ascii", "ключ" * 11),
]


@pytest.mark.parametrize(("case", "text"), BAD_KEYS, ids=[c for c, _ in BAD_KEYS])
def test_a_malformed_key_is_a_key_error_that_names_its_source_not_its_text(case: str, text: str) -> None:
    with pytest.raises(VaultKeyError) as caught:
        parse_key(text, "$PORTICO_VAULT_KEY")
    assert "$PORTICO_VAULT_KEY" in caught.value.public
    if text:
        assert text not in str(caught.value)
        assert text[:12] not in caught.value.public


def test_previous_keys_are_read_from_a_comma_or_space_separated_list_without_duplicates() -> None:
    a, b = new_key_text(), new_key_text()
    keys = parse_keys(f"{a}, {b}\n{a}", "$PREV")
    assert [k.material for k in keys] == [base64.b64decode(a), base64.b64decode(b)]
    assert parse_keys("  ", "$PREV") == ()


def test_a_bad_entry_among_previous_keys_is_named_by_position() -> None:
    with pytest.raises(VaultKeyError) as caught:
        parse_keys(f"{new_key_text()},nope", "$PREV")
    assert "entry 2" in caught.value.public


def test_a_key_id_is_stable_distinct_and_reveals_no_key_material() -> None:
    assert key_id_of(RAW) == VaultKey(RAW).id == key_id_of(bytes(RAW))
    assert KEY.id != OTHER.id
    assert len(KEY.id) == 16
    assert KEY.id not in KEY.material.hex()


def test_keys_and_envelopes_never_show_key_material_or_ciphertext_in_repr() -> None:
    sealed = seal(KEY, SCOPE, NAME, "ghp_abc123")
    shown = repr(KEY) + repr(Keyring(KEY, (OTHER,))) + repr(sealed)
    for secret in (KEY.material, OTHER.material, sealed.ciphertext):
        assert secret.hex() not in shown
        assert repr(secret) not in shown
    assert KEY.id in shown


def test_a_rotated_keyring_makes_the_new_key_current_and_keeps_the_others() -> None:
    third = VaultKey(os.urandom(32))
    rotated = Keyring(KEY, (OTHER,)).with_current(third)
    assert rotated.current == third
    assert [k.id for k in rotated.previous] == [KEY.id, OTHER.id]
    assert Keyring(KEY, (OTHER,)).with_current(OTHER).previous == (KEY,)
