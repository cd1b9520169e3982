"""`DeviceRegistry`: the client certificates enrolled as devices, in the shared store, with a short-lived cache
for the request path.

Sits below the connection-context resolver (`portico.identity.context`, which asks `lookup` on every request
with a certificate) and the `portico device` CLI; above the store (`device_tables`).

A device is enrolled by its certificate (PEM) or that certificate's SHA-256 fingerprint, for one owner (a
subject). Revocation is final for that certificate: the row stays, `revoked`, and the same certificate cannot
be enrolled again (issue the device a new one).

`lookup` remembers each answer (including "not registered") for `ttl_s`. A revocation takes effect at once
in the process that made it (its cache entry is dropped) and within `ttl_s` everywhere else: other replicas,
and a running gateway after `portico device revoke`. A lookup that finds the database unavailable raises
`DeviceError` (the resolver then counts the device as not enrolled) and is not cached.

Errors, under `PorticoError`:

    DeviceError                     the registry cannot do what was asked (also: the database failed)
    ├── DeviceNotFoundError           no device with that id or fingerprint
    ├── DeviceExistsError             that certificate is already enrolled (or was, and is revoked)
    └── DeviceInputError              a certificate, fingerprint, owner or name of the wrong shape (also ValueError)
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from portico.errors import PorticoError
from portico.identity.context.certs import fingerprint_of, normalise_fingerprint, pem_blocks
from portico.identity.device_tables import devices
from portico.store.db import Store

log = logging.getLogger("portico.identity.devices")

DeviceRowState = Literal["enrolled", "revoked"]
Clock = Callable[[], float]  # Unix seconds, like `time.time`
OWNER = re.compile(r"[!-~]{1,255}")  # a subject: printable ASCII, no spaces (as `portico.identity.users.SUBJECT`)
MAX_NAME_CHARS = 200
_ID = re.compile(r"dev_[0-9a-f]{16}")


class DeviceError(PorticoError):
    """The device registry cannot do what was asked."""

    default_public = "Device registry error"


class DeviceNotFoundError(DeviceError):
    default_public = "No such device"


class DeviceExistsError(DeviceError):
    default_public = "That certificate is already enrolled (or was, and is revoked): issue the device a new one"


class DeviceInputError(DeviceError, ValueError):
    default_public = "Invalid certificate, fingerprint, owner or device name"


@dataclass(frozen=True, slots=True)
class Device:
    """One enrolled (or revoked) device certificate."""

    id: str
    fingerprint: str
    owner: str
    name: str | None
    state: DeviceRowState
    enrolled_at: datetime
    revoked_at: datetime | None
    last_seen: datetime | None


class DeviceRegistry:
    """Enrolled devices in Portico's store. Safe to share between tasks of one event loop.

    `ttl_s` bounds how long a `lookup` answer is reused (and so how late a revocation made elsewhere is
    seen); `max_entries` bounds the cache. `last_seen_interval_s` (0: never) is how often `last_seen` is
    written, only on a lookup that reads the database anyway. `clock` (Unix seconds) defaults to `time.time`.
    """

    def __init__(
        self,
        store: Store,
        *,
        ttl_s: float = 5.0,
        max_entries: int = 10_000,
        last_seen_interval_s: float = 300.0,
        clock: Clock | None = None,
    ) -> None:
        self.store = store
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._seen_interval_s = last_seen_interval_s
        self._clock: Clock = clock or time.time
        self._cache: dict[str, tuple[float, Device | None]] = {}

    def __repr__(self) -> str:
        return f"DeviceRegistry({self.store!r})"

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    async def enroll(self, certificate: str, owner: str, name: str | None = None) -> Device:
        """Enrol a device for `owner`: `certificate` is its PEM certificate (the first block counts) or the
        SHA-256 fingerprint of its DER.

        Raises:
            DeviceInputError: the certificate, fingerprint, owner or name has the wrong shape.
            DeviceExistsError: the certificate is already in the registry.
            DeviceError: the database failed.
        """
        fingerprint = _fingerprint_of_input(certificate)
        if OWNER.fullmatch(owner) is None:
            raise DeviceInputError("The owner must be a subject: printable ASCII without spaces, at most 255")
        if name is not None and (len(name) > MAX_NAME_CHARS or not name.isprintable()):
            raise DeviceInputError(f"The device name must be printable, at most {MAX_NAME_CHARS} characters")
        device = Device(
            id=f"dev_{secrets.token_hex(8)}",
            fingerprint=fingerprint,
            owner=owner,
            name=name,
            state="enrolled",
            enrolled_at=self._now(),
            revoked_at=None,
            last_seen=None,
        )
        row = {
            "id": device.id,
            "fingerprint": device.fingerprint,
            "owner": device.owner,
            "name": device.name,
            "state": device.state,
            "enrolled_at": device.enrolled_at,
            "revoked_at": None,
            "last_seen": None,
        }
        async with self._connect(write=True, inserting=True) as conn:
            await conn.execute(devices.insert().values(row))
        self._cache.pop(fingerprint, None)
        return device

    async def revoke(self, id_or_fingerprint: str) -> Device:
        """Revoke a device (by id or fingerprint): from now on it counts as `revoked`. Revoking twice is not an
        error (the first revocation time stays).

        Raises:
            DeviceNotFoundError: no such device.
            DeviceError: the database failed.
        """
        where = _match(id_or_fingerprint)
        async with self._connect(write=True) as conn:
            await conn.execute(
                update(devices)
                .where(where, devices.c.state == "enrolled")
                .values(state="revoked", revoked_at=self._now())
            )
            row = (await conn.execute(select(devices).where(where))).one_or_none()
        if row is None:
            raise DeviceNotFoundError
        device = _device(row)
        self._cache.pop(device.fingerprint, None)
        return device

    async def get(self, id_or_fingerprint: str) -> Device:
        """The device with this id or fingerprint (uncached).

        Raises:
            DeviceNotFoundError, DeviceError (database).
        """
        async with self._connect() as conn:
            row = (await conn.execute(select(devices).where(_match(id_or_fingerprint)))).one_or_none()
        if row is None:
            raise DeviceNotFoundError
        return _device(row)

    async def list_devices(self, owner: str | None = None) -> tuple[Device, ...]:
        """Every device (or `owner`'s), oldest enrolment first.

        Raises:
            DeviceError: the database failed.
        """
        query = select(devices).order_by(devices.c.enrolled_at, devices.c.id)
        if owner is not None:
            query = query.where(devices.c.owner == owner)
        async with self._connect() as conn:
            return tuple(_device(row) for row in (await conn.execute(query)).all())

    async def lookup(self, fingerprint: str) -> Device | None:
        """The device with this certificate fingerprint (64 lowercase hex digits), or None if not registered.
        Answers are reused for `ttl_s`; see the module docstring for what that means for revocation.

        Raises:
            DeviceError: the database failed (nothing is cached).
        """
        now = self._clock()
        cached = self._cache.get(fingerprint)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self._connect() as conn:
            row = (await conn.execute(select(devices).where(devices.c.fingerprint == fingerprint))).one_or_none()
        device = _device(row) if row is not None else None
        if device is not None and device.state == "enrolled":
            await self._touch(device, now)
        if len(self._cache) >= self._max_entries and fingerprint not in self._cache:
            self._cache.pop(next(iter(self._cache)))
        self._cache[fingerprint] = (now + self._ttl_s, device)
        return device

    async def _touch(self, device: Device, now: float) -> None:
        """Record that the device was seen, at most every `last_seen_interval_s`; a failure only logs (the
        lookup itself succeeded, and `last_seen` is informational)."""
        if self._seen_interval_s <= 0:
            return
        if device.last_seen is not None and now - device.last_seen.timestamp() < self._seen_interval_s:
            return
        try:
            async with self.store.engine.begin() as conn:
                seen = datetime.fromtimestamp(now, UTC)
                await conn.execute(update(devices).where(devices.c.id == device.id).values(last_seen=seen))
        except (SQLAlchemyError, OSError) as exc:
            log.warning("could not record last_seen of device %s: %s", device.id, _describe(exc))

    @asynccontextmanager
    async def _connect(self, *, write: bool = False, inserting: bool = False) -> AsyncIterator[AsyncConnection]:
        """A connection (a transaction when `write`): the one place database errors become `DeviceError`."""
        try:
            async with self.store.engine.begin() if write else self.store.engine.connect() as conn:
                yield conn
        except IntegrityError as exc:
            if inserting:
                raise DeviceExistsError(detail=_describe(exc)) from exc
            raise DeviceError("Device registry unavailable", detail=_describe(exc)) from exc
        except (SQLAlchemyError, OSError) as exc:  # asyncpg raises plain OSError when it cannot connect
            raise DeviceError("Device registry unavailable", detail=_describe(exc)) from exc


def _fingerprint_of_input(certificate: str) -> str:
    if "-----BEGIN" in certificate:
        blocks = pem_blocks(certificate.encode("ascii", "replace"))
        if not blocks:
            raise DeviceInputError("No readable PEM certificate")
        return fingerprint_of(blocks[0])
    try:
        return normalise_fingerprint(certificate)
    except ValueError as exc:
        raise DeviceInputError("Give a PEM certificate or its SHA-256 fingerprint (64 hex digits)") from exc


def _match(id_or_fingerprint: str) -> Any:
    text = id_or_fingerprint.strip()
    if _ID.fullmatch(text) is not None:
        return devices.c.id == text
    try:
        return devices.c.fingerprint == normalise_fingerprint(text)
    except ValueError:
        raise DeviceNotFoundError from None


def _device(row: Any) -> Device:
    return Device(
        id=row.id,
        fingerprint=row.fingerprint,
        owner=row.owner,
        name=row.name,
        state="enrolled" if row.state == "enrolled" else "revoked",  # anything unexpected fails closed
        enrolled_at=_utc(row.enrolled_at),
        revoked_at=_utc(row.revoked_at) if row.revoked_at is not None else None,
        last_seen=_utc(row.last_seen) if row.last_seen is not None else None,
    )


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)  # SQLite returns naive datetimes


def _describe(exc: SQLAlchemyError | OSError) -> str:
    """The driver's own message (the engine hides parameters)."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return f"{type(exc.orig).__name__}: {exc.orig}"
    return f"{type(exc).__name__}: {exc}"
