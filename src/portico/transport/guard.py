"""Front-door checks that run before any JSON is parsed: Host/Origin (DNS rebinding) and body size."""

from __future__ import annotations

from urllib.parse import urlparse

from starlette.types import Receive, Scope

from portico.config import HttpSettings, is_loopback
from portico.errors import BodyTooLargeError

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


class HostGuard:
    """Accept only configured Host and Origin values, so a web page cannot reach Portico by DNS rebinding.

    A proxy must check these itself: the upstream's own check sees Portico's Host, never the browser's.
    """

    def __init__(self, settings: HttpSettings, bind_host: str) -> None:
        self._hosts = set(settings.allowed_hosts)
        self._origins = set(settings.allowed_origins)
        if is_loopback(bind_host):
            self._hosts.update(f"{name}:*" for name in LOOPBACK_NAMES)
            self._hosts.update(LOOPBACK_NAMES)
        if settings.public_url:
            parsed = urlparse(settings.public_url)
            self._hosts.add(parsed.netloc)
            self._origins.add(f"{parsed.scheme}://{parsed.netloc}")

    def host_ok(self, host: str | None) -> bool:
        if not host:
            return False
        if host in self._hosts or "*" in self._hosts:
            return True
        name, _, port = host.rpartition(":")
        return bool(port.isdigit() and f"{name}:*" in self._hosts)

    def origin_ok(self, origin: str | None) -> bool:
        if origin is None:
            return True  # not a browser (or same-origin navigation): nothing to rebind
        if origin in self._origins or "*" in self._origins:
            return True
        parsed = urlparse(origin)
        if parsed.hostname is None:
            return False
        host = f"[{parsed.hostname}]" if ":" in parsed.hostname else parsed.hostname
        # A loopback page may call a loopback Portico (local tools such as the Inspector).
        return host in LOOPBACK_NAMES and f"{host}:*" in self._hosts


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole request body, refusing more than `limit` bytes (before reading it when Content-Length says so).

    Raises:
        BodyTooLargeError: the body exceeds `limit`.
    """
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                if int(value) > limit:
                    raise BodyTooLargeError()
            except ValueError:
                pass
            break
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError()
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
