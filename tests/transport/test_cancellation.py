"""Cancellation reaches the upstream: a legacy `notifications/cancelled`, or a modern client closing its stream."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import orjson
import pytest

from tests.support.portico import Running, make_settings, serve_in_thread
from tests.support.waits import eventually
from tests.support.wire import open_legacy_session
from tests.upstreams.launch import running_sync

ACCEPT = "application/json, text/event-stream"
MODERN = "2026-07-28"
ENVELOPE = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Running, str]]:
    tmp: Path = tmp_path_factory.mktemp("cancel")
    with running_sync("slow") as slow:
        servers = [{"id": "slow", "url": slow.url}, {"id": "slowlegacy", "url": slow.url, "era": "legacy"}]
        with serve_in_thread(make_settings(tmp, servers)) as running:
            yield running, slow.url.removesuffix("/mcp") + "/stats"


def stats(url: str) -> dict[str, int]:
    result: dict[str, int] = httpx2.get(url).json()
    return result


async def start_hang(http: httpx2.AsyncClient, url: str, body: dict[str, Any], headers: dict[str, str]) -> None:
    async with http.stream("POST", url, content=orjson.dumps(body), headers=headers) as response:
        assert response.status_code == 200
        async for _ in response.aiter_bytes():
            pass


@pytest.mark.anyio
async def test_a_legacy_cancel_notification_stops_the_upstream_call(portal: tuple[Running, str]) -> None:
    running, stats_url = portal
    before = stats(stats_url)["cancelled"]
    async with httpx2.AsyncClient(timeout=30) as http:
        headers = await open_legacy_session(http, running.url)
        call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "slow__hang", "arguments": {}}}
        async with anyio.create_task_group() as tg:
            tg.start_soon(start_hang, http, running.url, call, headers)
            await eventually(lambda: stats(stats_url)["started"] > 0, 20)
            cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 7}}
            assert (await http.post(running.url, json=cancel, headers=headers)).status_code == 202
            await eventually(lambda: stats(stats_url)["cancelled"] > before, 20)
            tg.cancel_scope.cancel()


@pytest.mark.anyio
@pytest.mark.parametrize("server", ["slow", "slowlegacy"])
async def test_a_modern_client_closing_its_stream_cancels_the_upstream_call(
    portal: tuple[Running, str], server: str
) -> None:
    running, stats_url = portal
    before = stats(stats_url)["cancelled"]
    started = stats(stats_url)["started"]
    headers = {
        "accept": ACCEPT,
        "content-type": "application/json",
        "mcp-protocol-version": MODERN,
        "mcp-method": "tools/call",
        "mcp-name": f"{server}__hang",
    }
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": f"{server}__hang", "arguments": {}, "_meta": ENVELOPE},
    }
    async with httpx2.AsyncClient(timeout=30) as http, anyio.create_task_group() as tg:
        tg.start_soon(start_hang, http, running.url, call, headers)
        await eventually(lambda: stats(stats_url)["started"] > started, 20)
        tg.cancel_scope.cancel()  # the client goes away: on the modern wire that is the cancellation
    await eventually(lambda: stats(stats_url)["cancelled"] > before, 20)
