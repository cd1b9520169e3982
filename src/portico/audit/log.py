"""`AuditLog`: every exchange recorded, cheaply on the hot path, never lost once acknowledged.

Durability contract. A call is *acknowledged* when its reply is handed to the transport. The audit stage calls
`append` before that, and `append` returns only after the record is in the spool (one `os.write` of one line
to an append-only file in `spool_dir`; no fsync unless `fsync: true`). From then on the record survives the
Portico process being killed, even by SIGKILL: the OS page cache holds it. With `fsync: true` it also survives
power loss, at the cost of one disk flush per call. If the spool cannot be written, `append` raises and the
call is not acknowledged (fail closed).

A background flusher reads the spool in order, assigns each record its chain position (`prev_hash`, `hash`;
`seq` was allocated by `append`, so the spool is self-describing), and inserts batches with one Core
executemany per transaction, together with the node's chain head. Consumed segments are then deleted. On
`start`, records left in the spool by an earlier run are committed before anything else; those whose `seq` is
already at or below the node's committed head are skipped, which makes recovery idempotent.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

import anyio
import anyio.abc
import orjson
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from portico.audit import chain
from portico.audit.model import digest_args
from portico.audit.settings import NODE_ID, AuditSettings
from portico.audit.spool import Spool, SpoolLockedError
from portico.errors import PorticoError
from portico.keyfile import load_or_create
from portico.store.db import Store

log = logging.getLogger(__name__)

_MAX_BACKOFF_S = 5.0
_LAST_FLUSH_S = 5.0


class AuditError(PorticoError):
    """The audit log cannot record: spool unwritable or locked, chain owned by another writer, key unreadable.

    A call whose record cannot be spooled must not be acknowledged; the transport answers with an internal error.
    """

    default_public = "Internal error: the call could not be audited"


class AuditLog:
    """The append-only, hash-chained audit log of one Portico process (one chain, one `node`).

    Use as `async with AuditLog(store, settings) as log:` or call `start()` and `stop()` from the same task
    (e.g. one ASGI lifespan). `append` must be called from the event loop's thread.
    """

    def __init__(
        self,
        store: Store,
        settings: AuditSettings,
        *,
        env: Mapping[str, str] | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.store = store
        self.settings = settings
        self._env = os.environ if env is None else env
        self._clock_ns = clock_ns  # wall clock, injectable so tests can pin timestamps
        self.node = ""
        self._key = b""
        self._spool = Spool(settings.spool_dir, fsync=settings.fsync, segment_max_bytes=settings.segment_max_bytes)
        self._writer = chain.ChainWriter(store)
        self._next_seq = 0
        self._unflushed = 0
        self._wake = anyio.Event()
        self._committed = anyio.Event()
        self._stopping = False
        self._tg: anyio.abc.TaskGroup | None = None

    async def start(self) -> None:
        """Take the spool, recover what an earlier run left in it, and start the flusher.

        Raises:
            AuditError: the spool is locked by another process or unusable, the node id or key file is
                unreadable, or the recovered records cannot be committed.
        """
        try:
            self._spool.open()  # first: the lock makes this process the only one using the spool's node id
        except SpoolLockedError as exc:
            raise AuditError("Another Portico process is using the audit spool", detail=str(exc)) from exc
        except OSError as exc:
            raise AuditError(detail=f"audit spool {self.settings.spool_dir}: {exc}") from exc
        try:
            self.node = self.settings.node_id or load_or_create(self.settings.node_id_path, _new_node_id)
            if not NODE_ID.fullmatch(self.node):
                raise AuditError(detail=f"invalid node id in {self.settings.node_id_path}")
            self._key = self._load_key()
            while self._spool.leftover and await self._flush_batch():
                pass
            head = await self._writer.head(self.node)
        except chain.ChainConflictError as exc:
            self._spool.close(remove=False)
            raise AuditError("The audit chain of this node is inconsistent", detail=exc.detail) from exc
        except (SQLAlchemyError, OSError, ValueError) as exc:
            self._spool.close(remove=False)
            raise AuditError(detail=f"starting the audit log: {_describe(exc)}") from exc
        except AuditError:
            self._spool.close(remove=False)
            raise
        self._next_seq = head + 1
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._run, name="audit-flusher")

    async def stop(self) -> None:
        """Flush what is spooled (one attempt), stop the flusher and release the spool.

        Records that could not be committed stay in the spool for the next `start`.
        """
        if self._tg is None:
            return
        self._stopping = True
        self._wake.set()
        tg, self._tg = self._tg, None
        try:
            await tg.__aexit__(None, None, None)
        finally:  # even when cancelled: release the spool lock; uncommitted segments stay for the next start
            self._spool.close(remove=not self._spool.leftover)

    async def __aenter__(self) -> AuditLog:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def append(
        self,
        *,
        id: str,
        subject: str,
        method: str,
        outcome: str,
        parent_id: str | None = None,
        client_id: str | None = None,
        authenticated_by: str = "none",
        ip: str | None = None,
        session_id: str | None = None,
        scope: str | None = None,
        server_id: str | None = None,
        target: str | None = None,
        decision: str | None = None,
        rule: str | None = None,
        reason: str | None = None,
        error_code: int | None = None,
        latency_us: int = 0,
        request_bytes: int = 0,
        response_bytes: int = 0,
        args_digest: str | None = None,
        arg_keys: Sequence[str] = (),
        protocol_version: str | None = None,
        era: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Record one exchange. Returns once the record is in the spool (see the module docstring).

        Raises:
            AuditError: the log is not started, or the spool cannot be written (the call must not be
                acknowledged).
        """
        if self._tg is None:
            raise AuditError(detail="AuditLog.append before start() or after stop()")
        seq = self._next_seq
        fields = [
            chain.SPOOL_VERSION, self.node, seq, self._clock_ns() // 1000, id, parent_id, subject, client_id,
            authenticated_by, ip, session_id, scope, method, server_id, target, decision, rule, reason, outcome,
            error_code, latency_us, request_bytes, response_bytes, args_digest, arg_keys, protocol_version, era,
            extra,
        ]  # fmt: skip
        try:
            line = orjson.dumps(fields, option=orjson.OPT_APPEND_NEWLINE)
        except TypeError:  # odd values (huge ints, lone surrogates, foreign objects): slow path, still recorded
            line = orjson.dumps(chain.clean_spool_fields(fields), option=orjson.OPT_APPEND_NEWLINE)
        try:
            self._spool.write(line)
        except OSError as exc:
            raise AuditError(detail=f"audit spool write failed: {exc}") from exc
        self._next_seq = seq + 1
        self._unflushed += 1
        if self._unflushed >= self.settings.batch_max:
            self._wake.set()

    def event(self, method: str, outcome: str, *, subject: str = "anonymous", **fields: Any) -> None:
        """Record something that is not an MCP exchange — a sign-in, a token grant, a connect, an operator's
        command — named `method` (dotted, e.g. `oauth.token`, so it never looks like a JSON-RPC method). The
        decision follows from `outcome`: allow for ok, deny for denied, none for errors.

        Raises:
            AuditError: as `append`.
        """
        decision = "allow" if outcome == "ok" else "deny" if outcome == "denied" else None
        self.append(
            id=fields.pop("id", None) or secrets.token_hex(8),
            subject=subject,
            method=method,
            outcome=outcome,
            decision=decision,
            **fields,
        )

    def digest_args(self, arguments: Any) -> str:
        """The keyed digest of call arguments stored as `args_digest` (see `portico.audit.model`)."""
        return digest_args(self._key, arguments)

    @property
    def pending(self) -> int:
        """Records appended but not yet committed to the database."""
        return max(0, self._next_seq - 1 - self._writer.committed(self.node))

    async def flush(self) -> None:
        """Wait until every record appended so far is committed. Unbounded while the database is down:
        callers bound it (`anyio.fail_after`)."""
        if self._tg is None:
            return
        target = self._next_seq - 1
        while self._writer.committed(self.node) < target:
            committed = self._committed
            self._wake.set()
            await committed.wait()

    async def _run(self) -> None:
        delay = self.settings.flush_interval_ms / 1000
        try:
            while True:
                with anyio.move_on_after(delay):
                    await self._wake.wait()
                self._wake = anyio.Event()  # before draining: an append during the drain wakes the next round
                stopping = self._stopping
                if self._unflushed == 0 and not stopping and not self._spool.leftover:
                    continue  # an idle tick: no database round-trip
                ok = await self._drain()
                if stopping:
                    return
                delay = self.settings.flush_interval_ms / 1000 if ok else min(max(delay * 2, 0.1), _MAX_BACKOFF_S)
        except anyio.get_cancelled_exc_class():
            # Shut down by cancellation (e.g. Ctrl-C): one bounded last flush, so the next start has less to do.
            with anyio.CancelScope(shield=True), anyio.move_on_after(_LAST_FLUSH_S):
                await self._drain()
            raise

    async def _drain(self) -> bool:
        try:
            while await self._flush_batch():
                pass
        except (SQLAlchemyError, OSError, chain.ChainConflictError) as exc:
            # The records stay in the spool; the next round (or the next start) retries them.
            log.error("audit: committing to the database failed, will retry: %s", _describe(exc))
            return False
        self._spool.maybe_rotate()
        return True

    async def _flush_batch(self) -> bool:
        """Commit the next batch from the spool. Returns whether there was one."""
        lines, end = self._spool.read(self.settings.batch_max)
        if not lines:
            return False
        await self._writer.commit(chain.parse_spool_lines(lines))
        self._spool.consume(end)
        self._unflushed = max(0, self._unflushed - len(lines))
        committed, self._committed = self._committed, anyio.Event()
        committed.set()
        return True

    def _load_key(self) -> bytes:
        from_env = self._env.get(self.settings.hmac_key_env)
        if from_env:
            return from_env.encode("utf-8")
        key = bytes.fromhex(load_or_create(self.settings.key_path, lambda: secrets.token_hex(32)))
        if len(key) < 16:  # an empty or truncated key file would make digests guessable
            raise AuditError(detail=f"{self.settings.key_path} holds no usable key (expected 64 hex characters)")
        return key


def _describe(exc: BaseException) -> str:
    """An error for the process log: the driver's own message, never SQL parameters (they hold client data)."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return f"{type(exc.orig).__name__}: {exc.orig}"
    if isinstance(exc, chain.ChainConflictError):
        return exc.detail or exc.public
    return f"{type(exc).__name__}: {exc}"


def _new_node_id() -> str:
    return secrets.token_hex(8)
