"""AES-256-GCM envelopes for vault secrets. Pure functions: no I/O, no clock; only the nonce is random.

The format (version 1), precise enough to re-implement. For a value `v` stored at `(scope, name)` under the
32-byte key `K`:

    nonce      = 12 fresh random bytes (never reused: 96-bit random nonces are safe far beyond 2^32 seals per key)
    aad        = b"portico-vault/1" || u32be(len(S)) || S || u32be(len(N)) || N     (S, N: UTF-8 scope, name)
    ciphertext = AES-256-GCM-Encrypt(K, nonce, UTF-8(v), aad)                       (16-byte tag appended)
    key_id     = lowercase_hex( SHA-256(b"portico-vault-key-id/1" || K) )[:16]

The associated data binds a ciphertext to its address: copied into another row (another scope or name) it no
longer authenticates. The key id is derived from the key, so keys need no names in the configuration and a
row says which key sealed it (rotation re-seals the rows whose id is not the new key's). Keys are written as
base64 (standard or URL-safe alphabet, padding optional) of exactly 32 bytes.

Foreign errors (`cryptography`'s `InvalidTag`, `binascii.Error`) are mapped to vault errors here and only here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import struct
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from portico.vault.model import SecretIntegrityError, VaultError, VaultKeyError, shown

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
_AAD_PREFIX = b"portico-vault/1"
_KEY_ID_PREFIX = b"portico-vault-key-id/1"


@dataclass(frozen=True, slots=True)
class VaultKey:
    """One AES-256 key and its derived id. The key material never appears in `repr`."""

    material: bytes = field(repr=False)
    id: str = field(init=False)

    def __post_init__(self) -> None:
        if len(self.material) != KEY_BYTES:
            raise VaultKeyError(detail=f"a vault key must be {KEY_BYTES} bytes, not {len(self.material)}")
        object.__setattr__(self, "id", key_id_of(self.material))


@dataclass(frozen=True, slots=True)
class Keyring:
    """The key new secrets are sealed with, and older keys still accepted for opening them."""

    current: VaultKey
    previous: tuple[VaultKey, ...] = ()

    def find(self, key_id: str) -> VaultKey | None:
        """The key with this id, current or previous; None if it is not configured."""
        return next((k for k in (self.current, *self.previous) if k.id == key_id), None)

    def with_current(self, key: VaultKey) -> Keyring:
        """This keyring after a rotation to `key`: the old current key becomes a previous one."""
        older = tuple(k for k in (self.current, *self.previous) if k.id != key.id)
        return Keyring(key, older)


@dataclass(frozen=True, slots=True)
class Sealed:
    """One stored envelope: which key sealed it, its nonce, and the ciphertext with its tag."""

    key_id: str
    nonce: bytes
    ciphertext: bytes

    def __repr__(self) -> str:
        return f"Sealed(key_id={self.key_id!r}, {len(self.ciphertext)} bytes)"


def key_id_of(material: bytes) -> str:
    """The public id of a key: 16 hex characters of a domain-separated SHA-256 (reveals nothing usable)."""
    return hashlib.sha256(_KEY_ID_PREFIX + material).hexdigest()[:16]


def new_key_text() -> str:
    """A fresh random key, base64-encoded (the form `parse_key` reads)."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")


def parse_key(text: str, source: str) -> VaultKey:
    """Read one base64 key. `source` names where it came from, for the error (the text itself is never shown).

    Raises:
        VaultKeyError: not base64, or not 32 bytes once decoded.
    """
    cleaned = "".join(text.split())
    cleaned += "=" * (-len(cleaned) % 4)
    altchars = b"-_" if ("-" in cleaned or "_" in cleaned) else None
    try:
        material = base64.b64decode(cleaned, altchars=altchars, validate=True)
    except (binascii.Error, ValueError):  # ValueError: non-ASCII text
        raise VaultKeyError(f"Vault key from {source} is not valid base64") from None
    if len(material) != KEY_BYTES:
        raise VaultKeyError(f"Vault key from {source} must decode to {KEY_BYTES} bytes, not {len(material)}")
    return VaultKey(material)


def parse_keys(text: str, source: str) -> tuple[VaultKey, ...]:
    """Read a list of base64 keys separated by commas or whitespace (duplicates dropped, order kept).

    Raises:
        VaultKeyError: any entry is not a valid key (the error gives its position, not its text).
    """
    keys: dict[str, VaultKey] = {}
    entries = [e for e in text.replace(",", " ").split() if e]
    for position, entry in enumerate(entries, start=1):
        key = parse_key(entry, f"{source} (entry {position})")
        keys.setdefault(key.id, key)
    return tuple(keys.values())


def associated_data(scope: str, name: str) -> bytes:
    """The bytes every envelope of `(scope, name)` is bound to (length-prefixed: no two addresses collide)."""
    s, n = scope.encode("utf-8"), name.encode("utf-8")
    return b"".join((_AAD_PREFIX, struct.pack(">I", len(s)), s, struct.pack(">I", len(n)), n))


def seal(key: VaultKey, scope: str, name: str, value: str) -> Sealed:
    """Encrypt `value` for `(scope, name)` under `key` with a fresh nonce.

    Raises:
        VaultError: `value` is not valid Unicode text (e.g. lone surrogates); the value is not in the error.
    """
    try:
        plaintext = value.encode("utf-8")
    except UnicodeEncodeError:
        raise VaultError("Secret values must be valid Unicode text") from None  # the cause would hold the value
    nonce = os.urandom(NONCE_BYTES)
    ciphertext = AESGCM(key.material).encrypt(nonce, plaintext, associated_data(scope, name))
    return Sealed(key.id, nonce, ciphertext)


def unseal(keys: Keyring, scope: str, name: str, sealed: Sealed) -> str:
    """Decrypt an envelope stored at `(scope, name)` with the key its `key_id` names.

    Raises:
        VaultKeyError: the envelope's key is neither the current key nor a previous one.
        SecretIntegrityError: authentication failed: altered bytes, another address, or another key.
    """
    key = keys.find(sealed.key_id)
    if key is None:
        raise VaultKeyError(
            f"Secret {shown(name)} in scope {shown(scope)} was sealed with vault key {sealed.key_id}, which is "
            "neither the current key nor a previous one: add that key to the previous keys"
        )
    if len(sealed.nonce) != NONCE_BYTES or len(sealed.ciphertext) < TAG_BYTES:
        raise SecretIntegrityError(f"Secret {shown(name)} in scope {shown(scope)} failed its integrity check")
    try:
        plaintext = AESGCM(key.material).decrypt(sealed.nonce, sealed.ciphertext, associated_data(scope, name))
    except InvalidTag:
        raise SecretIntegrityError(f"Secret {shown(name)} in scope {shown(scope)} failed its integrity check") from None
    return plaintext.decode("utf-8")
