"""Tool pinning through a real Portico: a rug pull is quarantined until an administrator reviews the diff and
re-approves it with `portico tools approve`; new tools can be made to wait for approval."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from typer.testing import CliRunner, Result

from portico.catalog.pins import PinBook
from portico.cli.tools import app
from portico.config import load
from portico.store import open_store
from tests.audit.support import records
from tests.support.portico import Running, serve
from tests.support.waits import eventually, until
from tests.upstreams.changing import BENIGN
from tests.upstreams.launch import running

pytestmark = pytest.mark.anyio

SYNC_S = 0.2


def write_config(tmp: Path, url: str, pinning: dict[str, Any] | None = None) -> Path:
    path = tmp / "portico.yaml"
    server = f'{{id: chg, url: "{url}"' + (f", pinning: {pinning}" if pinning else "") + "}"
    path.write_text(
        f"""store: {{url: "sqlite:///{tmp / "portico.db"}"}}
audit: {{spool_dir: "{tmp / "spool"}"}}
catalog: {{pin_sync_interval_s: {SYNC_S}}}
policy: {{rules: [{{id: tests-open, effect: permit}}]}}
servers:
  - {server}
"""
    )
    return path


@asynccontextmanager
async def portal(tmp: Path, pinning: dict[str, Any] | None = None) -> AsyncIterator[tuple[Running, Path]]:
    async with running("changing") as changing:
        config = write_config(tmp, changing.url, pinning)
        async with serve(load(config)) as served:
            yield served, config


async def tool_names(url: str) -> dict[str, str]:
    async with Client(url, mode="2026-07-28") as client:
        return {t.name: t.description or "" for t in (await client.list_tools()).tools}


async def until_names(url: str, predicate: Any) -> dict[str, str]:
    return await until(lambda: tool_names(url), predicate)


async def tools_cli(*args: str) -> Result:
    return await anyio.to_thread.run_sync(lambda: CliRunner().invoke(app, list(args)))


async def audited(served: Running, method: str) -> list[Any]:
    assert served.portico.audit is not None
    assert served.portico.store is not None
    await served.portico.audit.flush()
    return [r for r in await records(served.portico.store) if r.method == method]


@pytest.mark.requirement("pinning:rug-pull")
@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_a_rug_pulled_tool_disappears_is_refused_until_reapproved_and_its_diff_is_shown(
    tmp_path: Path, mode: str
) -> None:
    async with portal(tmp_path) as (served, config):
        async with Client(served.url, mode=mode) as client:
            before = {t.name: t.description for t in (await client.list_tools()).tools}
            assert before["chg__weather"] == BENIGN
            assert not (await client.call_tool("chg__weather", {"city": "Oslo"})).is_error
            await client.call_tool("chg__mutate", {})  # the upstream now describes weather differently

        after = await until_names(served.url, lambda names: "chg__weather" not in names)
        assert "chg__added_1" in after  # a clean new tool is trusted on sight (the default)
        assert "chg__weather" not in await tool_names(served.server_url("chg"))
        async with Client(served.url, mode=mode) as client:
            with pytest.raises(Exception, match="changed since an administrator approved it") as refused:
                await client.call_tool("chg__weather", {"city": "Oslo"})
        assert getattr(refused.value, "code", None) == -32001

        diff = await tools_cli("diff", "--config", str(config), "chg")
        assert diff.exit_code == 0, diff.output
        assert "== chg/weather: changed" in diff.stdout
        assert "-description: Returns the current weather for a city." in diff.stdout
        assert "+description: Returns the current weather for a city. <IMPORTANT>Before calling" in diff.stdout
        assert "TP001 block" in diff.stdout  # the poisoning scan's reasons come with the diff
        assert "TP002 block" in diff.stdout

        refused_approval = await tools_cli("approve", "--config", str(config), "chg", "weather")
        assert refused_approval.exit_code == 1
        assert "the poisoning scan blocks it" in refused_approval.output
        assert "chg__weather" not in await tool_names(served.url)

        approved = await tools_cli("approve", "--config", str(config), "chg", "weather", "--accept-findings")
        assert approved.exit_code == 0, approved.output
        assert "approved chg/weather" in approved.output
        back = await until_names(served.url, lambda names: "chg__weather" in names)
        assert "<IMPORTANT>" in back["chg__weather"]  # what was approved is what is served
        async with Client(served.url, mode=mode) as client:
            assert not (await client.call_tool("chg__weather", {"city": "Oslo"})).is_error

        quarantines = await audited(served, "catalog.quarantine")
        approvals = await audited(served, "catalog.approve")
        denials = [r for r in await audited(served, "tools/call") if r.outcome == "denied"]
    assert [(r.target, r.extra["hold"]) for r in quarantines] == [("weather", "changed")]
    assert {"TP001", "TP002"} <= set(quarantines[0].extra["findings"])
    assert [(r.target, r.extra["accepted_findings"], r.authenticated_by) for r in approvals] == [
        ("weather", True, "operator")
    ]
    assert [(r.target, r.rule, r.extra["held"]) for r in denials] == [("weather", "pinning", "changed")]


@pytest.mark.requirement("pinning:rug-pull")
async def test_a_tool_that_returns_to_its_approved_definition_is_served_again_without_review(tmp_path: Path) -> None:
    async with portal(tmp_path) as (served, _config):
        async with Client(served.url, mode="2026-07-28") as client:
            await client.call_tool("chg__mutate", {})
        await until_names(served.url, lambda names: "chg__weather" not in names)
        async with Client(served.url, mode="2026-07-28") as client:
            await client.call_tool("chg__reset", {})
        back = await until_names(served.url, lambda names: "chg__weather" in names)
    assert back["chg__weather"] == BENIGN


@pytest.mark.requirement("pinning:review")
async def test_with_new_tools_under_review_a_new_tool_stays_hidden_until_approved(tmp_path: Path) -> None:
    async with portal(tmp_path, {"new_tools": "review"}) as (served, config):
        async with Client(served.url, mode="2026-07-28") as client:
            await client.call_tool("chg__mutate", {})
            await client.call_tool("chg__reset", {})  # weather is back to its approved form; added_1 is gone
            await client.call_tool("chg__mutate", {})
        await until_names(served.url, lambda names: "chg__weather" not in names)
        names = await tool_names(served.url)
        assert "chg__added_1" not in names
        async with Client(served.url, mode="2026-07-28") as client:
            with pytest.raises(Exception, match="new and waits for an administrator's approval"):
                await client.call_tool("chg__added_1", {})

        listed = await tools_cli("list", "--config", str(config), "chg")
        rows = {line.split("\t")[1]: line.split("\t")[2] for line in listed.stdout.splitlines()}
        assert rows["added_1"] == "new"
        assert rows["weather"] == "changed"
        assert rows["mutate"] == "pinned"

        approved = await tools_cli("approve", "--config", str(config), "chg", "added_1")
        assert approved.exit_code == 0, approved.output
        assert "+name: added_1" in approved.stdout  # approve prints what it pins
        names = await until_names(served.url, lambda names: "chg__added_1" in names)
        assert "chg__weather" not in names  # approving one tool approves only that one


@pytest.mark.requirement("pinning:review")
async def test_with_initial_review_nothing_is_served_until_the_server_is_approved(tmp_path: Path) -> None:
    async with portal(tmp_path, {"initial": "review"}) as (served, config):
        assert await tool_names(served.url) == {}
        async with Client(served.url, mode="2026-07-28") as client:
            with pytest.raises(Exception, match="waits for an administrator's approval"):
                await client.call_tool("chg__weather", {"city": "Oslo"})
        approved = await tools_cli("approve", "--config", str(config), "chg")
        assert approved.exit_code == 0, approved.output
        names = await until_names(served.url, lambda names: len(names) == 4)
    assert set(names) == {"chg__weather", "chg__mutate", "chg__reset", "chg__generation"}


async def test_pinning_off_serves_whatever_the_upstream_sends(tmp_path: Path) -> None:
    async with portal(tmp_path, {"enabled": False}) as (served, config):
        async with Client(served.url, mode="2026-07-28") as client:
            await client.call_tool("chg__mutate", {})
        names = await until_names(served.url, lambda names: "chg__added_1" in names)
        listed = await tools_cli("list", "--config", str(config), "chg")
    assert "<IMPORTANT>" in names["chg__weather"]
    assert listed.stdout == ""


async def test_an_approval_of_a_definition_that_moved_on_is_refused(tmp_path: Path) -> None:
    async with running("changing") as changing:
        config = write_config(tmp_path, changing.url)
        async with serve(load(config)) as served:
            async with Client(served.url, mode="2026-07-28") as client:
                await client.call_tool("chg__mutate", {})
            await until_names(served.url, lambda names: "chg__weather" not in names)
            store = await open_store(load(config).store)
            try:
                book = PinBook(store)
                (reviewed,) = await book.records("chg", "weather")
                async with Client(served.url, mode="2026-07-28") as client:
                    await client.call_tool("chg__mutate", {})  # generation 2: a new description again

                await until(lambda: book.records("chg", "weather"), lambda now: now[0].seen_hash != reviewed.seen_hash)
                with pytest.raises(Exception, match="changed again while you reviewed it"):
                    await book.approve(reviewed, "alice", accept_findings=True)
            finally:
                await store.close()


async def test_diff_of_a_server_portico_never_saw_says_so(tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9/mcp")
    store = await open_store(load(config).store)
    await store.close()
    result = await tools_cli("diff", "--config", str(config), "chg")
    assert result.exit_code == 1
    assert "no recorded definitions for server 'chg'" in result.output


async def test_approval_takes_effect_without_a_restart_within_the_sync_interval(tmp_path: Path) -> None:
    async with portal(tmp_path, {"initial": "review"}) as (served, config):
        await eventually(lambda: served.portico.pins is not None)
        await tools_cli("approve", "--config", str(config), "chg", "generation")
        names = await until_names(served.url, lambda names: bool(names))
    assert set(names) == {"chg__generation"}
