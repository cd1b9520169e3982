"""The inspection stage through a real Portico: the leaky fixture's poisoned answers are blocked, annotated or
flagged by threshold, benign ones pass unchanged, and every verdict is audited and counted without the text.

One Portico for the module, the same fixture behind three server ids with different inspection settings:
`leaky` (the defaults: annotate at 0.5, block at 0.8), `flagged` (`on_suspect: flag`) and `watch`
(`block_at: null`); and `echo`, whose answers are whatever the test sends (for the size cap).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from portico.errors import DENIED
from tests.inspection.support import last_audit, metric_lines
from tests.support.portico import Running, make_settings, serve_in_thread
from tests.upstreams.launch import stdio_argv
from tests.upstreams.leaky import PAGES

pytestmark = pytest.mark.anyio

ERAS = pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
MAX_SCORED = 4_096


@pytest.fixture(scope="module")
def portico(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp: Path = tmp_path_factory.mktemp("waf")
    leaky = stdio_argv("leaky")
    servers = [
        {"id": "leaky", "command": leaky},
        {"id": "flagged", "command": leaky},
        {"id": "watch", "command": leaky},
        {"id": "echo", "command": stdio_argv("echo")},
    ]
    inspection = {
        "learned": "off",  # the heuristic alone: these tests must not depend on the optional classifier
        "max_scored_chars": MAX_SCORED,
        "servers": {"flagged": {"on_suspect": "flag"}, "watch": {"block_at": None}},
    }
    with serve_in_thread(make_settings(tmp, servers, inspection=inspection)) as running:
        yield running


def texts(result: types.CallToolResult) -> list[str]:
    return [block.text for block in result.content if isinstance(block, types.TextContent)]


@ERAS
async def test_a_poisoned_tool_result_is_blocked_naming_its_signals_and_never_its_text(
    portico: Running, mode: str
) -> None:
    async with Client(portico.url, mode=mode) as client:
        with pytest.raises(MCPError) as blocked:
            await client.call_tool("leaky__page", {"name": "strong"})
    assert blocked.value.error.code == DENIED
    message = blocked.value.error.message
    assert "prompt injection" in message
    assert "override" in message
    assert "id_rsa" not in message
    assert "attacker" not in message
    assert blocked.value.error.data["signals"][:2] == ["override", "exfiltration"]
    record = await last_audit(portico, "page")
    assert record["outcome"] == "denied"
    assert record["inspection"]["action"] == "block"
    assert record["inspection"]["direction"] == "response"
    assert float(record["inspection"]["score"]) >= 0.8
    assert "id_rsa" not in str(record)
    assert "attacker" not in str(record)


async def test_a_suspect_tool_result_is_annotated_with_a_warning_the_model_reads_first(portico: Running) -> None:
    async with Client(portico.url, mode="2026-07-28") as client:
        result = await client.call_tool("leaky__page", {"name": "mild"})
    shown = texts(result)
    assert shown[1] == PAGES["mild"]  # the result itself, unchanged, after the warning
    assert shown[0].startswith("[Portico content inspection]")
    assert "addressed-to-ai" in shown[0]
    assert result.meta is not None
    assert result.meta["dev.portico/inspection"]["action"] == "annotate"
    record = await last_audit(portico, "page")
    assert (record["inspection"]["action"], float(record["inspection"]["score"])) == ("annotate", 0.5)


async def test_with_on_suspect_flag_a_suspect_result_passes_unchanged_but_is_audited_and_counted(
    portico: Running,
) -> None:
    counter = 'portico_inspection_verdicts_total{action="flag",direction="response"}'
    before = await metric_lines(portico, counter)
    async with Client(portico.url, mode="2026-07-28") as client:
        result = await client.call_tool("flagged__page", {"name": "mild"})
    assert texts(result) == [PAGES["mild"]]
    assert result.meta is None or "dev.portico/inspection" not in result.meta
    record = await last_audit(portico, "page")
    assert record["server"] == "flagged"
    assert record["inspection"] == {
        "score": "0.5",
        "signals": ["addressed-to-ai"],
        "action": "flag",
        "direction": "response",
    }
    after = await metric_lines(portico, counter)
    assert float(after[0].split()[-1]) == (float(before[0].split()[-1]) if before else 0.0) + 1


async def test_with_block_at_null_a_poisoned_result_is_annotated_not_blocked(portico: Running) -> None:
    async with Client(portico.url, mode="legacy") as client:
        result = await client.call_tool("watch__page", {"name": "strong"})
    shown = texts(result)
    assert shown[0].startswith("[Portico content inspection]")
    assert shown[1] == PAGES["strong"]


@pytest.mark.parametrize("page", ["article", "plain"])
async def test_a_benign_result_even_one_about_prompt_injection_passes_unchanged(portico: Running, page: str) -> None:
    async with Client(portico.url, mode="2026-07-28") as client:
        result = await client.call_tool("leaky__page", {"name": page})
    assert texts(result) == [PAGES[page]]
    record = await last_audit(portico, "page")
    assert record["inspection"]["action"] == "pass"


@ERAS
async def test_a_poisoned_embedded_resource_is_blocked(portico: Running, mode: str) -> None:
    async with Client(portico.url, mode=mode) as client:
        with pytest.raises(MCPError) as blocked:
            await client.call_tool("leaky__embedded", {"name": "strong"})
    assert blocked.value.error.code == DENIED


async def test_a_suspect_string_in_structured_content_is_scored(portico: Running) -> None:
    async with Client(portico.url, mode="2026-07-28") as client:
        result = await client.call_tool("leaky__page_report", {"name": "mild"})
    assert texts(result)[0].startswith("[Portico content inspection]")
    assert result.structured_content == {"title": "mild", "body": PAGES["mild"]}  # never changed


@ERAS
async def test_a_poisoned_resource_is_blocked_and_a_suspect_one_gets_a_warning_content_first(
    portico: Running, mode: str
) -> None:
    async with Client(portico.server_url("leaky"), mode=mode) as client:
        with pytest.raises(MCPError) as blocked:
            await client.read_resource("leaky://pages/strong")
        read = await client.read_resource("leaky://pages/mild")
    assert blocked.value.error.code == DENIED
    assert "resource content" in blocked.value.error.message
    first, second = read.contents
    assert isinstance(first, types.TextResourceContents)
    assert isinstance(second, types.TextResourceContents)
    assert first.text.startswith("[Portico content inspection]")
    assert str(first.uri) == "leaky://pages/mild"
    assert second.text == PAGES["mild"]


@ERAS
async def test_a_poisoned_prompt_is_blocked_and_a_suspect_one_gets_a_warning_message_first(
    portico: Running, mode: str
) -> None:
    async with Client(portico.url, mode=mode) as client:
        with pytest.raises(MCPError) as blocked:
            await client.get_prompt("leaky__briefing", {"name": "strong"})
        prompt = await client.get_prompt("leaky__briefing", {"name": "mild"})
    assert blocked.value.error.code == DENIED
    warning, original = prompt.messages
    assert isinstance(warning.content, types.TextContent)
    assert isinstance(original.content, types.TextContent)
    assert warning.content.text.startswith("[Portico content inspection]")
    assert original.content.text.endswith(PAGES["mild"])


async def test_arguments_are_not_scored_on_a_server_that_is_not_public_by_default(portico: Running) -> None:
    """Inbound scoring is for public servers (or `arguments: true`); here the echo comes back and is judged."""
    async with Client(portico.url, mode="2026-07-28") as client:
        with pytest.raises(MCPError) as blocked:
            await client.call_tool("echo__echo", {"text": PAGES["strong"]})
    assert blocked.value.error.data["direction"] == "response"
    record = await last_audit(portico, "echo")
    assert "inspection_request" not in record


async def test_an_oversized_result_is_scored_on_its_edges_and_says_so(portico: Running) -> None:
    filler = "The quarterly numbers are in the attached sheet. " * (2 * MAX_SCORED // 50)
    async with Client(portico.url, mode="2026-07-28") as client:
        with pytest.raises(MCPError) as blocked:
            await client.call_tool("echo__echo", {"text": filler + PAGES["strong"]})
        passed = await client.call_tool("echo__echo", {"text": filler + filler})
    assert "oversize" in blocked.value.error.data["signals"]
    assert texts(passed) == [filler + filler]
    record = await last_audit(portico, "echo")
    assert record["inspection"]["signals"] == ["oversize"]
    assert record["inspection"]["action"] == "pass"
