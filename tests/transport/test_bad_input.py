"""Bad input gets a clear JSON-RPC error, never a 500 or a traceback, and a broken upstream hurts only itself."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client

from tests.support.portico import Running, make_settings, serve_in_thread
from tests.support.waits import eventually
from tests.support.wire import open_legacy_session, rpc_answer
from tests.upstreams.launch import running_sync, stdio_argv

MODERN = "2026-07-28"
ENVELOPE = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}
ACCEPT = "application/json, text/event-stream"


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp: Path = tmp_path_factory.mktemp("bad")
    with running_sync("echo") as echo, running_sync("slow") as slow:
        servers = [
            {"id": "echo", "url": echo.url},
            {"id": "slow", "url": slow.url, "timeout_s": 2},
            {"id": "crashy", "command": stdio_argv("crashy"), "restart": {"initial_backoff_s": 0.2}},
            {"id": "dead", "url": "http://127.0.0.1:9/mcp", "connect_timeout_s": 1},
        ]
        settings = make_settings(tmp, servers, http={"max_body_bytes": 64 * 1024})
        with serve_in_thread(settings) as running:
            yield running


def modern_headers(method: str, name: str | None = None) -> dict[str, str]:
    headers = {
        "content-type": "application/json",
        "accept": ACCEPT,
        "mcp-protocol-version": MODERN,
        "mcp-method": method,
    }
    if name is not None:
        headers["mcp-name"] = name
    return headers


def call_body(name: str, arguments: dict[str, Any] | None = None, request_id: int = 1) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments or {}, "_meta": ENVELOPE},
    }


async def post(portal: Running, content: bytes, headers: dict[str, str]) -> httpx2.Response:
    async with httpx2.AsyncClient(timeout=30) as http:
        return await http.post(portal.url, content=content, headers=headers)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (b"{not json", 400, -32700),
        (b"[]", 400, -32600),
        (b'[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]', 400, -32600),
        (b'{"jsonrpc":"1.0","id":1,"method":"tools/list"}', 400, -32600),
        (b'{"jsonrpc":"2.0","id":true,"method":"tools/list"}', 400, -32600),
        (b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":[1]}', 400, -32600),
        (b'"just a string"', 400, -32600),
    ],
)
async def test_malformed_messages_get_a_jsonrpc_error_in_both_eras(
    portal: Running, content: bytes, status: int, code: int
) -> None:
    for headers in (modern_headers("tools/list"), {"content-type": "application/json", "accept": ACCEPT}):
        response = await post(portal, content, headers)
        assert response.status_code == status
        assert response.json()["error"]["code"] == code


@pytest.mark.anyio
async def test_an_unknown_method_is_method_not_found(portal: Running) -> None:
    body = {"jsonrpc": "2.0", "id": 7, "method": "tools/destroy", "params": {"_meta": ENVELOPE}}
    response = await post(portal, orjson.dumps(body), modern_headers("tools/destroy"))
    assert response.status_code == 404
    assert response.json() == {"jsonrpc": "2.0", "id": 7, "error": {"code": -32601, "message": "Method not found"}}


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["legacy", MODERN])
async def test_an_unknown_tool_is_invalid_params_and_names_nothing_private(portal: Running, mode: str) -> None:
    async with Client(portal.url, mode=mode) as client:
        with pytest.raises(Exception, match="Unknown tool") as caught:
            await client.call_tool("echo__no_such_tool", {})
    assert getattr(caught.value, "code", None) == -32602


@pytest.mark.anyio
async def test_an_oversized_body_is_refused_with_413_before_it_is_read(portal: Running) -> None:
    body = orjson.dumps(call_body("echo__echo", {"text": "x" * 100_000}))
    response = await post(portal, body, modern_headers("tools/call", "echo__echo"))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == -32600


@pytest.mark.anyio
async def test_a_tool_name_that_is_not_a_string_is_invalid_params(portal: Running) -> None:
    body = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": 42, "_meta": ENVELOPE}}
    response = await post(portal, orjson.dumps(body), modern_headers("tools/call"))
    assert response.json()["error"]["code"] in (-32602, -32020)
    assert response.status_code == 400


@pytest.mark.anyio
async def test_a_tampered_list_cursor_is_invalid_params(portal: Running) -> None:
    async with Client(portal.url, mode="legacy") as client:
        with pytest.raises(Exception, match="cursor") as caught:
            await client.list_tools(cursor="not-a-cursor")
    assert getattr(caught.value, "code", None) == -32602


@pytest.mark.anyio
async def test_a_hanging_upstream_times_out_with_a_clear_error_and_others_keep_answering(portal: Running) -> None:
    async with Client(portal.url, mode=MODERN) as client:
        with anyio.fail_after(20):
            with pytest.raises(Exception, match="did not answer within 2 s") as caught:
                await client.call_tool("slow__hang", {})
            answer = await client.call_tool("echo__echo", {"text": "still here"})
    assert getattr(caught.value, "code", None) == -32004
    assert "still here" in answer.content[0].text  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_a_crashing_stdio_upstream_fails_its_call_and_is_restarted(portal: Running) -> None:
    upstream = portal.portico.pool.get("crashy")
    restarts = upstream.health.restarts
    async with Client(portal.url, mode="legacy") as client:
        with pytest.raises(Exception, match=r"unavailable|exited|closed") as caught:
            await client.call_tool("crashy__crash", {})
        assert getattr(caught.value, "code", None) == -32003
        await eventually(lambda: upstream.ready and upstream.health.restarts > restarts)
        assert (await client.call_tool("crashy__ok", {})).content[0].text == "still alive"  # type: ignore[union-attr]
    assert "exited (code 3)" in (upstream.health.last_error or "") or upstream.ready


@pytest.mark.anyio
async def test_a_dead_upstream_is_reported_down_and_other_servers_are_unaffected(portal: Running) -> None:
    async with httpx2.AsyncClient() as http:
        ready = (await http.get(portal.base + "/readyz")).json()
    assert ready["status"] == "degraded"
    assert ready["upstreams"]["dead"]["state"] == "down"
    assert "Connect" in ready["upstreams"]["dead"]["last_error"]
    async with Client(portal.url, mode=MODERN) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert not any(n.startswith("dead__") for n in names)
        assert (await client.call_tool("echo__add", {"a": 1, "b": 2})).content


@pytest.mark.anyio
async def test_a_bad_origin_is_403_and_a_bad_host_is_refused(portal: Running) -> None:
    body = orjson.dumps(call_body("echo__echo", {"text": "x"}))
    evil_origin = {**modern_headers("tools/call", "echo__echo"), "origin": "http://evil.example.com"}
    assert (await post(portal, body, evil_origin)).status_code == 403
    evil_host = {**modern_headers("tools/call", "echo__echo"), "host": "evil.example.com"}
    assert (await post(portal, body, evil_host)).status_code == 421


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
_messages = st.one_of(
    _json_values,
    st.fixed_dictionaries(
        {
            "jsonrpc": st.sampled_from(["2.0", "1.0", 2]),
            "method": st.sampled_from(["tools/call", "tools/list", "initialize", "resources/read", "prompts/get", "x"])
            | st.text(max_size=10),
        },
        optional={"id": st.integers() | st.text(max_size=5) | st.none(), "params": _json_values},
    ),
)


@pytest.mark.anyio
async def test_thousands_of_malformed_messages_never_produce_a_500(portal: Running) -> None:
    failures: list[tuple[bytes, int, str]] = []
    async with httpx2.AsyncClient(timeout=30) as http:
        legacy = await open_legacy_session(http, portal.url)

        @settings(
            max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True
        )
        @given(message=_messages, modern=st.booleans())
        def check(message: Any, modern: bool) -> None:
            body = json.dumps(message).encode()
            method = str(message.get("method")) if isinstance(message, dict) else "x"
            method = method if re.fullmatch(r"[!-~]+", method) else "x"  # a value httpx can send
            headers = modern_headers(method) if modern else legacy
            pending.append((body, headers))

        pending: list[tuple[bytes, dict[str, str]]] = []
        check()
        for body, headers in pending:
            response = await http.post(portal.url, content=body, headers=headers)
            if response.status_code >= 500 or "Traceback" in response.text:
                failures.append((body, response.status_code, response.text[:300]))
            elif response.status_code != 202:
                try:
                    answer = rpc_answer(response)
                except (AssertionError, ValueError):
                    answer = {}
                if answer.get("jsonrpc") != "2.0":
                    failures.append((body, response.status_code, response.text[:300]))
    assert not failures, failures[:5]
