"""Read the vault's keys from the environment or the key file (creating the file on first use).

The only module of the vault that touches the file system. Errors name the variable or file a key came from,
never the key.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping
from pathlib import Path

from portico.keyfile import load_or_create
from portico.vault.crypto import Keyring, VaultKey, new_key_text, parse_key, parse_keys
from portico.vault.model import VaultKeyError
from portico.vault.settings import VaultSettings

log = logging.getLogger("portico.vault")


def load_keyring(settings: VaultSettings, env: Mapping[str, str] | None = None, *, create: bool = True) -> Keyring:
    """The current key and the previous keys.

    The current key is `$key_env` if set (and not empty), else the contents of `key_path`; with `create`, a
    missing key file is made with a fresh random key (mode 0600).

    Raises:
        VaultKeyError: a key is malformed, the key file cannot be read or created, or (without `create`) there
            is no key at all.
    """
    env = os.environ if env is None else env
    current = _current_key(settings, env, create=create)
    previous = parse_keys(env.get(settings.previous_keys_env, ""), f"${settings.previous_keys_env}")
    return Keyring(current, tuple(k for k in previous if k.id != current.id))


def _current_key(settings: VaultSettings, env: Mapping[str, str], *, create: bool) -> VaultKey:
    from_env = env.get(settings.key_env)
    if from_env:
        return parse_key(from_env, f"${settings.key_env}")
    path = settings.key_path
    try:
        text = _load_or_create(path) if create else path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise VaultKeyError(f"No vault key: ${settings.key_env} is not set and {path} does not exist") from None
    except OSError as exc:
        raise VaultKeyError(f"Cannot read or create the vault key file {path}: {exc.strerror}") from exc
    _warn_if_shared(path)
    return parse_key(text, str(path))


def read_key_file(path: Path) -> VaultKey:
    """A key from an existing file (for `portico vault rotate --new-key-file`).

    Raises:
        VaultKeyError: the file is missing, unreadable or does not hold a key.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise VaultKeyError(f"Cannot read the vault key file {path}: {exc.strerror}") from exc
    return parse_key(text, str(path))


def _load_or_create(path: Path) -> str:
    """Read the key file, or create it (mode 0600, whole or not at all) with a fresh key."""
    created: list[str] = []

    def make() -> str:
        created.append(new_key_text())
        return created[0]

    value = load_or_create(path, make)
    if created:
        log.info("vault: created a new key file %s (key id %s)", path, parse_key(value, str(path)).id)
    return value


def _warn_if_shared(path: Path) -> None:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("vault: key file %s is accessible to other users (mode %o); chmod 600 it", path, mode & 0o777)
