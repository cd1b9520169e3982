"""Protocol helpers shared by the fixture servers (low-level `mcp.server.Server` API)."""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import mcp_types as types
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.session import ServerSession
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

# Logging, sampling and roots are deprecated at 2026-07-28 but still what the 2025 era speaks;
# the fixtures use them on purpose.
warnings.filterwarnings("ignore", category=MCPDeprecationWarning)

logger = logging.getLogger(__name__)

Ctx = ServerRequestContext[Any, Any]

NO_ARGS: dict[str, Any] = {"type": "object", "properties": {}}


def is_modern(ctx: Ctx) -> bool:
    """True on the 2026-07-28 stateless wire (per-request `_meta` envelope, no back-channel)."""
    return ctx.protocol_version in MODERN_PROTOCOL_VERSIONS


def session_key(ctx: Ctx) -> str:
    """A stable key for the client connection behind `ctx`.

    Streamable HTTP (2025 era): the ``Mcp-Session-Id`` header. Legacy SSE: the ``session_id``
    query parameter of ``POST /messages/``. stdio (one client per process): ``"local"``.
    2026-07-28 requests are stateless; they all map to ``"stateless"``.
    """
    if is_modern(ctx):
        return "stateless"
    request = ctx.request
    headers = getattr(request, "headers", None)
    if headers is not None:
        session_id = headers.get("mcp-session-id")
        if session_id:
            return str(session_id)
        query = getattr(request, "query_params", None)
        if query is not None and query.get("session_id"):
            return f"sse:{query['session_id']}"
    return "local"


def text(value: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=value)])


def error_result(value: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=value)], is_error=True)


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def unknown_tool(name: str) -> MCPError:
    return MCPError(code=types.INVALID_PARAMS, message=f"Unknown tool: {name}", data={"name": name})


def missing_capability(capability: str) -> MCPError:
    """`-32021` MissingRequiredClientCapability (HTTP 400 on the 2026-07-28 wire)."""
    data = types.MissingRequiredClientCapabilityErrorData(
        required_capabilities=types.ClientCapabilities.model_validate({capability: {}})
    )
    return MCPError(
        code=types.MISSING_REQUIRED_CLIENT_CAPABILITY,
        message=f"This request needs the client capability {capability!r}, which the client did not declare",
        data=data.model_dump(by_alias=True, mode="json", exclude_none=True),
    )


def declares(ctx: Ctx, capability: str) -> bool:
    """Whether the client declared `capability` (handshake in 2025, per-request `_meta` in 2026)."""
    capabilities = ctx.session.client_capabilities
    return capabilities is not None and getattr(capabilities, capability, None) is not None


class LegacySessions:
    """Remembers 2025-era client sessions so server-wide events reach all of them.

    2026-07-28 clients get change notifications through ``subscriptions/listen`` instead (the
    SDK's `SubscriptionBus`); 2025-era clients get them on their standalone channel (the GET
    SSE stream on Streamable HTTP, the one stream on stdio/SSE).
    """

    def __init__(self) -> None:
        self._sessions: dict[str, ServerSession] = {}

    async def middleware(self, ctx: Ctx, call_next: CallNext) -> HandlerResult:
        if not is_modern(ctx) and ctx.method != "initialize" and ctx.request_id is not None:
            self._sessions[session_key(ctx)] = ctx.session
        return await call_next(ctx)

    async def broadcast(self, send: Callable[[ServerSession], Awaitable[None]]) -> None:
        for key, session in list(self._sessions.items()):
            try:
                with anyio.fail_after(2):
                    await send(session)
            except Exception:  # a closed session: forget it
                logger.debug("dropping session %s after a failed notification", key, exc_info=True)
                self._sessions.pop(key, None)
