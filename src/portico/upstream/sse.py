"""A small incremental parser for `text/event-stream` (WHATWG SSE), over bytes chunks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SseEvent:
    event: str
    data: str
    id: str | None = None
    retry_ms: int | None = None


class SseTooLargeError(ValueError):
    """One event (or one unterminated line) exceeds the parser's limit."""


class SseParser:
    """Feed bytes, get complete events. Handles CRLF/LF/CR line ends and events split across chunks."""

    def __init__(self, max_event_bytes: int = 64 * 1024 * 1024) -> None:
        self._limit = max_event_bytes
        self._size = 0
        self._buffer = b""
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None
        self._retry: int | None = None

    def feed(self, chunk: bytes) -> list[SseEvent]:
        """Raises: SseTooLargeError: the event being assembled has grown past the limit."""
        self._buffer += chunk
        self._size += len(chunk)
        if self._size > self._limit:
            raise SseTooLargeError(f"an SSE event exceeded {self._limit} bytes")
        events: list[SseEvent] = []
        while True:
            cut = _line_end(self._buffer)
            if cut is None:
                return events
            end, skip = cut
            line = self._buffer[:end].decode("utf-8", errors="replace")
            self._buffer = self._buffer[end + skip :]
            event = self._line(line)
            if event is not None:
                events.append(event)

    def _line(self, line: str) -> SseEvent | None:
        if not line:
            if not self._data and not self._event and self._retry is None:
                return None
            event = SseEvent(self._event or "message", "\n".join(self._data), self._id, self._retry)
            self._event, self._data, self._retry = "", [], None
            self._size = len(self._buffer)
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            self._id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)
        return None


def _line_end(buffer: bytes) -> tuple[int, int] | None:
    lf = buffer.find(b"\n")
    cr = buffer.find(b"\r")
    if cr == -1 or (lf != -1 and lf < cr):
        return None if lf == -1 else (lf, 1)
    if cr + 1 == len(buffer):
        return None  # a CR at the end may be the first half of CRLF
    return cr, 2 if buffer[cr + 1] == 0x0A else 1


async def iter_events(chunks: AsyncIterator[bytes], max_event_bytes: int = 64 * 1024 * 1024) -> AsyncIterator[SseEvent]:
    parser = SseParser(max_event_bytes)
    async for chunk in chunks:
        for event in parser.feed(chunk):
            yield event
