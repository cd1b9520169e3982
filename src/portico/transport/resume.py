"""Resumable SSE streams for legacy-era (2025-11-25) POSTs: event ids, priming, polling, Last-Event-ID.

In the handshake era a dropped connection is not a cancellation, and a server may end a POST's stream early
and let the client poll for the rest (SEP-1699). So a legacy call runs detached from its HTTP request: its
messages and final reply are appended to a `StreamLog`, and any number of successive HTTP responses (the POST,
then GETs carrying `Last-Event-ID`) replay the log from where the client left off. Event ids are
`<stream>.<n>`; the first event of a stream is a priming event (id, empty data, `retry`).

Logs are per process and bounded: each keeps at most `MAX_FRAMES` frames and a finished one is dropped once
fully delivered or `TTL_S` after it finished.
"""

from __future__ import annotations

import itertools
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio
import orjson
from starlette.types import Send

from portico.errors import NoBackChannelError
from portico.transport.sink import SSE_HEADERS
from portico.types import JSON
from portico.upstream.envelope import log_level_allows

if TYPE_CHECKING:
    from portico.transport.session import SessionRuntime

MAX_FRAMES = 10_000
TTL_S = 300.0
DEFAULT_RETRY_MS = 1000
_stream_ids = itertools.count(1)
_server_request_ids = itertools.count(1)  # ids of the requests Portico sends to clients (per process)
_stream_prefix = secrets.token_hex(3)


@dataclass(slots=True, eq=False)
class StreamLog:
    """The frames of one legacy call, in order; `done` once the final reply is in."""

    id: str = field(default_factory=lambda: f"{_stream_prefix}{next(_stream_ids):x}")
    frames: list[bytes] = field(default_factory=list)
    done: bool = False
    finished_at: float | None = None
    poll_ms: int | None = None  # set when the call asks clients to reconnect later (mirrors an upstream poll)
    _changed: anyio.Event = field(default_factory=anyio.Event)

    def append(self, message: JSON | bytes, *, final: bool = False) -> None:
        if self.done:
            return
        data = message if isinstance(message, bytes) else orjson.dumps(message)
        if len(self.frames) < MAX_FRAMES or final:
            self.frames.append(data)
        if final:
            self.done = True
            self.finished_at = time.monotonic()
        self._wake()

    def request_poll(self, retry_ms: int) -> None:
        self.poll_ms = retry_ms
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def changed(self) -> None:
        await self._changed.wait()

    def event_id(self, index: int) -> bytes:
        return f"{self.id}.{index}".encode()


def parse_event_id(value: str) -> tuple[str, int] | None:
    stream, _, index = value.rpartition(".")
    if not stream or not index.isdigit():
        return None
    return stream, int(index)


async def pump(log: StreamLog, send: Send, start: int, *, prime: bool) -> bool:
    """Write `log` from frame `start` as one SSE response until it is done (True) or asks for a poll (False).

    Frame `n` of the log has event id `<stream>.<n+1>`; id `<stream>.0` is the priming event.
    """
    await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
    if prime:
        retry = log.poll_ms or DEFAULT_RETRY_MS
        await _body(send, b"id: " + log.event_id(0) + f"\nretry: {retry}\ndata: \n\n".encode())
    position = start
    seen_poll: int | None = None
    while True:
        while position < len(log.frames):
            frame = log.frames[position]
            position += 1
            await _body(send, b"id: " + log.event_id(position) + b"\nevent: message\ndata: " + frame + b"\n\n")
        if log.done and position >= len(log.frames):
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return True
        if log.poll_ms is not None and log.poll_ms != seen_poll:
            # The call is still running; end this response and let the client come back with Last-Event-ID.
            await send({"type": "http.response.body", "body": f"retry: {log.poll_ms}\n\n".encode(), "more_body": False})
            log.poll_ms = None
            return False
        seen_poll = log.poll_ms
        await log.changed()


class LogSink:
    """The `MessageSink` of a detached legacy call: messages go into its `StreamLog`."""

    def __init__(self, log: StreamLog, runtime: SessionRuntime, session_id: str, log_level: str | None) -> None:
        self._log = log
        self._runtime = runtime
        self._session_id = session_id
        self._log_level = log_level

    async def notify(self, message: JSON) -> None:
        if message.get("method") == "notifications/message" and not log_level_allows(self._log_level, message):
            return
        self._log.append(message)

    async def request(self, method: str, params: JSON | None) -> JSON:
        request_id = f"portico-{next(_server_request_ids)}"
        event, answer = self._runtime.expect_answer(self._session_id, request_id)
        message: JSON = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        try:
            self._log.append(message)
            await event.wait()
        finally:
            self._runtime.forget_answer(self._session_id, request_id)
        if not answer:
            raise NoBackChannelError(method)
        return answer[0]

    async def poll(self, retry_ms: int) -> None:
        self._log.request_poll(retry_ms)


async def _body(send: Send, data: bytes) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": True})
