"""One URL over many upstreams: the official SDK client lists and calls every server's tools, in both eras."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from mcp import Client

from tests.support.portico import Running, make_settings, serve_in_thread
from tests.upstreams.launch import running_sync, stdio_argv

ERAS = ["legacy", "2026-07-28"]


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp: Path = tmp_path_factory.mktemp("portal")
    with running_sync("everything") as every, running_sync("echo", "sse") as legacy_sse:
        servers = [
            {"id": "every", "url": every.url},
            {"id": "local", "command": stdio_argv("echo")},
            {"id": "old", "url": legacy_sse.url, "transport": "sse"},
        ]
        with serve_in_thread(make_settings(tmp, servers)) as running:
            yield running


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ERAS)
async def test_the_portal_lists_tools_of_every_server_namespaced_by_server_id(portal: Running, mode: str) -> None:
    async with Client(portal.url, mode=mode) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
    assert {"every__test_simple_text", "local__echo", "local__add", "old__echo"} <= names


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ERAS)
async def test_calls_reach_http_stdio_and_sse_upstreams_through_one_url(portal: Running, mode: str) -> None:
    async with Client(portal.url, mode=mode) as client:
        simple = await client.call_tool("every__test_simple_text", {})
        local = await client.call_tool("local__echo", {"text": "via stdio"})
        old = await client.call_tool("old__add", {"a": 2, "b": 3})
    assert simple.content[0].text == "This is a simple text response for testing."  # type: ignore[union-attr]
    assert "via stdio" in local.content[0].text  # type: ignore[union-attr]
    assert "5" in old.content[0].text  # type: ignore[union-attr]


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ERAS)
async def test_a_per_server_url_serves_that_server_alone_with_its_own_names(portal: Running, mode: str) -> None:
    async with Client(portal.server_url("local"), mode=mode) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        result = await client.call_tool("echo", {"text": "direct name"})
    assert "echo" in names
    assert not any("__" in n for n in names)
    assert "direct name" in result.content[0].text  # type: ignore[union-attr]


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ERAS)
async def test_resources_and_prompts_of_upstreams_are_readable_through_the_portal(portal: Running, mode: str) -> None:
    async with Client(portal.url, mode=mode) as client:
        uris = {str(r.uri) for r in (await client.list_resources()).resources}
        text = await client.read_resource("test://static-text")
        prompts = {p.name for p in (await client.list_prompts()).prompts}
        prompt = await client.get_prompt("every__test_simple_prompt", {})
    assert "test://static-text" in uris
    assert text.contents[0].text  # type: ignore[union-attr]
    assert "every__test_simple_prompt" in prompts
    assert prompt.messages


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ERAS)
async def test_progress_notifications_stream_back_to_the_caller(portal: Running, mode: str) -> None:
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    async with Client(portal.url, mode=mode) as client:
        await client.call_tool("every__test_tool_with_progress", {}, progress_callback=on_progress)
    assert seen, "no progress notification reached the client"


@pytest.mark.anyio
async def test_an_unknown_server_path_is_404(portal: Running) -> None:
    async with httpx2.AsyncClient() as http:
        response = await http.post(portal.base + "/servers/nope/mcp", json={})
    assert response.status_code == 404


@pytest.mark.anyio
async def test_readyz_reports_each_upstream_state_and_metrics_count_calls(portal: Running) -> None:
    async with httpx2.AsyncClient() as http:
        ready = (await http.get(portal.base + "/readyz")).json()
        metrics = (await http.get(portal.base + "/metrics")).text
        health = await http.get(portal.base + "/healthz")
    assert health.status_code == 200
    assert {name: u["state"] for name, u in ready["upstreams"].items()} == {
        "every": "ready",
        "local": "ready",
        "old": "ready",
    }
    assert "portico_exchanges_total" in metrics
    assert "portico_upstream_up" in metrics
