"""Small secret or identity files (keys, node ids): mode 0600, written whole or not at all."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path


def _private_temp(path: Path, text: str) -> Path:
    """A fsynced 0600 temporary file beside `path` holding `text` (the caller links or renames it into place)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, f"{text}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return tmp


def load_or_create(path: Path, make: Callable[[], str]) -> str:
    """Read a small secret/identity file, creating it (mode 0600) on first use.

    Created whole or not at all: written to a temporary file, then linked into place, which also fails if
    another process got there first (then theirs is used). A crash never leaves an empty key behind.
    """
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    value = make()
    tmp = _private_temp(path, value)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip()
    finally:
        tmp.unlink(missing_ok=True)
    return value


def replace_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` (0600): temporary file fsynced, renamed over it, directory fsynced.

    Raises:
        OSError: the file or its directory cannot be written.
    """
    tmp = _private_temp(path, text)
    try:
        os.replace(tmp, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    finally:
        tmp.unlink(missing_ok=True)
