"""Code Mode through a real Portico: two tools instead of many, code that chains tools on different servers, and
every inner call governed (policy, DLP, argument schemas) and audited with its parent — for both engines."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client

from tests.audit.support import records
from tests.support.portico import Running, make_settings, serve
from tests.support.waits import eventually, until
from tests.upstreams.launch import running, stdio_argv

pytestmark = pytest.mark.anyio

CARD = "4111 1111 1111 1111"
POLICY = {
    "rules": [
        {"id": "everything", "effect": "permit"},
        {"id": "no-text-sums", "effect": "forbid", "servers": ["text"], "tools": ["add"]},
    ]
}
DLP = {"rules": [{"id": "no-cards-to-text", "action": "block", "direction": "request", "detectors": ["card"],
                  "servers": ["text"]}]}  # fmt: skip
ENGINES = [pytest.param("javascript", id="js"), pytest.param("python", id="python")]


@asynccontextmanager
async def portal(tmp_path: Path, **codemode: Any) -> AsyncIterator[tuple[Running, str]]:
    async with running("echo") as text_server:
        servers = [{"id": "calc", "command": stdio_argv("echo")}, {"id": "text", "url": text_server.url}]
        settings = make_settings(
            tmp_path,
            servers,
            policy=POLICY,
            dlp=DLP,
            codemode={"mode": "opt_in", **codemode},
        )
        async with serve(settings) as served:
            yield served, text_server.url.removesuffix("/mcp")


def code_url(served: Running, engine: str) -> str:
    return f"{served.url}?codemode=search_and_execute&lang={engine}"


def answer(result: Any) -> dict[str, Any]:
    assert result.content, result
    return json.loads(result.content[0].text)


async def received(text_base: str) -> list[dict[str, Any]]:
    async with httpx2.AsyncClient() as http:
        return (await http.get(f"{text_base}/received")).json()


SEARCH = {
    "javascript": "tools.map(t => t.name)",
    "python": "[t['name'] for t in tools]",
}
CHAIN = {
    "javascript": """
const sum = await codemode.calc__add({a: 2, b: 3});  // structuredContent, as its outputSchema declares
const said = await codemode.text__echo({text: `the sum is ${sum.result}`});
return said.result;
""",
    "python": """
total = await codemode.calc__add(a=2, b=3)
said = await codemode.text__echo(text=f"the sum is {total['result']}")
said['result']
""",
}


@pytest.mark.requirement("codemode:two-tools")
@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_code_mode_replaces_the_tool_list_with_search_and_execute_only_when_asked(
    tmp_path: Path, mode: str
) -> None:
    async with portal(tmp_path) as (served, _):
        async with Client(code_url(served, "javascript"), mode=mode) as client:
            code = [t.name for t in (await client.list_tools()).tools]
        async with Client(served.url, mode=mode) as client:
            native = {t.name for t in (await client.list_tools()).tools}
    assert code == ["search", "execute"]
    assert {"calc__add", "calc__echo", "text__echo"} <= native


@pytest.mark.requirement("codemode:search-governed")
@pytest.mark.parametrize("engine", ENGINES)
async def test_search_sees_only_the_tools_the_caller_may_call(tmp_path: Path, engine: str) -> None:
    async with portal(tmp_path) as (served, _), Client(code_url(served, engine), mode="2026-07-28") as client:
        result = await client.call_tool("search", {"code": SEARCH[engine]})
    names = answer(result)["result"]
    assert "calc__add" in names
    assert "text__echo" in names
    assert "text__add" not in names  # forbidden by policy: invisible to search as to tools/list


@pytest.mark.requirement("codemode:end-to-end")
@pytest.mark.parametrize("engine", ENGINES)
async def test_a_scripted_client_searches_then_executes_a_chain_across_two_servers(tmp_path: Path, engine: str) -> None:
    search = {
        "javascript": "(await codemode.search({query: 'add numbers'})).map(t => t.name)",
        "python": "[t['name'] for t in await codemode.search(query='add numbers')]",
    }
    describe = {
        "javascript": "await codemode.describe({name: 'calc__add'})",
        "python": "await codemode.describe(name='calc__add')",
    }
    async with portal(tmp_path) as (served, _):
        async with Client(code_url(served, engine), mode="2026-07-28") as client:
            found = answer(await client.call_tool("search", {"code": search[engine]}))["result"]
            signature = answer(await client.call_tool("search", {"code": describe[engine]}))["result"]
            chained = answer(await client.call_tool("execute", {"code": CHAIN[engine]}))
        assert served.portico.audit is not None
        await served.portico.audit.flush()
        assert served.portico.store is not None
        audit = await records(served.portico.store)
    assert found[0] == "calc__add"
    assert "calc__add" in signature
    assert chained["result"] == "the sum is 5"
    assert [c["tool"] for c in chained["calls"]] == ["calc__add", "text__echo"]
    assert all(c["ok"] for c in chained["calls"])
    outer = [r for r in audit if r.method == "tools/call" and r.target == "execute"]
    assert len(outer) == 1
    inner_calls = [r for r in audit if r.parent_id == outer[0].id and r.method == "tools/call"]
    assert sorted((r.server_id, r.target, r.decision) for r in inner_calls) == [
        ("calc", "add", "allow"),
        ("text", "echo", "allow"),
    ]
    assert outer[0].extra["codemode"]["calls"] == 2


@pytest.mark.requirement("codemode:execute-governed")
@pytest.mark.parametrize("engine", ENGINES)
async def test_a_tool_the_caller_may_not_call_does_not_exist_in_execute(tmp_path: Path, engine: str) -> None:
    code = {
        "javascript": "await codemode.text__add({a: 1, b: 2})",
        "python": "await codemode.text__add(a=1, b=2)",
    }
    async with portal(tmp_path, type_check=True) as (served, text_base):
        async with Client(code_url(served, engine), mode="2026-07-28") as client:
            result = await client.call_tool("execute", {"code": code[engine]})
        upstream_saw = await received(text_base)
    failure = answer(result)
    assert result.is_error
    assert failure["error"]["type"] == ("runtime" if engine == "javascript" else "type")
    assert "text__add" in failure["error"]["message"]
    assert failure["calls"] == []
    assert not [m for m in upstream_saw if m["method"] == "tools/call"]


@pytest.mark.requirement("codemode:execute-governed")
@pytest.mark.parametrize("engine", ENGINES)
async def test_a_dlp_blocked_inner_call_is_blocked_and_never_reaches_the_upstream(tmp_path: Path, engine: str) -> None:
    code = {
        "javascript": f"""
