"""The authorization server's signing keys: one current ES256 key, and retired keys still accepted until their
grace period ends.

    KeyRing                 signs (current key), verifies (current + retired in grace), publishes the JWKS
    ├── KeyRing.open        loads the key file named by the settings, creating it (mode 0600) on first use
    ├── KeyRing.generate    an in-memory ring (tests, ephemeral demos)
    └── rotate()            a new current key; the old one is retired, published until `rotation_grace_s`
    JwksKeys                verification keys from someone's published JWKS (public keys only)

Both implement `VerificationKeys`, which is all `TokenVerifier` needs. Key ids are RFC 7638 thumbprints.

The key file is a JSON Web Key Set (RFC 7517) with two extra top-level members, which JWKS readers ignore:

    {"keys": [<private JWK>, ...], "current": "<kid>",
     "retired": {"<kid>": {"retired_at": 1767225600, "verify_until": 1767312000}}}

It holds private keys: it is created whole or not at all with mode 0600 (`portico.keyfile`), and replaced
atomically on rotation, under an exclusive lock, after re-reading it, so two processes rotating at once keep
both new keys. Another process sees a rotation when it calls `reload()` (or restarts); the shared store will
replace the file. Errors name the file, never key material.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import stat
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, TypeGuard

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, Key, KeySet

from portico.errors import PorticoError
from portico.identity.settings import SIGNING_ALG, TokenSettings
from portico.keyfile import load_or_create, replace_atomically

log = logging.getLogger("portico.identity")

Clock = Callable[[], float]
"""Seconds since the epoch, like `time.time`; injected so tests move time instead of patching it."""

CURVE = "P-256"
# Every private member a JWK can have (EC/OKP `d`, RSA CRT values, symmetric `k`): never published.
PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


class SigningKeyError(PorticoError):
    """The signing keys cannot be read, created, parsed or saved (a missing key never falls back to anything)."""

    default_public = "Signing keys unavailable"


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One ES256 key pair. `verify_until` is None while it is current; once retired, it verifies until then."""

    kid: str
    key: ECKey
    retired_at: float | None = None
    verify_until: float | None = None

    def verifies_at(self, now: float) -> bool:
        return self.verify_until is None or now < self.verify_until

    def public_jwk(self) -> dict[str, Any]:
        jwk = dict(self.key.as_dict(private=False))
        return {k: v for k, v in jwk.items() if k not in PRIVATE_JWK_MEMBERS}


class VerificationKeys(Protocol):
    """Where a verifier finds the key named by a token's `kid`."""

    def verification_key(self, kid: str) -> Key | None:
        """The key to check a signature made under `kid` now, or None if there is no such key (any more)."""


def new_signing_key() -> SigningKey:
    """A fresh P-256 key pair, `kid` its RFC 7638 thumbprint, marked for ES256 signatures only."""
    key = ECKey.generate_key(CURVE, parameters={"alg": SIGNING_ALG, "use": "sig"}, auto_kid=True)
    return SigningKey(kid=key.kid or key.thumbprint(), key=key)


@dataclass(frozen=True, slots=True)
class _State:
    current: SigningKey
    keys: Mapping[str, SigningKey]  # every key that may still verify, current included


