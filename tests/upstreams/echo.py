"""Echo fixture: ``echo(text)``, ``add(a, b)``, and a log of everything that reached it.

Every inbound JSON-RPC message (requests and notifications, both eras, any transport) is
recorded with its method, raw params and HTTP headers (lower-cased names; ``Authorization``
included), so tests can prove what a gateway actually forwarded. Read the log with the tool
``received()`` or, over HTTP/SSE, with ``GET /received`` on the same port (``DELETE /received``
clears it). The ``received()`` call itself is recorded too.

Run: ``python -m tests.upstreams.echo --transport http|stdio|sse [--port 0]``
(``--transport sse`` is the legacy 2024-11-05 HTTP+SSE transport).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from mcp.server import MCPServer
from mcp.server.context import CallNext, HandlerResult
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.upstreams._common import Ctx, is_modern, session_key
from tests.upstreams._serve import serve

RECEIVED: list[dict[str, Any]] = []


async def record(ctx: Ctx, call_next: CallNext) -> HandlerResult:
    headers = getattr(ctx.request, "headers", None)
    RECEIVED.append(
        {
            "kind": "notification" if ctx.request_id is None else "request",
            "id": ctx.request_id,
            "method": ctx.method,
            "params": json.loads(json.dumps(ctx.params, default=str)) if ctx.params is not None else None,
            "headers": {k.lower(): v for k, v in headers.items()} if headers is not None else None,
            "protocol_version": ctx.protocol_version,
            "era": "2026" if is_modern(ctx) else "2025",
            "session": session_key(ctx),
            "at": time.time(),
        }
    )
    return await call_next(ctx)


mcp = MCPServer("portico-echo", version="1.0.0", middleware=[record])


@mcp.tool(description="Returns its input unchanged")
def echo(text: str) -> str:
    return text


@mcp.tool(description="Adds two numbers")
def add(a: int | float, b: int | float) -> int | float:
    return a + b


@mcp.tool(description="Everything this server has received so far, oldest first (JSON)", structured_output=False)
def received() -> str:
    return json.dumps(RECEIVED)


async def received_endpoint(request: Request) -> Response:
    if request.method == "DELETE":
        RECEIVED.clear()
        return Response(status_code=204)
    return JSONResponse(RECEIVED)


def main(argv: Sequence[str] | None = None) -> None:
    serve(
        mcp,
        argv,
        description=__doc__ or "echo",
        routes=[Route("/received", received_endpoint, methods=["GET", "DELETE"])],
    )


if __name__ == "__main__":
    main()
