"""Public-server mode through a real Portico with `auth: oauth`: anonymous callers are served at a public server's
own URL (and nowhere else), judged only by permit rules that name them, rate-limited per address, held to a
small body, their arguments scored, and kept from any credential the upstream leaks.

Servers: `docs` and `limited` (the leaky fixture, public; `limited` with a tiny rate limit), `pubecho` (the echo
fixture over HTTP, public, so the test can read what reached it), `private` (leaky, not public).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from portico.errors import DENIED, RATE_LIMITED
from tests.inspection.support import last_audit, metric_lines
from tests.support.portico import Running, make_settings, serve_in_thread
from tests.support.wire import modern_call, rpc_answer
from tests.upstreams.launch import launch_sync, stdio_argv
from tests.upstreams.leaky import PAGES, SECRET

pytestmark = pytest.mark.anyio

ERAS = pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
OPEN = {"rate_limit": {"requests_per_minute": 6000, "burst": 1000}, "max_body_bytes": 2048}
POLICY = {
    "rules": [
        {
            "id": "public-pages",
            "effect": "permit",
            "servers": ["docs", "limited", "pubecho"],
            "tools": ["page", "embedded", "config", "echo", "leaky://pages/*"],
            "users": ["anonymous"],
        },
        {"id": "staff", "effect": "permit", "description": "everyone signed in, everything"},
        {"id": "no-embedded", "effect": "forbid", "servers": ["docs"], "tools": ["embedded"]},
    ]
}


@pytest.fixture(scope="module")
def echo_url() -> Iterator[str]:
    with launch_sync("echo") as url:
        yield url


@pytest.fixture(scope="module")
def portico(tmp_path_factory: pytest.TempPathFactory, echo_url: str) -> Iterator[Running]:
    tmp: Path = tmp_path_factory.mktemp("public")
    leaky = stdio_argv("leaky")
    servers = [
        {"id": "docs", "command": leaky, "public": OPEN},
        {"id": "limited", "command": leaky, "public": {"rate_limit": {"requests_per_minute": 20, "burst": 3}}},
        {"id": "pubecho", "url": echo_url, "public": OPEN},
        {"id": "private", "command": leaky},
    ]
    settings = make_settings(
        tmp,
        servers,
        auth="oauth",
        policy=POLICY,
        identity={"tokens": {"key_file": str(tmp / "signing-keys.json")}},
        inspection={"learned": "off"},  # the heuristic alone: no dependency on the optional classifier
    )
    with serve_in_thread(settings) as running:
        yield running


def token(running: Running, url: str) -> str:
    assert running.portico.token_issuer is not None
    return running.portico.token_issuer.issue("alice", url, scopes=["mcp"], client_id="test-client")


async def post(url: str, method: str, params: dict[str, Any], **headers: str) -> httpx2.Response:
    body, sent = modern_call(method, params)
    async with httpx2.AsyncClient(timeout=30) as http:
        return await http.post(url, content=body, headers={**sent, **headers})


def names(listed: types.ListToolsResult) -> set[str]:
    return {tool.name for tool in listed.tools}


@ERAS
async def test_an_anonymous_caller_uses_a_public_server_at_its_own_url(portico: Running, mode: str) -> None:
    async with Client(portico.server_url("docs"), mode=mode) as client:
        listed = await client.list_tools()
        result = await client.call_tool("page", {"name": "plain"})
    assert names(listed) == {"page", "config"}  # page_report: staff only; embedded: forbidden
    assert [b.text for b in result.content if isinstance(b, types.TextContent)] == [PAGES["plain"]]
    record = await last_audit(portico, "page")
    assert (record["subject"], record["authenticated_by"]) == ("anonymous", "public")
    assert record["inspection"]["action"] == "pass"


@pytest.mark.requirement("public:anonymous-only-at-public-urls")
@pytest.mark.parametrize("where", ["portal", "private"])
async def test_an_anonymous_caller_gets_a_401_challenge_at_the_portal_and_at_a_private_servers_url(
    portico: Running, where: str
) -> None:
    url = portico.url if where == "portal" else portico.server_url("private")
    refused = await post(url, "tools/list", {})
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Bearer resource_metadata=")
    served = await post(portico.server_url("docs"), "tools/list", {})
    assert served.status_code == 200
    assert "www-authenticate" not in served.headers


async def test_a_public_servers_protected_resource_metadata_is_still_published(portico: Running) -> None:
    async with httpx2.AsyncClient() as http:
        metadata = await http.get(f"{portico.base}/.well-known/oauth-protected-resource/servers/docs/mcp")
    assert metadata.status_code == 200
    assert metadata.json()["resource"] == portico.server_url("docs")


@pytest.mark.requirement("public:anonymous-needs-a-rule-naming-them")
async def test_a_permit_rule_that_does_not_name_anonymous_never_admits_them(portico: Running) -> None:
    async with Client(portico.server_url("docs"), mode="2026-07-28") as client:
        with pytest.raises(MCPError) as denied:
            await client.call_tool("page_report", {"name": "plain"})
    assert denied.value.error.code == DENIED
    assert denied.value.error.message.startswith("no rule permits anonymous to call docs/page_report")


async def test_a_forbid_rule_applies_to_anonymous_callers(portico: Running) -> None:
    async with Client(portico.server_url("docs"), mode="2026-07-28") as client:
        with pytest.raises(MCPError) as denied:
            await client.call_tool("embedded", {"name": "plain"})
    assert denied.value.error.code == DENIED
    assert "no-embedded" in denied.value.error.message


@ERAS
async def test_a_signed_in_caller_at_a_public_url_is_treated_as_themselves(portico: Running, mode: str) -> None:
    url = portico.server_url("docs")
    headers = {"authorization": f"Bearer {token(portico, url)}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode) as client,
    ):
        listed = await client.list_tools()
        await client.call_tool("page_report", {"name": "plain"})
    assert names(listed) == {"page", "page_report", "config"}
    record = await last_audit(portico, "page_report")
    assert (record["subject"], record["authenticated_by"]) == ("alice", "jwt")
    assert record["inspection"]["action"] == "pass"  # a public server is inspected whoever calls


@pytest.mark.requirement("public:per-address-rate-limit")
async def test_an_address_over_the_rate_limit_gets_429_with_retry_after_and_is_served_again_later(
    portico: Running,
) -> None:
    url = portico.server_url("limited")
    served = [await post(url, "tools/list", {}) for _ in range(3)]  # the burst
    refused = await post(url, "tools/list", {})
    assert [r.status_code for r in served] == [200, 200, 200]
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"]["code"] == RATE_LIMITED
    assert "www-authenticate" not in refused.headers
    assert any(
        line.startswith('portico_public_throttled_total{server="limited"}')
        for line in await metric_lines(portico, "portico_public_throttled_total")
    )
    waited: list[int] = []
    with anyio.fail_after(10):  # the refill is one request per 3 s
        while (status := (await post(url, "tools/list", {})).status_code) != 200:
            waited.append(status)
            await anyio.sleep(0.1)  # polls a limit owned by the other thread's clock
    assert set(waited) <= {429}


@pytest.mark.requirement("public:small-body-limit")
async def test_an_oversized_body_from_an_anonymous_caller_is_refused_with_413_but_not_from_a_signed_in_one(
    portico: Running,
) -> None:
    url = portico.server_url("docs")
    padding = {"padding": "x" * 4096}
    refused = await post(url, "tools/list", {"cursor": None, **padding})
    signed_in = await post(url, "tools/list", padding, authorization=f"Bearer {token(portico, url)}")
    assert refused.status_code == 413
    assert signed_in.status_code == 200


@pytest.mark.requirement("public:hostile-arguments-never-reach-upstream")
async def test_a_hostile_argument_is_blocked_and_never_reaches_the_upstream(portico: Running, echo_url: str) -> None:
    received = echo_url.removesuffix("/mcp") + "/received"
    async with httpx2.AsyncClient() as http:
        await http.delete(received)
    async with Client(portico.server_url("pubecho"), mode="2026-07-28") as client:
        with pytest.raises(MCPError) as blocked:
            await client.call_tool("echo", {"text": PAGES["strong"]})
        await client.call_tool("echo", {"text": PAGES["plain"]})
    assert blocked.value.error.code == DENIED
    assert blocked.value.error.data["direction"] == "request"
    async with httpx2.AsyncClient() as http:
        log = (await http.get(received)).json()
    calls = [entry["params"]["arguments"]["text"] for entry in log if entry["method"] == "tools/call"]
    assert calls == [PAGES["plain"]]  # the benign call arrived, the hostile one never did
    record = await last_audit(portico, "echo")
    assert record["inspection"]["direction"] == "response"
    assert record["inspection_request"]["action"] == "pass"


@pytest.mark.requirement("public:no-credential-leaves")
@ERAS
async def test_a_leaked_credential_never_reaches_an_anonymous_caller(portico: Running, mode: str) -> None:
    async with Client(portico.server_url("docs"), mode=mode) as client:
        with pytest.raises(MCPError) as blocked:
            await client.call_tool("config", {})
    assert blocked.value.error.code == DENIED
    assert "aws_access_key_id" in blocked.value.error.message
    raw = await post(portico.server_url("docs"), "tools/call", {"name": "config", "arguments": {}})
    assert SECRET not in raw.text
    assert rpc_answer(raw)["error"]["data"]["signals"] == ["leak:aws_access_key_id"]
    record = await last_audit(portico, "config")
    assert SECRET not in json.dumps(record)