class KeyRing:
    """The current signing key and the retired keys still in their grace period.

    Rotation swaps one immutable snapshot for another, so readers on other threads never see half a rotation.
    """

    def __init__(
        self,
        current: SigningKey,
        retired: tuple[SigningKey, ...] = (),
        *,
        grace_s: float,
        clock: Clock = time.time,
        path: Path | None = None,
    ) -> None:
        """Raises:
        ValueError: the current key is marked retired, or a retired key is not.
        """
        if current.verify_until is not None or any(k.verify_until is None for k in retired):
            raise ValueError("the current key must not be retired, and retired keys must have verify_until")
        self.grace_s = grace_s
        self.path = path
        self._clock = clock
        self._state = _state(current, retired)

    @classmethod
    def generate(cls, *, grace_s: float, clock: Clock = time.time) -> KeyRing:
        """A ring with one fresh key, kept in memory only."""
        return cls(new_signing_key(), grace_s=grace_s, clock=clock)

    @classmethod
    def open(cls, settings: TokenSettings, clock: Clock = time.time) -> KeyRing:
        """The ring in `settings.key_file`, which is created (mode 0600, one fresh key) on first use.

        Raises:
            SigningKeyError: the file cannot be read or created, or does not hold a valid key set.
        """
        path = settings.key_file
        made: list[str] = []

        def make() -> str:
            made.append(_dump(new_signing_key(), ()))
            return made[0]

        try:
            text = load_or_create(path, make)
        except OSError as exc:
            raise SigningKeyError(detail=f"cannot read or create the signing key file {path}: {exc.strerror}") from exc
        current, retired = _parse(text, str(path))
        if made:
            log.info("identity: created signing key file %s (kid %s)", path, current.kid)
        _warn_if_shared(path)
        return cls(current, retired, grace_s=settings.rotation_grace_s, clock=clock, path=path)

    @property
    def current(self) -> SigningKey:
        """The key new tokens are signed with."""
        return self._state.current

    def verification_key(self, kid: str) -> ECKey | None:
        """The key named `kid` if it is current or retired less than its grace period ago, else None."""
        found = self._state.keys.get(kid)
        if found is None or not found.verifies_at(self._clock()):
            return None
        return found.key

    def published(self) -> tuple[SigningKey, ...]:
        """The keys that verify now: the current one first, then retired ones, newest retirement first."""
        now = self._clock()
        state = self._state
        retired = [k for k in state.keys.values() if k is not state.current and k.verifies_at(now)]
        retired.sort(key=lambda k: k.retired_at or 0.0, reverse=True)
        return (state.current, *retired)

    def jwks(self) -> dict[str, Any]:
        """The JSON Web Key Set to publish at `jwks_uri`: public members only, of every key that verifies now."""
        return {"keys": [k.public_jwk() for k in self.published()]}

    def rotate(self, *, grace_s: float | None = None) -> SigningKey:
        """Make a fresh key current; the previous one verifies for `grace_s` more (default: the ring's grace).

        `grace_s=0` drops the previous key at once (a suspected leak): every token it signed stops verifying.
        With a key file, the file is re-read under an exclusive lock, the rotation applied to what it holds,
        and replaced atomically; keys whose grace has ended are pruned from it.

        Raises:
            SigningKeyError: the key file cannot be locked, read or written (the ring is then unchanged).
        """
        grace = self.grace_s if grace_s is None else grace_s
        if grace < 0:
            raise ValueError("grace_s must not be negative")
        fresh = new_signing_key()
        if self.path is None:
            self._state = _rotated(self._state, fresh, self._clock(), grace)
            return fresh
        with _locked(self.path):
            current, retired = _parse(_read(self.path), str(self.path))
            state = _rotated(_state(current, retired), fresh, self._clock(), grace)
            _write_atomically(self.path, _dump(state.current, _retired(state)))
        self._state = state
        log.info("identity: rotated signing keys in %s (new kid %s)", self.path, fresh.kid)
        return fresh

    def reload(self) -> None:
        """Re-read the key file (another process may have rotated). No-op for an in-memory ring.

        Raises:
            SigningKeyError: the file cannot be read or does not hold a valid key set (the ring is unchanged).
        """
        if self.path is not None:
            current, retired = _parse(_read(self.path), str(self.path))
            self._state = _state(current, retired)


class JwksKeys:
    """Verification keys from a published JSON Web Key Set: public members only, looked up by `kid`."""

    def __init__(self, jwks: Mapping[str, Any]) -> None:
        """Raises:
        SigningKeyError: not a key set, or a key without a `kid` (a verifier must never guess the key).
        """
        keys = jwks.get("keys")
        if not isinstance(keys, list) or not all(isinstance(k, dict) for k in keys):
            raise SigningKeyError(detail="JWKS has no `keys` list of objects")
        public = [{m: v for m, v in k.items() if m not in PRIVATE_JWK_MEMBERS} for k in keys]
        if any(not isinstance(k.get("kid"), str) or not k["kid"] for k in public):
            raise SigningKeyError(detail="every key in the JWKS must have a kid")
        try:
            key_set = KeySet.import_key_set({"keys": public})
        except (JoseError, ValueError, TypeError) as exc:
            raise SigningKeyError(detail=f"invalid JWKS: {type(exc).__name__}") from exc
        self._keys: dict[str, Key] = {k.kid: k for k in key_set.keys if k.kid}

    def verification_key(self, kid: str) -> Key | None:
        return self._keys.get(kid)


