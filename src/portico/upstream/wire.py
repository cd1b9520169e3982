"""A lean HTTP/1.1 keep-alive client for the calls Portico makes to Streamable HTTP upstreams.

Measured on the portal's hot path (bench/RESULTS.md), httpx2 spent ~1 ms of CPU per call: head and body in
two writes, and a scan of every pooled connection per request. A gateway makes one kind of request to one
origin, so this client does only that: one write per request, an idle stack of connections, responses read
as they arrive (JSON bodies whole, SSE bodies chunk by chunk). Foreign errors (OS, TLS, short reads) surface
as `ConnectionLost`, which the connector maps to `UpstreamUnavailableError` at its one boundary.

A reused idle connection that the server had already closed fails before any response byte arrives; such a
request is retried once on a fresh connection (nothing was processed). Anything else is not retried.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_HEAD_BYTES = 64 * 1024
READ_CHUNK = 64 * 1024


class ConnectionLost(OSError):
    """The connection failed or closed mid-exchange, or the server spoke broken HTTP."""


@dataclass(eq=False)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def close(self) -> None:
        self.writer.close()


@dataclass(eq=False)
class Response:
    """One response. Read the body with `aread()` or `aiter_bytes()`; always `aclose()` (or use `async with`)."""

    status_code: int
    headers: dict[str, str]
    _pool: Pool
    _conn: _Connection | None
    _length: int | None  # Content-Length, or None: chunked (if `_chunked`) or until EOF
    _chunked: bool
    _done: bool = False

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        conn = self._conn
        if conn is None or self._done:
            return
        try:
            if self._chunked:
                while True:
                    size_line = await conn.reader.readuntil(b"\r\n")
                    size = int(size_line.split(b";", 1)[0].strip(), 16)
                    if size == 0:
                        while (await conn.reader.readuntil(b"\r\n")) != b"\r\n":
                            pass  # trailers
                        break
                    chunk = await conn.reader.readexactly(size + 2)
                    yield chunk[:-2]
            elif self._length is not None:
                remaining = self._length
                while remaining > 0:
                    chunk = await conn.reader.read(min(READ_CHUNK, remaining))
                    if not chunk:
                        raise ConnectionLost("the body ended early")
                    remaining -= len(chunk)
                    yield chunk
            else:
                while chunk := await conn.reader.read(READ_CHUNK):
                    yield chunk
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            raise ConnectionLost(f"malformed or truncated body: {exc}") from exc
        self._done = True

    async def aread(self) -> bytes:
        return b"".join([chunk async for chunk in self.aiter_bytes()])

    async def aclose(self) -> None:
        """Give the connection back if the body was read whole and the server keeps it alive, else close it."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        keep = self._done and (self._length is not None or self._chunked)  # a body read to EOF ends the connection
        if keep and self.headers.get("connection", "").lower() != "close" and not conn.reader.at_eof():
            self._pool.release(conn)
        else:
            conn.close()

    async def __aenter__(self) -> Response:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class Pool:
    """Keep-alive connections to one origin."""

    def __init__(
        self, url: str, *, default_headers: dict[str, str], connect_timeout_s: float, max_idle: int = 32
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None
        host_header = self.host if ":" not in self.host else f"[{self.host}]"
        default_port = (parts.scheme == "https" and self.port == 443) or (parts.scheme == "http" and self.port == 80)
        self._static = f"host: {host_header}{'' if default_port else f':{self.port}'}\r\n" + "".join(
            f"{_checked(k)}: {_checked(v)}\r\n" for k, v in default_headers.items()
        )
        self._connect_timeout = connect_timeout_s
        self._idle: list[_Connection] = []
        self._max_idle = max_idle

    async def request(self, method: str, headers: dict[str, str], body: bytes = b"") -> Response:
        """Send one request; return once the response head has arrived.

        Raises:
            ConnectionLost: connect, write or read failed, or the response head is malformed.
        """
        head = [f"{method} {self.path} HTTP/1.1\r\n", self._static]
        head += [f"{_checked(k)}: {_checked(v)}\r\n" for k, v in headers.items()]
        if body or method == "POST":
            head.append(f"content-length: {len(body)}\r\n")
        head.append("\r\n")
        data = "".join(head).encode("latin-1") + body
        while self._idle:
            conn = self._idle.pop()
            if conn.reader.at_eof() or conn.writer.is_closing():
                conn.close()
                continue
            try:
                return await self._exchange(conn, data)
            except _NothingReceived:
                conn.close()  # closed by the server while idle: nothing was processed, safe to send again
        conn = await self._connect()
        try:
            return await self._exchange(conn, data)
        except _NothingReceived as exc:
            conn.close()
            raise ConnectionLost("the server closed the connection without answering") from exc

    async def _connect(self) -> _Connection:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, ssl=self._ssl, limit=MAX_HEAD_BYTES),
                self._connect_timeout,
            )
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise ConnectionLost(f"connect to {self.host}:{self.port} failed: {exc!r}") from exc
        return _Connection(reader, writer)

    async def _exchange(self, conn: _Connection, data: bytes) -> Response:
        try:
            conn.writer.write(data)
            await conn.writer.drain()
            first = await conn.reader.readuntil(b"\r\n")
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise _NothingReceived from exc
        except (OSError, asyncio.LimitOverrunError) as exc:
            conn.close()
            raise ConnectionLost(f"request failed: {exc!r}") from exc
        try:
            raw = first + await conn.reader.readuntil(b"\r\n\r\n") if first != b"\r\n" else first
            lines = raw.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError, ValueError, IndexError) as exc:
            conn.close()
            raise ConnectionLost(f"malformed response head: {exc!r}") from exc
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length_text = headers.get("content-length")
        length = int(length_text) if length_text and length_text.isdigit() and not chunked else None
        if status in (204, 304) or (100 <= status < 200):
            length = 0
        if length is None and not chunked and status == 202:
            length = 0
        return Response(status, headers, self, conn, length, chunked)

    def release(self, conn: _Connection) -> None:
        if len(self._idle) < self._max_idle:
            self._idle.append(conn)
        else:
            conn.close()

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class _NothingReceived(Exception):
    pass


def _checked(text: str) -> str:
    """Header names and values never carry CR or LF (no header injection, no request smuggling)."""
    if "\r" in text or "\n" in text:
        raise ValueError("a header name or value contains CR or LF")
    return text
