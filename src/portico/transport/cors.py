"""CORS: which web pages may call Portico from a browser, and what they may read of the answer.

* The MCP endpoints (`/mcp`, `/servers/<id>/mcp`) answer a page only if its Origin passes the same check that
  guards against DNS rebinding (`HostGuard.origin_ok`: configured origins, or a loopback page talking to a
  loopback Portico). The answer names that origin (never `*`), and exposes the headers a client must read:
  `Mcp-Session-Id`, `Mcp-Protocol-Version` and `WWW-Authenticate` (the 401 challenge starts OAuth discovery).
* The OAuth endpoints a browser-based client calls with `fetch` — metadata (RFC 9728 and RFC 8414), JWKS,
  registration, token, revocation — answer any origin (`*`): they use no cookies, so a page gains nothing it
  could not get from a server of its own. The sign-in and consent pages get no CORS at all: they are
  navigations, and a page must never read them.

No credentials mode anywhere (no `Access-Control-Allow-Credentials`): Portico's MCP and token endpoints
authenticate with headers, not cookies.
"""

from __future__ import annotations

import re

from starlette.types import Message, Scope, Send

from portico.transport.guard import HostGuard

MCP_METHODS = b"GET, POST, DELETE"
MCP_EXPOSED = b"Mcp-Session-Id, Mcp-Protocol-Version, WWW-Authenticate"
OAUTH_METHODS = b"GET, POST"
OAUTH_EXPOSED = b"WWW-Authenticate"
MAX_AGE = b"600"
PUBLIC_OAUTH_SUFFIXES = ("/oauth/token", "/oauth/register", "/oauth/revoke", "/oauth/jwks.json")
PUBLIC_METADATA_PREFIXES = ("/.well-known/oauth-authorization-server", "/.well-known/oauth-protected-resource")
_HEADER_LIST = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+(\s*,\s*[A-Za-z0-9!#$%&'*+.^_`|~-]+)*$")


def is_public_oauth(path: str) -> bool:
    """Whether `path` is an OAuth endpoint a browser-based client reads with `fetch` (any origin may)."""
    return path.startswith(PUBLIC_METADATA_PREFIXES) or path.endswith(PUBLIC_OAUTH_SUFFIXES)


class Cors:
    def __init__(self, guard: HostGuard) -> None:
        self._guard = guard

    async def preflight(self, scope: Scope, send: Send, *, mcp: bool) -> None:
        """Answer an OPTIONS preflight: 204 with what the page may send, or 403 for an origin not allowed."""
        origin = _header(scope, b"origin")
        if mcp and (origin is None or not self._guard.origin_ok(origin)):
            await _answer(send, 403, [])
            return
        headers = [
            (b"access-control-allow-origin", origin.encode("latin-1") if mcp and origin else b"*"),
            (b"access-control-allow-methods", MCP_METHODS if mcp else OAUTH_METHODS),
            (b"access-control-max-age", MAX_AGE),
        ]
        asked = _header(scope, b"access-control-request-headers")
        if asked and _HEADER_LIST.match(asked):
            headers.append((b"access-control-allow-headers", asked.encode("latin-1")))
        if mcp:
            headers.append((b"vary", b"Origin"))
        await _answer(send, 204, headers)

    def mcp_send(self, scope: Scope, send: Send) -> Send:
        """`send`, with CORS headers on the response when a page of an allowed origin made the request."""
        origin = _header(scope, b"origin")
        if origin is None or not self._guard.origin_ok(origin):
            return send
        extra = [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-expose-headers", MCP_EXPOSED),
            (b"vary", b"Origin"),
        ]
        return _adding(send, extra)

    @staticmethod
    def public_send(scope: Scope, send: Send) -> Send:
        """`send`, with `Access-Control-Allow-Origin: *` when the request came from a page."""
        if _header(scope, b"origin") is None:
            return send
        return _adding(
            send, [(b"access-control-allow-origin", b"*"), (b"access-control-expose-headers", OAUTH_EXPOSED)]
        )


def _adding(send: Send, extra: list[tuple[bytes, bytes]]) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            names = {name.lower() for name, _ in message.get("headers", [])}
            added = [(name, value) for name, value in extra if name not in names]
            message = {**message, "headers": [*message.get("headers", []), *added]}
        await send(message)

    return sending


async def _answer(send: Send, status: int, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None