def _state(current: SigningKey, retired: tuple[SigningKey, ...]) -> _State:
    keys = {k.kid: k for k in retired}
    keys[current.kid] = current
    return _State(current, keys)


def _retired(state: _State) -> tuple[SigningKey, ...]:
    return tuple(k for k in state.keys.values() if k is not state.current)


def _rotated(state: _State, fresh: SigningKey, now: float, grace_s: float) -> _State:
    previous = replace(state.current, retired_at=now, verify_until=now + grace_s)
    kept = tuple(k for k in (*_retired(state), previous) if k.verifies_at(now))
    return _state(fresh, kept)


def _dump(current: SigningKey, retired: tuple[SigningKey, ...]) -> str:
    document = {
        "keys": [dict(k.key.as_dict(private=True)) for k in (current, *retired)],
        "current": current.kid,
        "retired": {k.kid: {"retired_at": k.retired_at, "verify_until": k.verify_until} for k in retired},
    }
    return json.dumps(document, indent=2)


def _parse(text: str, source: str) -> tuple[SigningKey, tuple[SigningKey, ...]]:
    """The current and retired keys of a key file's text. Errors name `source`, never a key."""

    def bad(why: str) -> SigningKeyError:
        return SigningKeyError(detail=f"{source}: {why}")

    try:
        document = json.loads(text)
    except ValueError:
        raise bad("not JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list) or not document["keys"]:
        raise bad("not a key set with at least one key")
    current_kid, retired_meta = document.get("current"), document.get("retired", {})
    if not isinstance(current_kid, str) or not isinstance(retired_meta, dict):
        raise bad("`current` must be a kid and `retired` an object")
    keys: dict[str, SigningKey] = {}
    for index, jwk in enumerate(document["keys"]):
        key = _import_private_key(jwk)
        if key is None:
            raise bad(f"keys[{index}] is not a private P-256 key with a kid")
        if key.kid in keys:
            raise bad(f"keys[{index}] repeats a kid")
        keys[key.kid] = key
    if current_kid not in keys or current_kid in retired_meta:
        raise bad("`current` must name a key that is not retired")
    retired: list[SigningKey] = []
    for kid, key in keys.items():
        if kid == current_kid:
            continue
        meta = retired_meta.get(kid)
        retired_at = meta.get("retired_at") if isinstance(meta, dict) else None
        verify_until = meta.get("verify_until") if isinstance(meta, dict) else None
        if not (_is_time(retired_at) and _is_time(verify_until)):
            raise bad("every key but the current one needs `retired_at` and `verify_until` times")
        retired.append(replace(key, retired_at=float(retired_at), verify_until=float(verify_until)))
    return keys[current_kid], tuple(retired)


def _is_time(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _import_private_key(jwk: object) -> SigningKey | None:
    if not isinstance(jwk, dict) or jwk.get("kty") != "EC" or jwk.get("crv") != CURVE:
        return None
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not kid or not isinstance(jwk.get("d"), str):
        return None
    try:
        key = ECKey.import_key(jwk)
    except (JoseError, ValueError, TypeError):
        return None
    return SigningKey(kid=kid, key=key) if key.is_private else None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SigningKeyError(detail=f"cannot read the signing key file {path}: {exc.strerror}") from exc


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on `<path>.lock`, held while the key file is re-read and replaced."""
    try:
        fd = os.open(path.with_name(f"{path.name}.lock"), os.O_WRONLY | os.O_CREAT, 0o600)
    except OSError as exc:
        raise SigningKeyError(detail=f"cannot lock the signing key file {path}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _write_atomically(path: Path, text: str) -> None:
    try:
        replace_atomically(path, text)
    except OSError as exc:
        raise SigningKeyError(detail=f"cannot write the signing key file {path}: {exc.strerror}") from exc


def _warn_if_shared(path: Path) -> None:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("identity: signing key file %s is accessible to other users (mode %o); chmod 600 it", path,
                    mode & 0o777)  # fmt: skip
