"""Legacy-era client sessions.

A session's *record* (who owns it, negotiated version, client capabilities) lives in a `SessionStore`, which
is in-process by default and is the seam for a shared (Redis) store, so any replica can serve any request of a
session. What cannot be shared — open GET streams, server-to-client requests awaiting an answer, calls in flight
that a `notifications/cancelled` may stop — lives in `SessionRuntime`, per process; a multi-replica deployment
relays those by session id.
"""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from portico.transport.resume import TTL_S, StreamLog
from portico.types import JSON, RequestId


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: str
    subject: str
    scope: str | None
    protocol_version: str
    client_capabilities: JSON
    client_info: JSON | None
    created: float
    log_level: str | None = None


class SessionStore(Protocol):
    async def create(self, record: SessionRecord) -> bool:
        """Store a new session; False when the store is full."""

    async def get(self, session_id: str) -> SessionRecord | None:
        """The live session (refreshing its idle timer), or None if unknown or expired."""

    async def delete(self, session_id: str) -> bool:
        """End a session; False if it did not exist."""

    async def set_log_level(self, session_id: str, level: str) -> None:
        """Remember the session's `logging/setLevel` (a no-op for an unknown session)."""

    async def alive(self, session_id: str) -> bool:
        """Whether the session exists and has not expired (without refreshing its idle timer)."""


def new_session_id() -> str:
    """128 bits from the OS CSPRNG, visible ASCII."""
    return secrets.token_hex(16)


class MemorySessionStore:
    def __init__(self, idle_timeout_s: float, max_sessions: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._idle = idle_timeout_s
        self._max = max_sessions
        self._clock = clock
        self._records: dict[str, tuple[SessionRecord, float]] = {}

    async def create(self, record: SessionRecord) -> bool:
        self._expire()
        if len(self._records) >= self._max:
            return False
        self._records[record.id] = (record, self._clock())
        return True

    async def get(self, session_id: str) -> SessionRecord | None:
        found = self._records.get(session_id)
        if found is None:
            return None
        record, seen = found
        now = self._clock()
        if now - seen > self._idle:
            del self._records[session_id]
            return None
        self._records[session_id] = (record, now)
        return record

    async def delete(self, session_id: str) -> bool:
        return self._records.pop(session_id, None) is not None

    async def set_log_level(self, session_id: str, level: str) -> None:
        found = self._records.get(session_id)
        if found is not None:
            self._records[session_id] = (dataclasses.replace(found[0], log_level=level), found[1])

    async def alive(self, session_id: str) -> bool:
        found = self._records.get(session_id)
        return found is not None and self._clock() - found[1] <= self._idle

    def _expire(self) -> None:
        now = self._clock()
        for session_id in [s for s, (_, seen) in self._records.items() if now - seen > self._idle]:
            del self._records[session_id]

    def __len__(self) -> int:
        return len(self._records)


@dataclass(slots=True)
class _Runtime:
    in_flight: dict[RequestId, anyio.CancelScope] = field(default_factory=dict)
    waiting: dict[str, tuple[anyio.Event, list[JSON]]] = field(default_factory=dict)
    streams: list[MemoryObjectSendStream[bytes]] = field(default_factory=list)
    logs: dict[str, StreamLog] = field(default_factory=dict)


MAX_LOGS_PER_SESSION = 256


class SessionRuntime:
    """Per-process state of sessions (see module docstring)."""

    def __init__(self) -> None:
        self._sessions: dict[str, _Runtime] = {}
        self._tg: anyio.abc.TaskGroup | None = None

    def bind(self, tg: anyio.abc.TaskGroup | None) -> None:
        """The task group detached calls run in (the app's; cancelled on shutdown)."""
        self._tg = tg

    def spawn(self, func: Callable[[], Coroutine[Any, Any, None]]) -> None:
        if self._tg is None:
            raise RuntimeError("SessionRuntime.spawn before bind()")
        self._tg.start_soon(func)

    def new_log(self, session_id: str) -> StreamLog:
        logs = self._get(session_id).logs
        if len(logs) >= 32:  # prune finished logs nobody came back for; cheap below that size
            now = time.monotonic()
            for stream_id in [k for k, v in logs.items() if v.done and (v.finished_at or now) + TTL_S <= now]:
                del logs[stream_id]
            for stream_id in [k for k, v in logs.items() if v.done][: max(0, len(logs) - MAX_LOGS_PER_SESSION + 1)]:
                del logs[stream_id]
        log = StreamLog()
        logs[log.id] = log
        return log

    def find_log(self, session_id: str, stream_id: str) -> StreamLog | None:
        runtime = self._sessions.get(session_id)
        return runtime.logs.get(stream_id) if runtime is not None else None

    def drop_log(self, session_id: str, stream_id: str) -> None:
        runtime = self._sessions.get(session_id)
        if runtime is not None:
            runtime.logs.pop(stream_id, None)

    def _get(self, session_id: str) -> _Runtime:
        runtime = self._sessions.get(session_id)
        if runtime is None:
            runtime = self._sessions[session_id] = _Runtime()
        return runtime

    def track(self, session_id: str, request_id: RequestId, scope: anyio.CancelScope) -> None:
        self._get(session_id).in_flight[request_id] = scope

    def untrack(self, session_id: str, request_id: RequestId) -> None:
        runtime = self._sessions.get(session_id)
        if runtime is not None:
            runtime.in_flight.pop(request_id, None)

    def cancel(self, session_id: str, request_id: RequestId) -> bool:
        runtime = self._sessions.get(session_id)
        scope = runtime.in_flight.get(request_id) if runtime else None
        if scope is None:
            return False
        scope.cancel()
        return True

    def expect_answer(self, session_id: str, request_id: str) -> tuple[anyio.Event, list[JSON]]:
        waiter: tuple[anyio.Event, list[JSON]] = (anyio.Event(), [])
        self._get(session_id).waiting[request_id] = waiter
        return waiter

    def forget_answer(self, session_id: str, request_id: str) -> None:
        runtime = self._sessions.get(session_id)
        if runtime is not None:
            runtime.waiting.pop(request_id, None)

    def deliver_answer(self, session_id: str, message: JSON) -> bool:
        runtime = self._sessions.get(session_id)
        request_id = message.get("id")
        waiter = runtime.waiting.pop(request_id, None) if runtime and isinstance(request_id, str) else None
        if waiter is None:
            return False
        waiter[1].append(message)
        waiter[0].set()
        return True

    def open_stream(self, session_id: str) -> MemoryObjectReceiveStream[bytes] | None:
        """A standing (GET) stream for the session; None if one is already open (the client gets 409)."""
        runtime = self._get(session_id)
        runtime.streams = [s for s in runtime.streams if not s._closed]
        if runtime.streams:
            return None
        send, receive = anyio.create_memory_object_stream[bytes](256)
        runtime.streams.append(send)
        return receive

    def broadcast(self, frame: bytes, accept: Callable[[str], bool]) -> None:
        """Queue a frame on the standing stream of every session `accept`s; a full queue drops it."""
        for session_id, runtime in self._sessions.items():
            if runtime.streams and accept(session_id):
                for stream in runtime.streams:
                    with contextlib.suppress(anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
                        stream.send_nowait(frame)

    def session_ids(self) -> list[str]:
        return list(self._sessions)

    def end(self, session_id: str) -> None:
        runtime = self._sessions.pop(session_id, None)
        if runtime is None:
            return
        for scope in runtime.in_flight.values():
            scope.cancel()
        for stream in runtime.streams:
            stream.close()
        for event, _ in runtime.waiting.values():
            event.set()