try {{ await codemode.text__echo({{text: "card {CARD}"}}); return "sent"; }}
catch (e) {{ return "refused: " + e.message; }}
""",
        "python": f"""
try:
    await codemode.text__echo(text="card {CARD}")
    outcome = "sent"
except Exception as e:
    outcome = "refused: " + str(e)
outcome
""",
    }
    async with portal(tmp_path) as (served, text_base):
        async with Client(code_url(served, engine), mode="2026-07-28") as client:
            result = answer(await client.call_tool("execute", {"code": code[engine]}))
        assert served.portico.audit is not None
        await served.portico.audit.flush()
        assert served.portico.store is not None
        audit = await records(served.portico.store)
        upstream_saw = await received(text_base)
    assert result["result"].startswith("refused: ")
    assert "no-cards-to-text" in result["result"]
    assert result["calls"] == [{"tool": "text__echo", "ok": False, "ms": result["calls"][0]["ms"]}]
    assert CARD not in json.dumps(upstream_saw)
    assert not [m for m in upstream_saw if m["method"] == "tools/call"]
    blocked = [r for r in audit if r.parent_id is not None and r.rule == "dlp.no-cards-to-text"]
    assert len(blocked) == 1
    assert blocked[0].decision == "deny"


@pytest.mark.parametrize("engine", ENGINES)
async def test_arguments_are_checked_against_the_tools_schema_before_anything_is_sent(
    tmp_path: Path, engine: str
) -> None:
    code = {
        "javascript": "let m = 'sent';\ntry { await codemode.text__echo({txt: 'x'}); } catch (e) { m = e.message; }\nm",
        "python": """
try:
    await codemode.text__echo(**{"txt": "x"})
    outcome = "sent"
except Exception as e:
    outcome = str(e)
