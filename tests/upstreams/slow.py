"""Slow fixture: ``sleep(seconds)`` that honours cancellation, ``hang()`` that never returns.

``stats()`` (and ``GET /stats`` over HTTP/SSE) reports how many calls started, completed and
were cancelled, so tests can prove a ``notifications/cancelled`` (or a dropped connection)
actually stopped the work upstream. ``sleep`` reports progress once per second when the caller
sent a progress token.

Run: ``python -m tests.upstreams.slow --transport http|stdio|sse [--port 0]``
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.upstreams._serve import serve

STATS: dict[str, int] = {"started": 0, "completed": 0, "cancelled": 0}

mcp = MCPServer("portico-slow", version="1.0.0")


async def _counted(work: Any) -> None:
    STATS["started"] += 1
    try:
        await work
    except anyio.get_cancelled_exc_class():
        STATS["cancelled"] += 1
        raise
    STATS["completed"] += 1


@mcp.tool(description="Sleeps for the given number of seconds, then returns; stops when cancelled")
async def sleep(seconds: float, ctx: Context) -> str:
    async def work() -> None:
        remaining = seconds
        while remaining > 0:
            step = min(1.0, remaining)
            await anyio.sleep(step)
            remaining -= step
            await ctx.report_progress(seconds - remaining, seconds)

    await _counted(work())
    return f"slept {seconds}s"


@mcp.tool(description="Never returns (until cancelled or disconnected)")
async def hang() -> str:
    await _counted(anyio.sleep_forever())
    return "unreachable"


@mcp.tool(description="Counts of started, completed and cancelled sleep/hang calls (JSON)")
def stats() -> str:
    return json.dumps(STATS)


async def stats_endpoint(request: Request) -> Response:
    return JSONResponse(STATS)


def main(argv: Sequence[str] | None = None) -> None:
    serve(mcp, argv, description=__doc__ or "slow", routes=[Route("/stats", stats_endpoint, methods=["GET"])])


if __name__ == "__main__":
    main()
