"""The aggregated catalog: namespacing and collisions, live refresh on list_changed, pagination."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import orjson
import pytest
from mcp import Client

from portico.catalog.catalog import template_matches
from tests.support.portico import Running, make_settings, serve_in_thread
from tests.support.wire import open_legacy_session
from tests.upstreams.launch import running_sync, stdio_argv

ACCEPT = "application/json, text/event-stream"
MODERN = "2026-07-28"
ENVELOPE = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp: Path = tmp_path_factory.mktemp("catalog")
    with running_sync("changing") as changing:
        servers = [
            {"id": "chg", "url": changing.url},
            {"id": "a", "command": stdio_argv("echo")},
            {"id": "b", "command": stdio_argv("echo")},
        ]
        with serve_in_thread(make_settings(tmp, servers, catalog={"page_size": 3})) as running:
            yield running


async def sse_messages(response: httpx2.Response) -> AsyncIterator[dict[str, Any]]:
    async for line in response.aiter_lines():
        if line.startswith("data:") and line[5:].strip():
            yield orjson.loads(line[5:])


@pytest.mark.anyio
async def test_two_servers_with_the_same_tool_names_are_both_exposed_under_their_prefixes(portal: Running) -> None:
    async with Client(portal.url, mode="legacy") as client:
        names: list[str] = []
        cursor = None
        while True:
            page = await client.list_tools(cursor=cursor)
            names += [t.name for t in page.tools]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert (await client.call_tool("a__echo", {"text": "from a"})).content
        assert (await client.call_tool("b__echo", {"text": "from b"})).content
    assert {"a__echo", "b__echo", "a__add", "b__add"} <= set(names)
    assert len(names) == len(set(names)), "pagination repeated or dropped a tool"


@pytest.mark.anyio
async def test_the_tool_list_pages_with_an_opaque_cursor_in_deterministic_order(portal: Running) -> None:
    async with Client(portal.url, mode=MODERN) as client:
        first = await client.list_tools()
        again = await client.list_tools()
    assert first.next_cursor is not None
    assert len(first.tools) == 3
    assert [t.name for t in first.tools] == [t.name for t in again.tools]


@pytest.mark.anyio
async def test_a_legacy_client_hears_list_changed_when_an_upstream_changes_its_tools(portal: Running) -> None:
    async with httpx2.AsyncClient(timeout=30) as http:
        session = await open_legacy_session(http, portal.url)
        async with http.stream("GET", portal.url, headers={**session, "accept": "text/event-stream"}) as stream:
            assert stream.status_code == 200
            call = {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "tools/call",
                "params": {"name": "chg__mutate", "arguments": {}},
            }
            await http.post(portal.url, json=call, headers={**session, "accept": ACCEPT})
            with anyio.fail_after(20):
                async for message in sse_messages(stream):
                    if message.get("method") == "notifications/tools/list_changed":
                        break
    async with Client(portal.url, mode="legacy") as client:
        names = set()
        cursor = None
        while True:
            page = await client.list_tools(cursor=cursor)
            names |= {t.name for t in page.tools}
            if (cursor := page.next_cursor) is None:
                break
    assert any(name.startswith("chg__added_") for name in names)


@pytest.mark.anyio
async def test_a_modern_client_hears_list_changed_on_its_listen_stream(portal: Running) -> None:
    headers = {"content-type": "application/json", "accept": ACCEPT, "mcp-protocol-version": MODERN}
    listen = {
        "jsonrpc": "2.0",
        "id": "sub-1",
        "method": "subscriptions/listen",
        "params": {"notifications": {"toolsListChanged": True}, "_meta": ENVELOPE},
    }
    async with (
        httpx2.AsyncClient(timeout=30) as http,
        http.stream(
            "POST", portal.url, content=orjson.dumps(listen), headers={**headers, "mcp-method": "subscriptions/listen"}
        ) as stream,
    ):
        messages = sse_messages(stream)
        with anyio.fail_after(20):
            ack = await anext(messages)
            assert ack["method"] == "notifications/subscriptions/acknowledged"
            assert ack["params"]["notifications"] == {"toolsListChanged": True}
            call = {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "tools/call",
                "params": {"name": "chg__mutate", "arguments": {}, "_meta": ENVELOPE},
            }
            await http.post(
                portal.url,
                content=orjson.dumps(call),
                headers={**headers, "mcp-method": "tools/call", "mcp-name": "chg__mutate"},
            )
            async for message in messages:
                if message.get("method") == "notifications/tools/list_changed":
                    assert message["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == "sub-1"
                    break


@pytest.mark.parametrize(
    ("template", "uri", "matches"),
    [
        ("test://template/{id}/data", "test://template/42/data", True),
        ("test://template/{id}/data", "test://template/4/2/data", False),
        ("file:///{+path}", "file:///etc/hosts", True),
        ("notes://{note_id}", "notes://7", True),
        ("notes://{note_id}", "other://7", False),
    ],
)
def test_resource_templates_match_the_uris_they_expand_to(template: str, uri: str, matches: bool) -> None:
    assert template_matches(template, uri) is matches
