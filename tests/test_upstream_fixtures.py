"""The upstream fixture servers (tests/upstreams) behave as documented, in both protocol eras.

Each test starts a real fixture subprocess and talks to it with the official SDK client:
``mode="legacy"`` is the 2025-11-25 handshake, ``mode="auto"`` negotiates 2026-07-28 through
``server/discover``. The ``node`` test runs the official conformance suite against everything.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.session import ClientRequestContext
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # `python -m tests.upstreams.*` needs the repo root importable
    sys.path.insert(0, str(REPO_ROOT))

from tests.upstreams.launch import (  # noqa: E402
    FixtureStartError,
    launch_sync,
    launched,
    running,
    stdio_parameters,
)

ERAS = pytest.mark.parametrize("mode", ["legacy", "auto"], ids=["2025-11-25", "2026-07-28"])
WIRE_VERSION = {"legacy": "2025-11-25", "auto": "2026-07-28"}
CONFORMANCE = REPO_ROOT / "tools" / "node" / "bin" / "conformance"

CONFORMANCE_TOOLS = {
    "test_simple_text",
    "test_image_content",
    "test_audio_content",
    "test_embedded_resource",
    "test_multiple_content_types",
    "test_tool_with_logging",
    "test_tool_with_progress",
    "test_error_handling",
    "test_sampling",
    "test_elicitation",
    "test_elicitation_sep1034_defaults",
    "test_elicitation_sep1330_enums",
    "json_schema_2020_12_tool",
    "test_missing_capability",
    "test_streaming_elicitation",
    "test_logging_tool",
    "test_trigger_tool_change",
    "test_trigger_prompt_change",
    "test_reconnection",
    "test_input_required_result_elicitation",
    "test_input_required_result_multi_round",
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def answer_sampling(
    context: ClientRequestContext, params: types.CreateMessageRequestParams
) -> types.CreateMessageResult | types.CreateMessageResultWithTools | types.ErrorData:
    prompt = params.messages[0].content
    asked = prompt.text if isinstance(prompt, types.TextContent) else "?"
    return types.CreateMessageResult(
        role="assistant",
        content=types.TextContent(type="text", text=f"answer to {asked}"),
        model="fixture-model",
        stop_reason="endTurn",
    )


async def answer_elicitation(
    context: ClientRequestContext, params: types.ElicitRequestParams
) -> types.ElicitResult | types.ErrorData:
    return types.ElicitResult(action="accept", content={"name": "Alice", "color": "teal", "ok": True})


def first_text(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


@pytest.fixture
async def everything_url(anyio_backend: str) -> AsyncIterator[str]:
    async with launched("everything") as url:
        yield url


# --------------------------------------------------------------------------------------------
# everything.py


@pytest.mark.anyio
@ERAS
async def test_everything_lists_the_conformance_tools_resources_and_prompts(everything_url: str, mode: str) -> None:
    async with Client(everything_url, mode=mode, cache=None) as client:
        assert client.protocol_version == WIRE_VERSION[mode]
        tools = {tool.name for tool in (await client.list_tools()).tools}
        resources = {str(r.uri) for r in (await client.list_resources()).resources}
        templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
        prompts = {p.name for p in (await client.list_prompts()).prompts}
    assert tools >= CONFORMANCE_TOOLS
    assert resources >= {"test://static-text", "test://static-binary", "test://watched-resource"}
    assert templates == {"test://template/{id}/data"}
    assert prompts >= {
        "test_simple_prompt",
        "test_prompt_with_arguments",
        "test_prompt_with_embedded_resource",
        "test_prompt_with_image",
    }


@pytest.mark.anyio
@ERAS
async def test_everything_asks_the_clients_llm_through_sampling_in_either_era(everything_url: str, mode: str) -> None:
    # 2025: a sampling/createMessage request on the call's stream; 2026: an input_required round.
    async with Client(everything_url, mode=mode, cache=None, sampling_callback=answer_sampling) as client:
        result = await client.call_tool("test_sampling", {"prompt": "capital of France?"})
    assert first_text(result) == "LLM response: answer to capital of France?"


@pytest.mark.anyio
@ERAS
async def test_everything_completes_a_two_round_elicitation_in_either_era(everything_url: str, mode: str) -> None:
    async with Client(everything_url, mode=mode, cache=None, elicitation_callback=answer_elicitation) as client:
        result = await client.call_tool("test_input_required_result_multi_round", {})
    assert first_text(result) == "Alice likes teal"


@pytest.mark.anyio
@ERAS
async def test_everything_refuses_a_tool_needing_an_undeclared_client_capability(
    everything_url: str, mode: str
) -> None:
    async with Client(everything_url, mode=mode, cache=None) as client:
        with pytest.raises(MCPError) as refused:
            await client.call_tool("test_missing_capability", {})
    assert refused.value.code == types.MISSING_REQUIRED_CLIENT_CAPABILITY
    assert refused.value.data["requiredCapabilities"] == {"sampling": {}}


@pytest.mark.anyio
@ERAS
async def test_everything_reports_progress_zero_fifty_hundred(everything_url: str, mode: str) -> None:
    seen: list[tuple[float, float | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total))

    async with Client(everything_url, mode=mode, cache=None) as client:
        await client.call_tool("test_tool_with_progress", {}, progress_callback=on_progress)
    assert seen == [(0.0, 100.0), (50.0, 100.0), (100.0, 100.0)]


@pytest.mark.anyio
@ERAS
async def test_everything_reads_static_binary_and_templated_resources(everything_url: str, mode: str) -> None:
    async with Client(everything_url, mode=mode, cache=None) as client:
        static = (await client.read_resource("test://static-text")).contents[0]
        binary = (await client.read_resource("test://static-binary")).contents[0]
        templated = (await client.read_resource("test://template/42/data")).contents[0]
        with pytest.raises(MCPError) as missing:
            await client.read_resource("test://nope")
    assert isinstance(static, types.TextResourceContents)
    assert static.text == "This is the content of the static text resource."
    assert isinstance(binary, types.BlobResourceContents)
    assert binary.mime_type == "image/png"
    assert isinstance(templated, types.TextResourceContents)
    assert json.loads(templated.text) == {"id": "42", "templateTest": True, "data": "Data for ID: 42"}
    assert missing.value.code == types.INVALID_PARAMS


@pytest.mark.anyio
@ERAS
async def test_everything_runs_over_stdio_in_either_era(mode: str) -> None:
    async with Client(stdio_parameters("everything"), mode=mode, cache=None, sampling_callback=answer_sampling) as c:
        assert c.protocol_version == WIRE_VERSION[mode]
        result = await c.call_tool("test_sampling", {"prompt": "ping"})
    assert first_text(result) == "LLM response: answer to ping"


@pytest.mark.anyio
async def test_everything_announces_tool_list_changes_on_a_2026_listen_stream(everything_url: str) -> None:
    async with Client(everything_url, mode="auto", cache=None) as client:
        async with client.listen(tools_list_changed=True) as subscription:
            await client.call_tool("test_trigger_tool_change", {})
            with anyio.fail_after(10):
                event = await anext(aiter(subscription))
        tools = {tool.name for tool in (await client.list_tools()).tools}
    assert type(event).__name__ == "ToolsListChanged"
    assert "test_dynamic_tool" in tools


@pytest.mark.node
def test_conformance_suite_passes_in_full_against_everything_in_both_eras(tmp_path: Path) -> None:
    if not CONFORMANCE.exists():
        pytest.fail("Node toolchain missing: run tools/install-node.sh (./dev test does)")
    summaries: dict[str, dict[str, int]] = {}
    with launch_sync("everything") as url:
        for era in ("2026-07-28", "2025-11-25"):
            out = tmp_path / era
            argv = [str(CONFORMANCE), "server", "--url", str(url), "--suite", "all", "--spec-version", era]
            completed = subprocess.run(
                [*argv, "-o", str(out)],
                capture_output=True,
                text=True,
                timeout=240,
                check=False,
            )
            statuses: dict[str, int] = {}
            failures: list[str] = []
            for checks in out.glob("*/checks.json"):
                for check in json.loads(checks.read_text()):
                    statuses[check["status"]] = statuses.get(check["status"], 0) + 1
                    if check["status"] in ("FAILURE", "WARNING"):
                        failures.append(f"{checks.parent.name}: {check['id']}: {check.get('errorMessage')}")
            assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-2000:]
            assert failures == [], "\n".join(failures)
            summaries[era] = statuses
    # Pinned harness 0.2.0-alpha.12: 152 checks at 2026-07-28, 84 at 2025-11-25 (plus INFO rows).
    assert summaries["2026-07-28"]["SUCCESS"] >= 152
    assert summaries["2025-11-25"]["SUCCESS"] >= 84


# --------------------------------------------------------------------------------------------
# echo.py


@pytest.mark.anyio
@ERAS
async def test_echo_echoes_and_adds_in_either_era(mode: str) -> None:
    async with launched("echo") as url, Client(url, mode=mode, cache=None) as client:
        echoed = await client.call_tool("echo", {"text": "hi there"})
        added = await client.call_tool("add", {"a": 2, "b": 40})
    assert first_text(echoed) == "hi there"
    assert first_text(added) == "42"
    assert added.structured_content == {"result": 42}


@pytest.mark.anyio
@ERAS
async def test_echo_records_the_method_params_and_authorization_header_it_received(mode: str) -> None:
    async with launched("echo") as url, httpx2.AsyncClient(headers={"Authorization": "Bearer upstream-token"}) as http:
        async with Client(streamable_http_client(url, http_client=http), mode=mode, cache=None) as client:
            await client.call_tool("echo", {"text": "secret-ish"})
            via_tool = json.loads(first_text(await client.call_tool("received", {})))
        via_http = (await http.get(url.removesuffix("/mcp") + "/received")).json()
    calls = [r for r in via_http if r["method"] == "tools/call" and r["params"]["name"] == "echo"]
    assert len(calls) == 1
    assert calls[0]["params"]["arguments"] == {"text": "secret-ish"}
    assert calls[0]["headers"]["authorization"] == "Bearer upstream-token"
    assert calls[0]["protocol_version"] == WIRE_VERSION[mode]
    assert [r["method"] for r in via_tool] == [r["method"] for r in via_http][: len(via_tool)]


@pytest.mark.anyio
async def test_echo_speaks_the_legacy_http_sse_transport() -> None:
    async with (
        launched("echo", "sse") as url,
        Client(sse_client(url, headers={"Authorization": "Bearer over-sse"}), mode="legacy", cache=None) as client,
    ):
        assert url.endswith("/sse")
        echoed = await client.call_tool("echo", {"text": "old wire"})
        log = json.loads(first_text(await client.call_tool("received", {})))
    assert first_text(echoed) == "old wire"
    assert any(r["method"] == "tools/call" and r["headers"]["authorization"] == "Bearer over-sse" for r in log)


@pytest.mark.anyio
async def test_echo_over_stdio_records_requests_without_headers(tmp_path: Path) -> None:
    async with launched("echo", "stdio") as argv:
        # The argv works from any working directory (it puts the repo root on sys.path itself).
        params = StdioServerParameters(command=argv[0], args=argv[1:], cwd=str(tmp_path))
        async with Client(params, mode="legacy", cache=None) as client:
            await client.call_tool("echo", {"text": "pipe"})
            log = json.loads(first_text(await client.call_tool("received", {})))
    assert log[0]["method"] == "initialize"
    assert all(entry["headers"] is None for entry in log)


def test_launch_sync_stdio_argv_speaks_json_rpc_on_stdin_and_stdout(tmp_path: Path) -> None:
    request = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
    }
    with launch_sync("echo", "stdio") as argv:
        assert isinstance(argv, list)
        completed = subprocess.run(
            argv, input=json.dumps(request) + "\n", capture_output=True, text=True, cwd=tmp_path, timeout=60
        )
    reply = json.loads(completed.stdout.splitlines()[0])
    assert reply["id"] == 1
    assert reply["result"]["serverInfo"]["name"] == "portico-echo"


# --------------------------------------------------------------------------------------------
# slow.py


async def wait_for_stats(client: Client, predicate: Any) -> dict[str, int]:
    """Poll ``stats()`` (one round trip per look, no sleeping) until `predicate` holds, within 10 s."""
    with anyio.fail_after(10):
        while True:
            stats: dict[str, int] = json.loads(first_text(await client.call_tool("stats", {})))
            if predicate(stats):
                return stats


@pytest.mark.anyio
@ERAS
async def test_slow_sleep_stops_upstream_when_the_client_cancels(mode: str) -> None:
    async with launched("slow") as url, Client(url, mode=mode, cache=None) as client:
        with anyio.move_on_after(30):  # bounded; the scope is cancelled as soon as the call started
            async with anyio.create_task_group() as tg:

                async def call() -> None:
                    await client.call_tool("sleep", {"seconds": 60})

                tg.start_soon(call)
                await wait_for_stats(client, lambda s: s["started"] == 1)
                tg.cancel_scope.cancel()
        stats = await wait_for_stats(client, lambda s: s["cancelled"] == 1)
    assert stats == {"started": 1, "completed": 0, "cancelled": 1}


@pytest.mark.anyio
async def test_slow_sleep_completes_and_reports_progress() -> None:
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    async with launched("slow") as url, Client(url, mode="legacy", cache=None) as client:
        result = await client.call_tool("sleep", {"seconds": 1.5}, progress_callback=on_progress)
    assert first_text(result) == "slept 1.5s"
    assert seen == [1.0, 1.5]


@pytest.mark.anyio
@ERAS
async def test_slow_hang_never_answers_so_the_client_times_out(mode: str) -> None:
    async with launched("slow") as url, Client(url, mode=mode, cache=None) as client:
        started = time.monotonic()
        with pytest.raises(MCPError) as timed_out:
            await client.call_tool("hang", {}, read_timeout_seconds=1.0)
        assert time.monotonic() - started < 10
        stats = await wait_for_stats(client, lambda s: s["started"] == 1)
    assert stats["completed"] == 0
    assert timed_out.value.code == types.REQUEST_TIMEOUT


# --------------------------------------------------------------------------------------------
# crashy.py


@pytest.mark.anyio
async def test_crashy_exits_with_code_3_when_crash_is_called() -> None:
    async with running("crashy") as fixture:
        async with Client(fixture.url, mode="legacy", cache=None, read_timeout_seconds=10) as client:
            assert first_text(await client.call_tool("ok", {})) == "still alive"
            with pytest.raises(Exception):  # noqa: B017, PT011 - the connection just dies; any error will do
                await client.call_tool("crash", {})
        with anyio.fail_after(10):
            assert await fixture.process.wait() == 3  # type: ignore[misc]


@pytest.mark.anyio
async def test_crashy_with_crash_on_start_exits_3_before_listening() -> None:
    with pytest.raises(FixtureStartError, match="code 3"):
        async with launched("crashy", args=["--crash-on-start"]):
            pass


@pytest.mark.anyio
async def test_crashy_over_stdio_with_crash_on_start_fails_the_connect() -> None:
    with anyio.fail_after(30), pytest.raises(Exception):  # noqa: B017, PT011 - whatever the SDK raises for EOF
        async with Client(stdio_parameters("crashy", ["--crash-on-start"]), mode="legacy", cache=None):
            pass


# --------------------------------------------------------------------------------------------
# huge.py


@pytest.mark.anyio
@ERAS
async def test_huge_returns_exactly_n_kibibytes_of_text(mode: str) -> None:
    async with launched("huge") as url, Client(url, mode=mode, cache=None) as client:
        result = await client.call_tool("big", {"n_kb": 512})
    body = first_text(result)
    assert len(body.encode()) == 512 * 1024
    assert body.startswith("0000000000:")
    assert result.structured_content is None


# --------------------------------------------------------------------------------------------
# changing.py


@pytest.mark.anyio
async def test_changing_pushes_list_changed_and_rug_pulls_the_description_in_2025() -> None:
    changed = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    async with launched("changing") as url, Client(url, mode="legacy", cache=None, message_handler=on_message) as c:
        assert c.server_capabilities.tools is not None
        assert c.server_capabilities.tools.list_changed is True
        before = {t.name: t.description for t in (await c.list_tools()).tools}
        await c.call_tool("mutate", {})
        with anyio.fail_after(10):
            await changed.wait()
        after = {t.name: t.description for t in (await c.list_tools()).tools}
    assert before["weather"] == "Returns the current weather for a city."
    assert "<IMPORTANT>" in (after["weather"] or "")
    assert set(after) - set(before) == {"added_1"}


@pytest.mark.anyio
async def test_changing_announces_mutations_on_a_2026_listen_stream() -> None:
    async with launched("changing") as url, Client(url, mode="auto", cache=None) as client:
        async with client.listen(tools_list_changed=True) as subscription:
            await client.call_tool("mutate", {})
            with anyio.fail_after(10):
                event = await anext(aiter(subscription))
        names = {tool.name for tool in (await client.list_tools()).tools}
    assert type(event).__name__ == "ToolsListChanged"
    assert "added_1" in names


# --------------------------------------------------------------------------------------------
# launch.py


def test_launch_sync_yields_a_listening_url_and_stops_the_server_on_exit() -> None:
    with launch_sync("echo") as url:
        assert isinstance(url, str)
        assert url.startswith("http://127.0.0.1:")
        assert url.endswith("/mcp")
        assert httpx2.get(url.removesuffix("/mcp") + "/received", timeout=10).status_code == 200
    with pytest.raises(httpx2.ConnectError):
        httpx2.get(url.removesuffix("/mcp") + "/received", timeout=10)


def test_http_fixtures_reject_a_foreign_host_header_against_dns_rebinding() -> None:
    with launch_sync("echo") as url:
        assert isinstance(url, str)
        response = httpx2.post(
            url,
            headers={"Host": "evil.example", "Content-Type": "application/json", "Accept": "application/json"},
            content=b"{}",
            timeout=10,
        )
    assert response.status_code in (403, 421)


def leaves(error: BaseException) -> list[BaseException]:
    """The non-group exceptions inside (nested) exception groups; the SDK client raises groups."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in leaves(inner)]
    return [error]


@pytest.mark.anyio
async def test_huge_result_over_1_mib_exceeds_the_sdk_clients_sse_event_cap_only_in_2025() -> None:
    # 2025 era: the result is one SSE event and mcp's client caps events at 1 MiB by default
    # (streamable_http_client(max_sse_event_size=...)); 2026 era: a plain JSON body, no cap.
    async with launched("huge") as url:
        async with Client(url, mode="auto", cache=None) as modern:
            assert len(first_text(await modern.call_tool("big", {"n_kb": 1100}))) == 1100 * 1024
        with pytest.raises(BaseExceptionGroup) as too_big:  # the error surfaces when the client exits
            async with Client(url, mode="legacy", cache=None) as legacy:
                await legacy.call_tool("big", {"n_kb": 1100})
    errors = leaves(too_big.value)
    assert any(isinstance(e, MCPError) and "exceeded the 1048576 byte limit" in e.message for e in errors), errors
