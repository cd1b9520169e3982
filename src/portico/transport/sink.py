"""The response side of one HTTP request: JSON, or SSE once the exchange sends something on the way.

The reply goes out as `application/json` unless, before it is ready, the exchange sends a notification or a
server request (and the client accepts `text/event-stream`): then the response becomes an SSE stream carrying
those messages and, last, the reply. Writes go straight to the ASGI `send` from whichever task produces them,
serialised by a lock; no queue or extra task sits on the hot path.
"""

from __future__ import annotations

import anyio
import orjson
from starlette.types import Send

from portico.errors import NoBackChannelError
from portico.types import JSON
from portico.upstream.envelope import log_level_allows

SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
]


def sse_frame(message: JSON | bytes) -> bytes:
    data = message if isinstance(message, bytes) else orjson.dumps(message)
    return b"event: message\ndata: " + data + b"\n\n"


class HttpSink:
    """A `MessageSink` writing to one HTTP response (modern-era calls and standing streams)."""

    def __init__(
        self,
        send: Send,
        *,
        sse: bool,
        headers: list[tuple[bytes, bytes]],
        log_level: str | None = None,
        logs_opt_in: bool = False,
    ) -> None:
        # On the modern wire a client that did not ask for logs (no `_meta` logLevel) MUST NOT get any.
        self._log_level = log_level
        self._logs_opt_in = logs_opt_in
        self._send = send
        self.sse = sse
        self._headers = headers
        self._lock = anyio.Lock()
        self.started = False
        self.closed = False

    async def notify(self, message: JSON) -> None:
        if message.get("method") == "notifications/message" and (
            (self._logs_opt_in and self._log_level is None) or not log_level_allows(self._log_level, message)
        ):
            return
        if self.sse:
            await self.write(sse_frame(message))

    async def request(self, method: str, params: JSON | None) -> JSON:
        """A modern-era response cannot carry server requests (MRTR results replace them)."""
        raise NoBackChannelError(method)

    async def write(self, frame: bytes) -> None:
        """Write one SSE frame, starting the stream first if needed."""
        async with self._lock:
            if self.closed:
                return
            if not self.started:
                self.started = True
                await self._send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS + self._headers})
            await self._send({"type": "http.response.body", "body": frame, "more_body": True})

    async def finish(self, status: int, body: bytes) -> None:
        """Send the reply: as the last SSE frame if streaming began, else as a JSON response."""
        async with self._lock:
            if self.closed:
                return
            self.closed = True
            if self.started:
                await self._send({"type": "http.response.body", "body": sse_frame(body), "more_body": False})
                return
            await self._send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [(b"content-type", b"application/json"), *self._headers],
                }
            )
            await self._send({"type": "http.response.body", "body": body, "more_body": False})

    async def poll(self, retry_ms: int) -> None:
        """Modern-era streams are not resumable: a call keeps its one response open."""

    async def end(self) -> None:
        """Close a stream that carries no final reply (a GET stream), so the response is complete."""
        async with self._lock:
            if self.started and not self.closed:
                self.closed = True
                await self._send({"type": "http.response.body", "body": b"", "more_body": False})

    async def keepalive(self) -> None:
        """A comment frame, so proxies keep a silent long call open (commits to SSE)."""
        if self.sse:
            await self.write(b": ping\n\n")
