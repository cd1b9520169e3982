"""Upstream supervision: stdio programs restarted with backoff and killed on shutdown; remote ones reconnected."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from mcp import Client

from portico.upstream.model import Health
from tests.support.portico import free_port, make_settings, serve
from tests.support.waits import eventually
from tests.upstreams.launch import running, stdio_argv


@pytest.mark.anyio
async def test_a_crash_looping_stdio_server_is_retried_with_backoff_and_reported_down(tmp_path: Path) -> None:
    servers = [
        {
            "id": "loop",
            "command": stdio_argv("crashy", ["--crash-on-start"]),
            "restart": {"initial_backoff_s": 0.1, "max_backoff_s": 0.4},
        },
        {"id": "fine", "command": stdio_argv("echo")},
    ]
    async with serve(make_settings(tmp_path, servers)) as running_portico:
        loop = running_portico.portico.pool.get("loop")
        await eventually(lambda: loop.health.restarts >= 3)
        assert loop.health.state is Health.DOWN
        assert "exited (code 3)" in (loop.health.last_error or "")
        async with Client(running_portico.url, mode="legacy") as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert "fine__echo" in names
            assert not any(n.startswith("loop__") for n in names)
            assert (await client.call_tool("fine__echo", {"text": "unaffected"})).content


@pytest.mark.anyio
async def test_a_stdio_server_is_killed_when_portico_stops(tmp_path: Path) -> None:
    async with serve(make_settings(tmp_path, [{"id": "local", "command": stdio_argv("echo")}])) as running_portico:
        pid = running_portico.portico.pool.get("local").health.extra["pid"]
        os.kill(pid, 0)  # alive while Portico runs
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.mark.anyio
async def test_a_stdio_servers_stderr_is_captured(tmp_path: Path) -> None:
    servers = [
        {"id": "loop", "command": stdio_argv("crashy", ["--crash-on-start"]), "restart": {"initial_backoff_s": 5}}
    ]
    async with serve(make_settings(tmp_path, servers)) as running_portico:
        upstream = running_portico.portico.pool.get("loop")
        await eventually(lambda: upstream.health.restarts >= 1)
        assert list(upstream.stderr_tail), "nothing of the child's stderr was kept"  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_a_remote_server_that_starts_late_is_connected_when_it_comes_up(tmp_path: Path) -> None:
    port = free_port()
    servers = [
        {
            "id": "late",
            "url": f"http://127.0.0.1:{port}/mcp",
            "connect_timeout_s": 2,
            "restart": {"initial_backoff_s": 0.2, "max_backoff_s": 0.5},
        }
    ]
    async with serve(make_settings(tmp_path, servers)) as running_portico:
        late = running_portico.portico.pool.get("late")
        assert late.health.state is Health.DOWN
        async with running("echo", args=["--port", str(port)]):
            await eventually(lambda: late.ready)
            await eventually(lambda: bool(running_portico.portico.catalog.entries("tools", "late")))
            async with Client(running_portico.url, mode="2026-07-28") as client:
                assert (await client.call_tool("late__echo", {"text": "finally"})).content
