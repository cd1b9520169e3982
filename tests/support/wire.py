"""Read a JSON-RPC answer from an HTTP response, whether it came as JSON or as an SSE stream."""

from __future__ import annotations

import json
from typing import Any

import httpx2


def rpc_messages(response: httpx2.Response) -> list[dict[str, Any]]:
    """Every JSON-RPC message in the response body, in order (SSE `data:` lines or one JSON body)."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        out = []
        for line in response.text.splitlines():
            if line.startswith("data:") and line[5:].strip():
                out.append(json.loads(line[5:]))
        return out
    return [response.json()] if response.content else []


def rpc_answer(response: httpx2.Response) -> dict[str, Any]:
    """The final message (the response to the request)."""
    messages = rpc_messages(response)
    assert messages, f"no JSON-RPC message in HTTP {response.status_code} response"
    return messages[-1]


ACCEPT = "application/json, text/event-stream"
MODERN = "2026-07-28"
LEGACY = "2025-11-25"


def envelope(capabilities: dict[str, Any] | None = None) -> dict[str, Any]:
    """The 2026-07-28 per-request `_meta` envelope."""
    return {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": capabilities or {},
    }


def modern_call(
    method: str, params: dict[str, Any], request_id: int | str = 1, capabilities: dict[str, Any] | None = None
) -> tuple[bytes, dict[str, str]]:
    """Body and headers of a modern-era request (the routing headers mirror the body, as the spec requires)."""
    headers = {
        "content-type": "application/json",
        "accept": ACCEPT,
        "mcp-protocol-version": MODERN,
        "mcp-method": method,
    }
    name = params.get("name", params.get("uri"))
    if method in ("tools/call", "prompts/get", "resources/read") and isinstance(name, str):
        headers["mcp-name"] = name
    body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": {**params, "_meta": envelope(capabilities)}}
    return json.dumps(body).encode(), headers


def initialize_body(request_id: int = 0) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "initialize",
        "params": {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}},
    }


async def open_legacy_session(http: httpx2.AsyncClient, url: str) -> dict[str, str]:
    """`initialize` a handshake-era session; returns the headers every later request of it carries."""
    opened = await http.post(url, json=initialize_body(), headers={"accept": ACCEPT})
    assert opened.status_code == 200, opened.text
    return {
        "content-type": "application/json",
        "accept": ACCEPT,
        "mcp-protocol-version": LEGACY,
        "mcp-session-id": opened.headers["mcp-session-id"],
    }
