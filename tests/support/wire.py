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
