"""HTTP plumbing shared by the endpoints: bounded form and JSON bodies, responses with the right headers.

Bodies are read with a byte cap before any parsing; form fields that appear twice are refused (RFC 6749 §3.1:
parameters must not be included more than once).
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from portico.identity.authserver.model import OAuthError
from portico.identity.authserver.pages import SECURITY_HEADERS, error_page

MAX_FORM_BYTES = 16_384
NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, or OAuthError(invalid_request, 413) past `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise OAuthError("invalid_request", "Request body too large", status=413)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise OAuthError("invalid_request", "Request body too large", status=413)
    return body


async def read_form(request: Request, limit: int = MAX_FORM_BYTES) -> dict[str, str]:
    """An application/x-www-form-urlencoded body as a dict.

    Raises:
        OAuthError: invalid_request (wrong content type, too large, not UTF-8, a repeated parameter).
    """
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "Expected an application/x-www-form-urlencoded body")
    body = await read_body(request, limit)
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise OAuthError("invalid_request", "Malformed form body") from None
    return single_values(pairs)


def single_values(pairs: list[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in pairs:
        if key in out:
            raise OAuthError("invalid_request", "A parameter was repeated")
        out[key] = value
    return out


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    body = await read_body(request, limit)
    try:
        value = json.loads(body)
    except ValueError:
        raise OAuthError("invalid_client_metadata", "The body is not JSON") from None
    if not isinstance(value, dict):
        raise OAuthError("invalid_client_metadata", "The body is not a JSON object")
    return value


def json_response(body: Mapping[str, Any], status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return JSONResponse(dict(body), status_code=status, headers={**NO_STORE, **(headers or {})})


def oauth_error_response(exc: OAuthError, headers: Mapping[str, str] | None = None) -> Response:
    """RFC 6749 §5.2: a JSON error body."""
    return json_response({"error": exc.error, "error_description": exc.public}, exc.status, headers)


class SlidingWindow:
    """Events per key in the last `window_s` seconds, bounded in memory (per process). For rate limits such as
    registrations or failed sign-ins per client address."""

    def __init__(self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._events: dict[str, deque[float]] = {}

    def full(self, key: str) -> bool:
        """Whether `key` has reached the limit (nothing is recorded)."""
        return len(self._live(key)) >= self.limit

    def record(self, key: str) -> None:
        self._live(key).append(self._clock())
        if len(self._events) > 10_000:  # forget idle keys
            for idle in [k for k, v in self._events.items() if not v]:
                del self._events[idle]

    def _live(self, key: str) -> deque[float]:
        events = self._events.setdefault(key, deque())
        horizon = self._clock() - self.window_s
        while events and events[0] <= horizon:
            events.popleft()
        return events


def client_ip(request: Request) -> str | None:
    """The client's address: Portico's router puts the address resolved behind trusted proxies here."""
    return request.client.host if request.client is not None else None


def html(content: str, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """A page with the security headers (`headers`, from `pages.security_headers`, replaces the default set)."""
    return HTMLResponse(content, status_code=status, headers=dict(headers or SECURITY_HEADERS))


def html_error(message: str, status: int = 400) -> Response:
    return html(error_page(message), status)


def redirect(location: str) -> Response:
    """303 See Other: after a form post the browser follows with GET."""
    return RedirectResponse(location, status_code=303, headers=SECURITY_HEADERS)
