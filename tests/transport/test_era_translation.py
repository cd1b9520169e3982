"""Era translation: a client of either era can use an upstream that speaks only the other one.

Legacy client → modern-only upstream: the upstream's `InputRequiredResult` is turned into server requests on
the client's stream and the call retried with the answers. Modern client → legacy-only upstream: the upstream's
mid-call server requests become `InputRequiredResult`s with a signed `requestState` (MRTR).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import mcp_types as types
import pytest
from mcp import Client

from tests.support.portico import Running, make_settings, serve_in_thread
from tests.support.wire import modern_call, rpc_answer
from tests.upstreams.launch import running_sync

MODERN = "2026-07-28"


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp: Path = tmp_path_factory.mktemp("eras")
    with running_sync("everything") as every:
        servers = [{"id": "old", "url": every.url, "era": "legacy"}, {"id": "new", "url": every.url, "era": "modern"}]
        with serve_in_thread(make_settings(tmp, servers)) as running:
            yield running


async def sample(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    return types.CreateMessageResult(
        role="assistant", content=types.TextContent(type="text", text="sampled by the client"), model="test-model"
    )


async def elicit(context: Any, params: Any) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"username": "ada", "email": "ada@example.com"})


@pytest.mark.anyio
@pytest.mark.parametrize(("mode", "server"), [(MODERN, "old"), ("legacy", "new")])
async def test_sampling_crosses_eras_in_both_directions(portal: Running, mode: str, server: str) -> None:
    async with Client(portal.url, mode=mode, sampling_callback=sample) as client:
        result = await client.call_tool(f"{server}__test_sampling", {"prompt": "hello"})
    assert "sampled by the client" in result.content[0].text  # type: ignore[union-attr]


@pytest.mark.anyio
@pytest.mark.parametrize(("mode", "server"), [(MODERN, "old"), ("legacy", "new")])
async def test_elicitation_crosses_eras_in_both_directions(portal: Running, mode: str, server: str) -> None:
    async with Client(portal.url, mode=mode, elicitation_callback=elicit) as client:
        result = await client.call_tool(f"{server}__test_elicitation", {"message": "who are you?"})
    assert not result.is_error
    assert "accept" in result.content[0].text.lower() or "ada" in result.content[0].text  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_a_forged_or_foreign_request_state_is_refused(portal: Running) -> None:
    params = {"name": "old__test_sampling", "arguments": {"prompt": "x"}}
    body, headers = modern_call("tools/call", params, capabilities={"sampling": {}})
    async with httpx2.AsyncClient(timeout=30) as http:
        first = rpc_answer(await http.post(portal.url, content=body, headers=headers))
        state = first["result"]["requestState"]
        assert first["result"]["resultType"] == "input_required"
        forged = state[:-4] + ("0000" if not state.endswith("0000") else "1111")
        retry, _ = modern_call(
            "tools/call", {**params, "requestState": forged, "inputResponses": {}}, 2, {"sampling": {}}
        )
        refused = rpc_answer(await http.post(portal.url, content=retry, headers=headers))
    assert refused["error"]["code"] == -32602


@pytest.mark.anyio
async def test_a_modern_client_without_the_capability_gets_32021_with_the_required_capability(portal: Running) -> None:
    body, headers = modern_call("tools/call", {"name": "old__test_sampling", "arguments": {"prompt": "x"}})
    async with httpx2.AsyncClient(timeout=30) as http:
        response = await http.post(portal.url, content=body, headers=headers)
    answer = rpc_answer(response)
    assert response.status_code == 400
    assert answer["error"]["code"] == -32021
    assert answer["error"]["data"] == {"requiredCapabilities": {"sampling": {}}}