outcome
""",
    }
    async with portal(tmp_path) as (served, text_base):
        async with Client(code_url(served, engine), mode="2026-07-28") as client:
            result = answer(await client.call_tool("execute", {"code": code[engine]}))
        upstream_saw = await received(text_base)
    message = result.get("result") or result.get("error", {}).get("message", "")
    assert "text" in message  # names the missing / unexpected argument
    assert not [m for m in upstream_saw if m["method"] == "tools/call"]
    assert result["calls"] == []


@pytest.mark.requirement("codemode:hostile")
@pytest.mark.parametrize("engine", ENGINES)
async def test_an_endless_loop_is_stopped_at_the_deadline_and_portico_keeps_serving(
    tmp_path: Path, engine: str
) -> None:
    loop = {"javascript": "while (true) {}", "python": "while True:\n    pass"}
    async with portal(tmp_path, limits={"wall_s": 1.0, "cpu_s": 1.0}) as (served, _):
        async with Client(code_url(served, engine), mode="2026-07-28") as client:
            began = time.monotonic()
            result = await client.call_tool("execute", {"code": loop[engine]})
            elapsed = time.monotonic() - began
            still = answer(await client.call_tool("execute", {"code": CHAIN[engine]}))
        async with Client(served.url, mode="2026-07-28") as plain:
            assert not (await plain.call_tool("calc__add", {"a": 1, "b": 1})).is_error
    assert result.is_error
    assert answer(result)["error"]["type"] == "timeout"
    assert elapsed < 1.0 + 0.5 + 0.5  # the deadline, its 0.5 s allowance, and the HTTP round trip
    assert still["result"] == "the sum is 5"


async def test_in_code_mode_other_tools_cannot_be_called_directly(tmp_path: Path) -> None:
    async with portal(tmp_path) as (served, _), Client(code_url(served, "javascript"), mode="2026-07-28") as client:
        with pytest.raises(Exception, match="only the search and execute tools"):
            await client.call_tool("calc__add", {"a": 1, "b": 2})


async def test_a_long_reply_is_cut_with_a_marker_telling_the_model_to_narrow_it(tmp_path: Path) -> None:
    async with (
        portal(tmp_path, limits={"max_result_chars": 500}) as (served, _),
        Client(code_url(served, "javascript"), mode="2026-07-28") as client,
    ):
        result = await client.call_tool("execute", {"code": "'x'.repeat(5000)"})
    text = result.content[0].text
    assert "--- TRUNCATED ---" in text
    assert len(text) < 800


async def test_with_code_mode_off_the_query_parameter_changes_nothing(tmp_path: Path) -> None:
    async with (
        portal(tmp_path, mode="off") as (served, _),
        Client(code_url(served, "javascript"), mode="2026-07-28") as client,
    ):
        names = {t.name for t in (await client.list_tools()).tools}
    assert "calc__add" in names
    assert "execute" not in names


async def test_with_code_mode_enforced_every_request_gets_the_two_tools(tmp_path: Path) -> None:
    async with (
        portal(tmp_path, mode="enforced", cloudflare_names=True) as (served, _),
        Client(f"{served.url}?codemode=off", mode="2026-07-28") as client,
    ):
        names = [t.name for t in (await client.list_tools()).tools]
    assert names == ["portal_codemode_search", "portal_codemode_execute"]


async def test_codemode_stats_prints_native_and_code_mode_tokens_per_url(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from portico.cli.codemode import app

    config = tmp_path / "portico.yaml"
    argv = json.dumps(stdio_argv("echo"))
    config.write_text(
        f"""store: {{url: "sqlite:///{tmp_path / "portico.db"}"}}
servers:
  - {{id: calc, command: {argv}}}
  - {{id: text, command: {argv}}}
