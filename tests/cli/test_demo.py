"""`portico demo` as a new user meets it: a real process, demo upstreams of three transports, one URL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult
from mcp.shared.exceptions import MCPError

from portico.cli.demo import DEMO_USERS
from tests.support.browser import FormBrowser
from tests.support.oauth import REDIRECT, MemoryStorage, sdk_provider, signing_in_as, submit_password
from tests.support.portico import free_port
from tests.support.wire import ACCEPT, initialize_body, open_legacy_session, rpc_answer

ROOT = Path(__file__).resolve().parents[2]
PORTICO = Path(sys.executable).parent / "portico"
INSPECTOR = ROOT / "tools" / "node" / "bin" / "mcp-inspector"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    data = tmp_path_factory.mktemp("demo")
    port = free_port()
    process = subprocess.Popen(
        [str(PORTICO), "demo", "--port", str(port), "--data-dir", str(data)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx2.Client() as http:
            for _ in range(600):  # bounded: 60 s
                try:
                    if http.get(base + "/readyz").json()["status"] == "ready":
                        break
                except (httpx2.HTTPError, ValueError):
                    pass
                if process.poll() is not None:
                    raise RuntimeError(f"portico demo exited: {process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
                time.sleep(0.1)  # polling another process's HTTP endpoint: nothing to wait on but the clock
            else:
                raise RuntimeError("portico demo was not ready within 60 s")
        yield base + "/mcp", data
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)


def token_for(demo: tuple[str, Path], user: str) -> str:
    """What the banner tells script users to run."""
    _, data = demo
    issued = subprocess.run(
        [str(PORTICO), "token", "issue", "--config", str(data / "portico.yaml"), "--user", user],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert issued.returncode == 0, issued.stderr
    return issued.stdout.strip()


def signed_in(url: str, token: str, mode: str) -> Client:
    http = httpx2.AsyncClient(headers={"authorization": f"Bearer {token}"}, timeout=30)
    return Client(streamable_http_client(url, http_client=http), mode=mode)


@pytest.mark.anyio
async def test_a_client_signs_in_to_the_demo_as_the_printed_restricted_user(demo: tuple[str, Path]) -> None:
    url, _ = demo
    provider = signing_in_as("dana", DEMO_USERS["dana"][1], url, MemoryStorage())
    async with (
        httpx2.AsyncClient(auth=provider, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http), mode="2026-07-28") as client,
    ):
        names = {t.name for t in (await client.list_tools()).tools}
    assert "tickets__get_ticket" in names
    assert "tickets__create_ticket" not in names


@pytest.mark.anyio
async def test_a_client_signs_in_to_the_demo_through_the_demo_idp_and_its_second_factor_counts(
    demo: tuple[str, Path],
) -> None:
    url, _ = demo
    callback: dict[str, str] = {}

    async def through_the_idp(authorize_url: str) -> None:
        async with FormBrowser(stop_at=REDIRECT) as browser:
            page = await browser.open(authorize_url)
            page = await browser.open(page.link("Demo IdP"))  # Portico's sign-in page → the IdP's page
            page = await browser.submit(page.form("decision"), button="continue")  # the IdP → Portico's consent
            page = await browser.submit(page.form("decision"), button="approve")
            callback.update(page.callback_params)

    async def handed_back() -> AuthorizationCodeResult:
        return AuthorizationCodeResult(code=callback["code"], state=callback.get("state"), iss=callback.get("iss"))

    provider = sdk_provider(url, MemoryStorage(), through_the_idp, handed_back, "demo SSO test")
    async with (
        httpx2.AsyncClient(auth=provider, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http), mode="2026-07-28") as client,
    ):
        names = {t.name for t in (await client.list_tools()).tools}
    assert "notes__delete_note" in names  # staff, with MFA from the IdP: the destructive-tool rule is lifted
    assert "tickets__create_ticket" not in names


async def legacy_tool_call(url: str, token: str, tool: str) -> dict[str, Any]:
    async with httpx2.AsyncClient(timeout=30, headers={"authorization": f"Bearer {token}"}) as http:
        headers = await open_legacy_session(http, url)
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": {}}}
        return rpc_answer(await http.post(url, json=body, headers=headers))


@pytest.mark.anyio
async def test_dana_connects_her_demo_drive_account_and_then_lists_her_own_files(demo: tuple[str, Path]) -> None:
    url, _ = demo
    base = url.removesuffix("/mcp")
    token = token_for(demo, "dana")
    asked = await legacy_tool_call(url, token, "drive__list_files")
    assert asked.get("error", {}).get("code") == -32042, asked
    link = asked["error"]["data"]["elicitations"][0]["url"]
    assert link.startswith(f"{base}/connect/drive?ticket=")
    async with FormBrowser(stop_at=REDIRECT) as browser:
        # Signed in to Portico in this browser as dana (as after her MCP client's sign-in): connect links need it.
        page = await submit_password(browser, base, url, "dana", DEMO_USERS["dana"][1])
        page = await browser.submit(page.form("decision"), button="approve")
        assert page.callback is not None, page.text
        consent = await browser.open(link)
        at_drive = await browser.submit(consent.form("ticket"), button="connect")
        assert "Sign in to Demo Drive as" in at_drive.text
        done = await browser.submit(at_drive.form("account"), {"account": "dana"}, button="sign-in")
    assert done.status == 200, done.text
    assert "is connected" in done.text
    answer = await legacy_tool_call(url, token, "drive__list_files")
    assert "result" in answer, answer
    listed = answer["result"]["content"][0]["text"]
    assert "quarterly-plan.md" in listed
    assert "budget.csv" not in listed  # the admin account's file: dana's call carried dana's Drive token


def test_the_demo_asks_for_sign_in(demo: tuple[str, Path]) -> None:
    url, _ = demo
    with httpx2.Client() as http:
        refused = http.post(url, json=initialize_body(), headers={"accept": ACCEPT})
    assert refused.status_code == 401
    assert "resource_metadata=" in refused.headers["www-authenticate"]


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_the_demo_admin_gets_tools_of_all_three_demo_servers_through_one_url(
    demo: tuple[str, Path], mode: str
) -> None:
    url, _ = demo
    async with signed_in(url, token_for(demo, "admin"), mode) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        note = await client.call_tool("notes__add_note", {"title": "demo", "body": f"written in {mode}"})
        tickets = await client.call_tool("tickets__list_tickets", {"status": "open"})
        forecast = await client.call_tool("weather__forecast", {"city": "Oslo", "days": 2})
        prompts = {p.name for p in (await client.list_prompts()).prompts}
    assert {"notes__add_note", "tickets__create_ticket", "weather__forecast"} <= names
    assert "notes__delete_note" not in names  # destructive needs MFA: invisible, not merely uncallable
    assert not note.is_error
    assert not tickets.is_error
    assert not forecast.is_error
    assert {"notes__summarize_notes", "tickets__triage"} <= prompts


@pytest.mark.anyio
async def test_the_demo_restricted_user_sees_fewer_tools_and_is_denied_the_others(demo: tuple[str, Path]) -> None:
    url, _ = demo
    async with signed_in(url, token_for(demo, "dana"), "2026-07-28") as client:
        names = {t.name for t in (await client.list_tools()).tools}
        with pytest.raises(MCPError, match="no rule permits dana") as denied:
            await client.call_tool("tickets__create_ticket", {"title": "not allowed"})
        allowed = await client.call_tool("tickets__get_ticket", {"ticket_id": "T-1"})
    assert {"notes__add_note", "tickets__list_tickets", "tickets__get_ticket", "weather__alerts"} <= names
    assert not names & {"tickets__create_ticket", "notes__delete_note"}
    assert "rule admins-everything requires group admins" in str(denied.value)
    assert not allowed.is_error


@pytest.mark.node
@pytest.mark.parametrize("era", ["legacy", "modern"])
def test_the_inspector_cli_lists_and_calls_demo_tools(demo: tuple[str, Path], era: str, tmp_path: Path) -> None:
    url, _ = demo
    bearer = f"Authorization: Bearer {token_for(demo, 'dana')}"
    base = [str(INSPECTOR), "--cli", url, "--transport", "http", "--protocol-era", era, "--format", "json", "--quiet"]
    base += ["--header", bearer]
    env = {**os.environ, "HOME": str(tmp_path)}
    listed = subprocess.run([*base, "--method", "tools/list"], capture_output=True, text=True, timeout=120, env=env)
    assert listed.returncode == 0, listed.stderr
    names = {tool["name"] for tool in json.loads(listed.stdout)["result"]["tools"]}
    assert {"notes__add_note", "tickets__get_ticket", "weather__alerts"} <= names
    called = subprocess.run(
        [*base, "--method", "tools/call", "--tool-name", "weather__alerts", "--tool-arg", "region=north"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert called.returncode == 0, called.stderr
    assert "No active alerts for north" in called.stdout


def test_the_demo_audit_log_verifies_and_tails(demo: tuple[str, Path]) -> None:
    _, data = demo
    config = data / "portico.yaml"
    with httpx2.Client() as http:  # at least one audited call, whatever ran before
        bearer = {"authorization": f"Bearer {token_for(demo, 'dana')}", "accept": ACCEPT}
        http.post(demo[0], json=initialize_body(), headers=bearer)
    tail = subprocess.run(
        [str(PORTICO), "audit", "tail", "--config", str(config), "-n", "5"], capture_output=True, text=True, timeout=60
    )
    assert tail.returncode == 0, tail.stderr
    assert "initialize" in tail.stdout
    assert "dana" in tail.stdout
    verify = subprocess.run(
        [str(PORTICO), "audit", "verify", "--config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


CARD = "4111 1111 1111 1111"


@pytest.mark.anyio
async def test_the_demo_blocks_a_card_number_on_its_way_to_the_external_server(demo: tuple[str, Path]) -> None:
    url, _ = demo
    async with signed_in(url, token_for(demo, "dana"), "2026-07-28") as client:
        fine = await client.call_tool("external__translate", {"text": "hello thanks", "target_language": "de"})
        with pytest.raises(MCPError, match="no-cards-or-secrets-to-third-parties") as blocked:
            await client.call_tool("external__translate", {"text": f"pay with {CARD} today"})
    assert not fine.is_error
    assert "hallo danke" in str(fine.content[0])
    assert CARD not in str(blocked.value)
    assert "card" in str(blocked.value)


@pytest.mark.anyio
async def test_the_demo_masks_card_numbers_in_notes_for_staff(demo: tuple[str, Path]) -> None:
    url, _ = demo
    async with signed_in(url, token_for(demo, "dana"), "2026-07-28") as client:
        await client.call_tool("notes__add_note", {"title": "refund", "body": f"refund card {CARD} by friday"})
        found = await client.call_tool("notes__search_notes", {"query": "refund"})
    text = json.dumps([c.model_dump() for c in found.content]) + json.dumps(found.structured_content)
    assert "refund card" in text
    assert "4111 1111 1111 1111" not in text
    assert "1111" in text  # masked with the last digits kept, the structure intact


@pytest.mark.anyio
async def test_the_demo_blocks_the_external_page_with_a_hidden_prompt_injection(demo: tuple[str, Path]) -> None:
    url, _ = demo
    async with signed_in(url, token_for(demo, "dana"), "2026-07-28") as client:
        notes = await client.call_tool("external__fetch_page", {"url": "https://acme.example/release-notes"})
        with pytest.raises(MCPError, match="prompt injection") as blocked:
            await client.call_tool("external__fetch_page", {"url": "https://acme.example/pricing"})
    assert not notes.is_error
    assert "maintenance mode" not in str(blocked.value)


@pytest.mark.anyio
async def test_anyone_may_call_the_demos_public_weather_server_without_signing_in(demo: tuple[str, Path]) -> None:
    url, _ = demo
    public = url.removesuffix("/mcp") + "/servers/weather/mcp"
    async with Client(public, mode="2026-07-28") as client:
        names = {t.name for t in (await client.list_tools()).tools}
        forecast = await client.call_tool("forecast", {"city": "Oslo", "days": 1})
    assert names == {"forecast", "alerts"}
    assert not forecast.is_error
    with httpx2.Client() as http:
        assert http.post(url.removesuffix("/mcp") + "/servers/notes/mcp", json=initialize_body()).status_code == 401


def test_every_demo_server_has_its_tools_pinned(demo: tuple[str, Path]) -> None:
    _, data = demo
    listed = subprocess.run(
        [str(PORTICO), "tools", "list", "--config", str(data / "portico.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    states = {tuple(line.split("\t")[:3]) for line in listed.stdout.splitlines()}
    servers = {server for server, _, _ in states}
    assert {"notes", "tickets", "weather", "external", "drive"} <= servers
    assert ("external", "fetch_page", "pinned") in states
    assert all(state == "pinned" for _, _, state in states)


@pytest.mark.anyio
@pytest.mark.parametrize("lang", ["javascript", "python"])
async def test_the_demo_serves_code_mode_on_request(demo: tuple[str, Path], lang: str) -> None:
    url, _ = demo
    code = {
        "javascript": "const f = await codemode.weather__forecast({city: 'Oslo', days: 2});\n"
        "const t = await codemode.tickets__get_ticket({ticket_id: 'T-1'});\n"
        "({days: f.result.length, ticket: t.title})",
        "python": "f = await codemode.weather__forecast(city='Oslo', days=2)\n"
        "t = await codemode.tickets__get_ticket(ticket_id='T-1')\n"
        "{'days': len(f['result']), 'ticket': t['title']}",
    }
    async with signed_in(f"{url}?codemode=search_and_execute&lang={lang}", token_for(demo, "dana"), "2026-07-28") as c:
        names = [t.name for t in (await c.list_tools()).tools]
        result = await c.call_tool("execute", {"code": code[lang]})
    assert names == ["search", "execute"]
    assert json.loads(result.content[0].text)["result"] == {"days": 2, "ticket": "VPN drops every hour"}
