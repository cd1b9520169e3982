"""Shared command line and transports for the upstream fixture servers.

``serve(server)`` gives every fixture the same CLI::

    python -m tests.upstreams.<name> --transport http|stdio|sse [--port 0] [--host 127.0.0.1]

* ``http``: Streamable HTTP at ``/mcp``. One endpoint serves both protocol eras: the
  2025-11-25 handshake with ``Mcp-Session-Id`` sessions, and the 2026-07-28 stateless wire
  (the SDK routes on the ``MCP-Protocol-Version`` header).
* ``sse``: the legacy HTTP+SSE transport of 2024-11-05 (``GET /sse`` + ``POST /messages/``).
* ``stdio``: newline-delimited JSON-RPC on stdin/stdout (both eras; the first request decides).

Over HTTP/SSE, once the socket accepts connections, exactly one line
``LISTENING <url>`` is written to stdout and flushed; all logging goes to stderr. Binding is
loopback by default and DNS-rebinding protection (Host/Origin allow-list) is always on.
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from collections.abc import Sequence
from typing import Any, Literal

import anyio
import uvicorn
from mcp.server import MCPServer, Server
from mcp.server.lowlevel.server import NotificationOptions
from mcp.server.sse import SseServerTransport
from mcp.server.stdio import stdio_server
from mcp.server.streamable_http import EventStore
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import Receive, Scope, Send

Transport = Literal["http", "stdio", "sse"]

MCP_PATH = "/mcp"
SSE_PATH = "/sse"
SSE_MESSAGE_PATH = "/messages/"


def lowlevel(server: Server[Any] | MCPServer[Any]) -> Server[Any]:
    """The low-level `Server` behind either API (MCPServer keeps it private; fixtures need it)."""
    if isinstance(server, Server):
        return server
    return server._lowlevel_server  # pyright: ignore[reportPrivateUsage]


def advertise_list_changed(server: Server[Any] | MCPServer[Any], options: NotificationOptions) -> None:
    """Make the 2025-era `initialize` result advertise ``listChanged`` flags.

    The SDK derives 2025-era capabilities from ``create_initialization_options()``, which every
    transport calls without arguments, so the flags default to false. (The 2026-07-28
    ``server/discover`` derives them from whether ``subscriptions/listen`` is served.)
    """
    ll = lowlevel(server)
    ll.create_initialization_options = functools.partial(  # type: ignore[method-assign]
        type(ll).create_initialization_options, ll, options
    )


def loopback_security(host: str) -> TransportSecuritySettings:
    """Host/Origin allow-list for a loopback listener (the DNS-rebinding defence)."""
    hosts = {"127.0.0.1", "localhost", "[::1]"}
    if host not in ("127.0.0.1", "localhost", "::1", "0.0.0.0"):
        hosts.add(host)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=sorted(f"{h}:*" for h in hosts),
        allowed_origins=sorted(f"http://{h}:*" for h in hosts),
    )


def parse_args(argv: Sequence[str] | None, description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--transport", choices=["http", "stdio", "sse"], default="http")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free ephemeral port")
    parser.add_argument("--log-level", default="WARNING", help="stderr log level")
    return parser.parse_args(argv)


class _AnnouncingServer(uvicorn.Server):
    """uvicorn server that prints ``LISTENING <url>`` once its socket accepts connections."""

    def __init__(self, config: uvicorn.Config, url_template: str) -> None:
        super().__init__(config)
        self._url_template = url_template

    async def startup(self, sockets: list[Any] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.should_exit:
            return
        port = self.servers[0].sockets[0].getsockname()[1]
        sys.stdout.write(f"LISTENING {self._url_template.format(port=port)}\n")
        sys.stdout.flush()


class _SseEndpoint:
    """ASGI endpoint for ``GET /sse``: one legacy SSE connection = one MCP session."""

    def __init__(self, server: Server[Any], transport: SseServerTransport) -> None:
        self._server = server
        self._transport = transport

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with self._transport.connect_sse(scope, receive, send) as (read_stream, write_stream):
            await self._server.run(read_stream, write_stream, self._server.create_initialization_options())


def build_http_app(
    server: Server[Any] | MCPServer[Any],
    host: str,
    *,
    routes: Sequence[BaseRoute] = (),
    event_store: EventStore | None = None,
    retry_interval: int | None = None,
) -> Starlette:
    """Streamable HTTP app at ``/mcp`` (both eras) plus any side routes."""
    return lowlevel(server).streamable_http_app(
        streamable_http_path=MCP_PATH,
        host=host,
        transport_security=loopback_security(host),
        event_store=event_store,
        retry_interval=retry_interval,
        custom_starlette_routes=list(routes) or None,  # type: ignore[arg-type]
    )


def build_sse_app(server: Server[Any] | MCPServer[Any], host: str, *, routes: Sequence[BaseRoute] = ()) -> Starlette:
    """Legacy HTTP+SSE app (2024-11-05 transport) plus any side routes."""
    transport = SseServerTransport(SSE_MESSAGE_PATH, security_settings=loopback_security(host))
    return Starlette(
        routes=[
            Route(SSE_PATH, endpoint=_SseEndpoint(lowlevel(server), transport), methods=["GET"]),
            Mount(SSE_MESSAGE_PATH, app=transport.handle_post_message),
            *routes,
        ]
    )


async def _serve_stdio(server: Server[Any]) -> None:
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


def serve(
    server: Server[Any] | MCPServer[Any],
    argv: Sequence[str] | None = None,
    *,
    description: str = "MCP upstream test fixture",
    routes: Sequence[BaseRoute] = (),
    event_store: EventStore | None = None,
    retry_interval: int | None = None,
) -> None:
    """Run `server` on the transport chosen on the command line (blocks until killed)."""
    args = parse_args(argv, description)
    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper())
    transport: Transport = args.transport
    if transport == "stdio":
        anyio.run(_serve_stdio, lowlevel(server))
        return

    url_host = f"[{args.host}]" if ":" in args.host else args.host
    if transport == "http":
        app = build_http_app(server, args.host, routes=routes, event_store=event_store, retry_interval=retry_interval)
        url_template = f"http://{url_host}:{{port}}{MCP_PATH}"
    else:
        app = build_sse_app(server, args.host, routes=routes)
        url_template = f"http://{url_host}:{{port}}{SSE_PATH}"

    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level.lower(),
        access_log=False,  # uvicorn's access log writes to stdout; stdout carries only the LISTENING line
        # h11, not httptools: httptools keeps trailing whitespace in header values (b"abc  "), and the
        # SDK compares Mcp-Name/Mcp-Param-* to the body without trimming, so RFC 9110 OWS fails (-32020).
        http="h11",
        lifespan="on",
        timeout_graceful_shutdown=2,
    )
    _AnnouncingServer(config, url_template).run()