"""
    )
    result = await anyio.to_thread.run_sync(lambda: CliRunner().invoke(app, ["stats", "--config", str(config)]))
    assert result.exit_code == 0, result.output
    header, *lines = result.stdout.splitlines()
    rows = {line.split("\t")[0]: dict(zip(header.split("\t"), line.split("\t"), strict=False)) for line in lines}
    assert set(rows) == {"/mcp", "/servers/calc/mcp", "/servers/text/mcp"}
    assert rows["/mcp"]["tools"] == str(2 * 3)  # echo, add, received on each server
    assert int(rows["/mcp"]["javascript_tokens"]) < 600
    assert int(rows["/mcp"]["native_tokens"]) > int(rows["/servers/calc/mcp"]["native_tokens"])


async def test_the_token_gauges_show_native_and_code_mode_counts(tmp_path: Path) -> None:
    async with portal(tmp_path) as (served, _), httpx2.AsyncClient() as http:

        async def gauges() -> str:
            return (await http.get(served.base + "/metrics")).text

        text = await until(gauges, lambda t: 'portal="/mcp",surface="native"' in t)
    assert 'portico_codemode_tool_list_tokens{portal="/mcp",surface="codemode"}' in text


LOOP_AFTER_AWAIT = {
    "javascript": "await codemode.calc__add({a: 1, b: 1});\nwhile (true) {}",
    "python": "await codemode.calc__add(a=1, b=1)\nwhile True:\n    pass",
}
HOSTILE = [
    pytest.param("javascript", LOOP_AFTER_AWAIT["javascript"], {"timeout"}, id="js-loop-after-await"),
    pytest.param("javascript", "const a = [];\nwhile (true) { a.push(new Array(1e6).fill(1)); }", {"memory"},
                 id="js-memory"),
    pytest.param("javascript", "const f = (n) => f(n + 1); f(0)", {"runtime"}, id="js-recursion"),
    pytest.param("javascript", "for (let i = 0; i < 10; i++) { await codemode.calc__add({a: i, b: 1}); }", {"limit"},
                 id="js-too-many-calls"),
    pytest.param("javascript", "while (true) { console.log('x'.repeat(10000)); }", {"timeout", "limit"},
                 id="js-output-flood"),
    pytest.param("javascript", "require('fs').readFileSync('/etc/passwd')", {"runtime"}, id="js-files"),
    pytest.param("javascript", "await fetch('http://127.0.0.1:1/')", {"runtime"}, id="js-network"),
    pytest.param("python", LOOP_AFTER_AWAIT["python"], {"timeout"}, id="py-loop-after-await"),
    pytest.param("python", "x = [0] * (10 ** 10)", {"memory"}, id="py-memory"),
    pytest.param("python", "def f(n):\n    return f(n + 1)\nf(0)", {"runtime"}, id="py-recursion"),
    pytest.param("python", "for i in range(10):\n    await codemode.calc__add(a=i, b=1)", {"limit"},
                 id="py-too-many-calls"),
    pytest.param("python", "while True:\n    print('x' * 10000)", {"timeout", "limit"}, id="py-output-flood"),
    pytest.param("python", "open('/etc/passwd').read()", {"runtime", "type"}, id="py-files"),
    pytest.param("python", "import os\nos.environ", {"runtime", "type"}, id="py-environment"),
    pytest.param("python", "import socket\nsocket.socket()", {"runtime", "type"}, id="py-network"),
]  # fmt: skip


@pytest.mark.requirement("codemode:hostile")
@pytest.mark.parametrize(("engine", "code", "kinds"), HOSTILE)
async def test_hostile_code_is_contained_and_portico_keeps_serving(
    tmp_path: Path, engine: str, code: str, kinds: set[str]
) -> None:
    limits = {"wall_s": 2.0, "cpu_s": 1.0, "memory_mb": 32, "max_calls": 5, "max_log_bytes": 4096}
    async with portal(tmp_path, limits=limits) as (served, _):
        async with Client(code_url(served, engine), mode="2026-07-28") as client:
            began = time.monotonic()
            result = await client.call_tool("execute", {"code": code})
            elapsed = time.monotonic() - began
            after = answer(await client.call_tool("execute", {"code": CHAIN[engine]}))
        async with Client(served.url, mode="2026-07-28") as plain:
            assert not (await plain.call_tool("calc__add", {"a": 1, "b": 1})).is_error
    body = answer(result)
    assert result.is_error, body
    assert body["error"]["type"] in kinds, body
    assert elapsed < 2.0 + 0.5 + 0.5  # deadline + its allowance + the HTTP round trip
    assert "root:" not in json.dumps(body)
    assert len(body.get("logs", "")) <= 4096 + 100
    assert after["result"] == "the sum is 5"


@pytest.mark.parametrize("engine", ENGINES)
async def test_the_sandbox_sees_no_process_environment_or_module_loader(tmp_path: Path, engine: str) -> None:
    code = {
        "javascript": "[typeof process, typeof require, typeof fetch, typeof Deno, typeof Bun].join(',')",
        "python": "import sys\nsorted(sys.modules)",
    }
    async with portal(tmp_path) as (served, _), Client(code_url(served, engine), mode="2026-07-28") as client:
        result = await client.call_tool("execute", {"code": code[engine]})
    body = answer(result)
    if engine == "javascript":
        assert body["result"] == "undefined,undefined,undefined,undefined,undefined"
    else:
        assert result.is_error or "os" not in body["result"]


async def test_a_caller_cannot_hold_more_runs_than_its_share_at_once(tmp_path: Path) -> None:
    slow = "await new Promise((resolve) => setTimeout(resolve, 1500)); 'slow done'"
    async with (
        portal(tmp_path, runs_per_caller=1) as (served, _),
        Client(code_url(served, "javascript"), mode="2026-07-28") as first,
        Client(code_url(served, "javascript"), mode="2026-07-28") as second,
    ):
        outcomes: dict[str, Any] = {}

        async def run_slow() -> None:
            outcomes["slow"] = answer(await first.call_tool("execute", {"code": slow}))

        async with anyio.create_task_group() as tg:
            tg.start_soon(run_slow)
            await eventually(lambda: served.portico.codemode.runs_in_progress == 1)  # the slow run holds its slot
            busy = await second.call_tool("execute", {"code": "1 + 1"})
        after = answer(await second.call_tool("execute", {"code": "1 + 1"}))
    assert busy.is_error
    assert answer(busy)["error"]["type"] == "limit"
    assert "runs in progress" in answer(busy)["error"]["message"]
    assert outcomes["slow"]["result"] == "slow done"
    assert after["result"] == 2
