"""A new user lists and calls the tools of every server through one URL with the MCP Inspector CLI.

The Inspector (`tools/node/bin/mcp-inspector --cli`, @modelcontextprotocol/inspector 2.12.0) is a
real, independent client. Portico fronts three fixture upstreams, one per way of reaching a server:

* `every`: the everything-shaped server over Streamable HTTP (both eras upstream);
* `local`: the echo server as a stdio program Portico runs itself;
* `old`: the echo server on the legacy HTTP+SSE transport.

Each test runs in both protocol eras (`--protocol-era legacy` negotiates 2025-11-25 with an
initialize handshake; `--protocol-era modern` speaks the stateless 2026-07-28 wire).

Inspector exit codes used here: 0 ok, 5 tool error. An unknown tool never reaches Portico: the
Inspector looks the name up in `tools/list` first and exits 5 with `{"error": {"code":
"tool_not_found"}}` on stderr. A tool that answers `isError: true` (a real round trip) exits 5 with
the result on stdout and `{"error": {"code": "tool_is_error"}}` on stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.portico import Running, make_settings, serve_in_thread
from tests.upstreams.launch import REPO_ROOT, running_sync, stdio_argv

pytestmark = pytest.mark.node

INSPECTOR = REPO_ROOT / "tools" / "node" / "bin" / "mcp-inspector"
RUN_TIMEOUT_S = 60
CONNECT_TIMEOUT_MS = "20000"

ERAS = ["legacy", "modern"]
WIRE_VERSION = {"legacy": "2025-11-25", "modern": "2026-07-28", "auto": "2026-07-28"}
SIMPLE_TEXT = "This is a simple text response for testing."


@dataclass
class Outcome:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def result(self) -> dict[str, Any]:
        """The `result` of the one JSON object `--format json` prints on stdout."""
        assert self.stdout.strip(), f"no output on stdout\n{self}"
        return dict(json.loads(self.stdout)["result"])

    @property
    def error(self) -> dict[str, Any]:
        """The error envelope: the last JSON line on stderr, `{"error": {"code": ..., "message": ...}}`."""
        lines = [line for line in self.stderr.splitlines() if line.strip().startswith("{")]
        assert lines, f"no JSON error envelope on stderr\n{self}"
        return dict(json.loads(lines[-1])["error"])

    def __str__(self) -> str:
        command = " ".join(self.argv)
        return f"$ {command}\n(exit {self.returncode})\nstdout: {self.stdout[-3000:]}\nstderr: {self.stderr[-3000:]}"


@dataclass
class Inspector:
    home: Path

    def run(self, url: str, era: str, method: str, *args: str) -> Outcome:
        argv = [
            str(INSPECTOR),
            "--cli",
            url,
            "--transport",
            "http",
            "--protocol-era",
            era,
            "--connect-timeout",
            CONNECT_TIMEOUT_MS,
            "--format",
            "json",
            "--quiet",
            "--method",
            method,
            *args,
        ]
        # A private HOME: the Inspector's catalog, client config and OAuth store stay out of the user's.
        env = {**os.environ, "HOME": str(self.home)}
        env.pop("MCP_CATALOG_PATH", None)
        env.pop("MCP_CLIENT_CONFIG_PATH", None)
        try:
            completed = subprocess.run(
                argv, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False, env=env, cwd=self.home
            )
        except subprocess.TimeoutExpired as expired:
            pytest.fail(f"the Inspector did not finish within {RUN_TIMEOUT_S}s: {' '.join(argv)}\n{expired.stderr!r}")
        return Outcome(argv, completed.returncode, completed.stdout, completed.stderr)

    def ok(self, url: str, era: str, method: str, *args: str) -> dict[str, Any]:
        outcome = self.run(url, era, method, *args)
        assert outcome.returncode == 0, str(outcome)
        return outcome.result


@pytest.fixture(scope="module")
def inspector(tmp_path_factory: pytest.TempPathFactory) -> Inspector:
    if not INSPECTOR.exists():
        pytest.fail("Node toolchain missing: run tools/install-node.sh (./dev test does)")
    return Inspector(tmp_path_factory.mktemp("inspector-home"))


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory, inspector: Inspector) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("inspector-portico")
    with running_sync("everything") as every, running_sync("echo", "sse") as legacy_sse:
        servers: list[dict[str, Any]] = [
            {"id": "every", "url": every.url},
            {"id": "local", "command": stdio_argv("echo")},
            {"id": "old", "url": legacy_sse.url, "transport": "sse"},
        ]
        with serve_in_thread(make_settings(tmp, servers)) as running:
            yield running


def call_args(arguments: dict[str, Any]) -> tuple[str, ...]:
    return ("--tool-args-json", json.dumps(arguments)) if arguments else ()


def texts(result: dict[str, Any]) -> list[str]:
    return [str(block.get("text")) for block in result.get("content", []) if block.get("type") == "text"]


@pytest.mark.parametrize("era", [*ERAS, "auto"])
def test_the_inspector_negotiates_the_era_it_asks_for_at_the_portal(
    inspector: Inspector, portal: Running, era: str
) -> None:
    result = inspector.ok(portal.url, era, "initialize")
    assert result["protocolVersion"] == WIRE_VERSION[era]
    assert result["serverInfo"]["name"] == "portico"
    assert "tools" in result["capabilities"]


@pytest.mark.parametrize("era", ERAS)
def test_the_inspector_lists_the_tools_of_all_three_servers_through_one_url(
    inspector: Inspector, portal: Running, era: str
) -> None:
    names = {tool["name"] for tool in inspector.ok(portal.url, era, "tools/list")["tools"]}
    assert {"every__test_simple_text", "every__test_error_handling", "local__echo", "local__add"} <= names
    assert {"old__echo", "old__add"} <= names
    assert {name.split("__", 1)[0] for name in names} == {"every", "local", "old"}


@pytest.mark.parametrize("era", ERAS)
@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        ("every__test_simple_text", {}, SIMPLE_TEXT),
        ("local__echo", {"text": "hi from the inspector"}, "hi from the inspector"),
        ("old__add", {"a": 2, "b": 40}, "42"),
    ],
    ids=["http", "stdio", "legacy-sse"],
)
def test_the_inspector_calls_a_tool_of_each_server_through_one_url(
    inspector: Inspector, portal: Running, era: str, tool: str, arguments: dict[str, Any], expected: str
) -> None:
    result = inspector.ok(portal.url, era, "tools/call", "--tool-name", tool, *call_args(arguments))
    assert result.get("isError") is not True
    assert texts(result) == [expected]


@pytest.mark.parametrize("era", ERAS)
def test_the_inspector_reads_a_resource_and_gets_a_prompt_through_one_url(
    inspector: Inspector, portal: Running, era: str
) -> None:
    resource = inspector.ok(portal.url, era, "resources/read", "--uri", "test://static-text")
    prompt = inspector.ok(portal.url, era, "prompts/get", "--prompt-name", "every__test_simple_prompt")
    assert [c.get("text") for c in resource["contents"]] == ["This is the content of the static text resource."]
    assert resource["contents"][0]["uri"] == "test://static-text"
    assert [m["content"]["text"] for m in prompt["messages"]] == ["This is a simple prompt for testing."]


@pytest.mark.parametrize("era", ERAS)
def test_an_unknown_tool_makes_the_inspector_exit_5_with_a_tool_not_found_error(
    inspector: Inspector, portal: Running, era: str
) -> None:
    outcome = inspector.run(portal.url, era, "tools/call", "--tool-name", "every__no_such_tool")
    assert outcome.returncode == 5, str(outcome)
    assert outcome.error["code"] == "tool_not_found", str(outcome)
    assert outcome.stdout.strip() == ""


@pytest.mark.parametrize("era", ERAS)
def test_a_tool_error_reaches_the_inspector_as_is_error_with_exit_code_5(
    inspector: Inspector, portal: Running, era: str
) -> None:
    outcome = inspector.run(portal.url, era, "tools/call", "--tool-name", "every__test_error_handling")
    assert outcome.returncode == 5, str(outcome)
    assert outcome.error["code"] == "tool_is_error", str(outcome)
    assert outcome.result["isError"] is True
    assert texts(outcome.result) == ["This tool intentionally returns an error for testing"]


@pytest.mark.parametrize("era", ERAS)
@pytest.mark.parametrize(
    ("server_id", "tool", "arguments", "expected"),
    [
        ("every", "test_simple_text", {}, SIMPLE_TEXT),
        ("local", "echo", {"text": "straight to local"}, "straight to local"),
        ("old", "add", {"a": 1, "b": 2}, "3"),
    ],
)
def test_the_inspector_lists_and_calls_one_server_alone_at_its_own_url(
    inspector: Inspector,
    portal: Running,
    era: str,
    server_id: str,
    tool: str,
    arguments: dict[str, Any],
    expected: str,
) -> None:
    url = portal.server_url(server_id)
    handshake = inspector.ok(url, era, "initialize")
    names = {t["name"] for t in inspector.ok(url, era, "tools/list")["tools"]}
    result = inspector.ok(url, era, "tools/call", "--tool-name", tool, *call_args(arguments))
    assert handshake["protocolVersion"] == WIRE_VERSION[era]
    assert tool in names
    assert not any("__" in name for name in names), names
    assert texts(result) == [expected]
