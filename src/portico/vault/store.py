"""`Vault`: upstream credentials encrypted at rest in the shared store, read back at connect time.

Each `put` seals the value (see `portico.vault.crypto`) with the current key and upserts the row; each `get`
opens it with whichever configured key its row names. Nothing here logs, raises or shows a value: errors name
the scope and name, `repr` names the store and the key id, and the engine hides statement parameters.

Rotation re-seals every row not already under the new key, in one transaction: either every row moves or none
does. On PostgreSQL the rows are locked for the duration (`FOR UPDATE`). SQLite takes its write lock only at the
first update, so each update is also guarded by the row's old nonce: a row rewritten meanwhile by a `put` keeps
that newer value (sealed with the writer's current key; a second `rotate` moves it) rather than being
overwritten with the older one.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from portico.store.db import Store
from portico.vault.crypto import Keyring, Sealed, VaultKey, seal, unseal
from portico.vault.keys import load_keyring
from portico.vault.model import SecretEntry, SecretNotFoundError, VaultError, check_name, check_scope
from portico.vault.settings import VaultSettings
from portico.vault.tables import vault_secrets as t


class Vault:
    """Encrypted upstream credentials, keyed by `(scope, name)`, in Portico's store. Safe to share between tasks.

    Keys are read (from `settings` and `env`, default `os.environ`) when first needed: `put` creates a missing
    key file; `get` and `rotate` report a missing key instead; `list` and `delete` need no key.
    """

    def __init__(self, store: Store, settings: VaultSettings, *, env: Mapping[str, str] | None = None) -> None:
        self.store = store
        self.settings = settings
        self._env = os.environ if env is None else env
        self._keys: Keyring | None = None

    def keyring(self, *, create: bool = True) -> Keyring:
        """The current and previous keys, read once (see `portico.vault.keys.load_keyring`).

        Raises:
            VaultKeyError: a key is malformed, the key file cannot be read or created, or (without `create`)
                there is no key.
        """
        if self._keys is None:
            self._keys = load_keyring(self.settings, self._env, create=create)
        return self._keys

    @property
    def key_id(self) -> str:
        """The id of the key new secrets are sealed with (reading, or creating, the key).

        Raises:
            VaultKeyError: as `keyring()`.
        """
        return self.keyring().current.id

    def __repr__(self) -> str:
        shown = self._keys.current.id if self._keys is not None else "not loaded"
        return f"Vault({self.store!r}, key_id={shown!r})"

    async def put(self, scope: str, name: str, value: str) -> None:
        """Store `value` at `(scope, name)`, replacing any earlier value.

        Raises:
            SecretNameError: `scope` or `name` has the wrong shape.
            VaultKeyError: the current key is malformed, or the key file cannot be read or created.
            VaultError: the value is not valid Unicode text, or the database failed.
        """
        check_scope(scope)
        check_name(name)
        sealed = seal(self.keyring().current, scope, name, value)
        now = datetime.now(UTC)
        row = {
            "scope": scope,
            "name": name,
            "key_id": sealed.key_id,
            "nonce": sealed.nonce,
            "ciphertext": sealed.ciphertext,
            "created_at": now,
            "updated_at": now,
        }
        insert = (postgresql.insert if self.store.dialect == "postgresql" else sqlite.insert)(t).values(row)
        changed = {c: insert.excluded[c] for c in ("key_id", "nonce", "ciphertext", "updated_at")}
        statement = insert.on_conflict_do_update(index_elements=[t.c.scope, t.c.name], set_=changed)
        async with self._connect(write=True) as conn:
            await conn.execute(statement)

    async def get(self, scope: str, name: str) -> str:
        """The value stored at `(scope, name)`.

        Raises:
            SecretNameError: `scope` or `name` has the wrong shape.
            SecretNotFoundError: nothing is stored there.
            VaultKeyError: the row was sealed with a key that is neither current nor previous.
            SecretIntegrityError: the row failed authentication (altered, or moved from another address).
            VaultError: the database failed.
        """
        check_scope(scope)
        check_name(name)
        query = select(t.c.key_id, t.c.nonce, t.c.ciphertext).where(t.c.scope == scope, t.c.name == name)
        async with self._connect() as conn:
            row = (await conn.execute(query)).one_or_none()
        if row is None:
            raise SecretNotFoundError(scope, name)
        return unseal(
            self.keyring(create=False), scope, name, Sealed(row.key_id, bytes(row.nonce), bytes(row.ciphertext))
        )

    async def delete(self, scope: str, name: str) -> None:
        """Remove the secret at `(scope, name)`.

        Raises:
            SecretNameError: `scope` or `name` has the wrong shape.
            SecretNotFoundError: nothing is stored there.
            VaultError: the database failed.
        """
        check_scope(scope)
        check_name(name)
        async with self._connect(write=True) as conn:
            result = await conn.execute(delete(t).where(t.c.scope == scope, t.c.name == name))
        if result.rowcount == 0:
            raise SecretNotFoundError(scope, name)

    async def list(self, scope_prefix: str = "") -> tuple[SecretEntry, ...]:
        """Where secrets are stored (scope, name, key id, last write), for scopes starting with `scope_prefix`
        (case-sensitive, taken literally), ordered by scope and name. Never values.

        Raises:
            VaultError: the database failed.
        """
        query = select(t.c.scope, t.c.name, t.c.key_id, t.c.updated_at).order_by(t.c.scope, t.c.name)
        if scope_prefix:
            # Not LIKE: SQLite's LIKE ignores case, and `_` / `%` in a prefix would be wildcards.
            query = query.where(func.substr(t.c.scope, 1, len(scope_prefix)) == scope_prefix)
        async with self._connect() as conn:
            rows = (await conn.execute(query)).all()
        return tuple(SecretEntry(r.scope, r.name, r.key_id, _utc(r.updated_at)) for r in rows)

    async def rotate(self, new_key: VaultKey) -> int:
        """Re-seal every secret not already under `new_key` with it, in one transaction, and make it this
        vault's current key (the old current key stays accepted as a previous one). Returns how many rows
        were re-sealed.

        Afterwards configure `new_key` as the current key everywhere, keeping the old one among the previous
        keys until every replica has restarted (they may still seal with it until then).

        Raises:
            VaultKeyError: no current key, or a row was sealed with a key that is neither current nor previous
                (nothing changes).
            SecretIntegrityError: a row fails authentication (nothing changes).
            VaultError: the database failed (nothing changes).
        """
        keys = self.keyring(create=False).with_current(new_key)
        query = select(t.c.scope, t.c.name, t.c.key_id, t.c.nonce, t.c.ciphertext).where(t.c.key_id != new_key.id)
        count = 0
        async with self._connect(write=True) as conn:
            rows = (await conn.execute(query.with_for_update())).all()
            for row in rows:
                old = Sealed(row.key_id, bytes(row.nonce), bytes(row.ciphertext))
                fresh = seal(new_key, row.scope, row.name, unseal(keys, row.scope, row.name, old))
                result = await conn.execute(
                    update(t)
                    .where(t.c.scope == row.scope, t.c.name == row.name, t.c.nonce == old.nonce)
                    .values(key_id=fresh.key_id, nonce=fresh.nonce, ciphertext=fresh.ciphertext)
                )
                count += result.rowcount
        self._keys = keys
        return count

    # ------------------------------------------------------------------------------------------ private

    @asynccontextmanager
    async def _connect(self, *, write: bool = False) -> AsyncIterator[AsyncConnection]:
        """A connection (a transaction when `write`): the one place database errors become `VaultError`."""
        try:
            async with self.store.engine.begin() if write else self.store.engine.connect() as conn:
                yield conn
        except (SQLAlchemyError, OSError) as exc:  # asyncpg raises plain OSError when it cannot connect
            raise VaultError("Credential vault unavailable", detail=_describe(exc)) from exc


def _describe(exc: SQLAlchemyError | OSError) -> str:
    """The driver's own message (the engine hides parameters; ciphertext is never plaintext anyway)."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return f"{type(exc.orig).__name__}: {exc.orig}"
    return f"{type(exc).__name__}: {exc}"


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)  # SQLite returns naive datetimes
