"""Policy through a real Portico: what a caller may not use it cannot see, and a denied call is audited."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx2
import orjson
import pytest
from mcp import Client
from sqlalchemy import select

from portico.store.tables import audit_records
from tests.support.portico import make_settings, serve
from tests.support.wire import ACCEPT, MODERN, envelope
from tests.upstreams.launch import stdio_argv

pytestmark = pytest.mark.anyio

POLICY = {
    "rules": [
        {"id": "everyone-reads", "effect": "permit", "servers": ["echo"]},
        {"id": "no-add", "effect": "forbid", "servers": ["echo"], "tools": ["add"], "description": "no sums here"},
    ]
}


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_a_forbidden_tool_is_hidden_and_its_call_denied_with_the_rule_in_the_audit_log(
    tmp_path: Path, mode: str
) -> None:
    settings = make_settings(tmp_path, [{"id": "echo", "command": stdio_argv("echo")}], policy=POLICY)
    async with serve(settings) as running:
        async with Client(running.url, mode=mode) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            with pytest.raises(Exception, match="no-add") as caught:
                await client.call_tool("echo__add", {"a": 1, "b": 2})
            allowed = await client.call_tool("echo__echo", {"text": "fine"})
        assert running.portico.audit is not None
        await running.portico.audit.flush()
        async with running.portico.store.engine.connect() as conn:  # type: ignore[union-attr]
            rows = (await conn.execute(select(audit_records).where(audit_records.c.method == "tools/call"))).all()
    assert "echo__echo" in names
    assert "echo__add" not in names
    assert getattr(caught.value, "code", None) == -32001
    assert not allowed.is_error
    denied = [r for r in rows if r.target == "add"]
    assert len(denied) == 1
    assert (denied[0].decision, denied[0].rule, denied[0].outcome) == ("deny", "no-add", "denied")
    assert any(r.target == "echo" and r.decision == "allow" and r.rule == "everyone-reads" for r in rows)


async def test_with_no_rules_nothing_is_visible_or_callable(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, [{"id": "echo", "command": stdio_argv("echo")}], policy={"rules": []})
    async with serve(settings) as running, Client(running.url, mode="2026-07-28") as client:
        assert (await client.list_tools()).tools == []
        with pytest.raises(Exception, match=r"(?i)no rule permits|denied"):
            await client.call_tool("echo__echo", {"text": "x"})


async def test_a_modern_listen_stream_is_not_subscribed_to_resources_the_caller_may_not_read(tmp_path: Path) -> None:
    policy = {
        "rules": [
            {"id": "all", "effect": "permit"},
            {"id": "no-binary", "effect": "forbid", "kinds": ["resources"], "tools": ["test://static-binary"]},
        ]
    }
    settings = make_settings(tmp_path, [{"id": "every", "command": stdio_argv("everything")}], policy=policy)
    requested = ["test://static-text", "test://static-binary"]
    listen = {
        "jsonrpc": "2.0",
        "id": "sub-1",
        "method": "subscriptions/listen",
        "params": {"notifications": {"resourceSubscriptions": requested}, "_meta": envelope()},
    }
    headers = {"content-type": "application/json", "accept": ACCEPT, "mcp-protocol-version": MODERN}
    async with (
        serve(settings) as running,
        httpx2.AsyncClient(timeout=30) as http,
        http.stream("POST", running.url, json=listen, headers={**headers, "mcp-method": "subscriptions/listen"}) as s,
    ):
        with anyio.fail_after(20):
            async for line in s.aiter_lines():
                if line.startswith("data:"):
                    ack = orjson.loads(line[5:])
                    break
    assert ack["method"] == "notifications/subscriptions/acknowledged"
    assert ack["params"]["notifications"]["resourceSubscriptions"] == ["test://static-text"]
