"""Portico as an OAuth 2.1 resource server: metadata per MCP URL, bearer challenges, and every kind of bad
token refused before anything reaches the pipeline. A real Portico with `auth: oauth` in front of the echo
fixture; good tokens come from its own issuer, bad ones are issued by skewed or foreign issuers or forged."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from portico.identity.keys import KeyRing
from portico.identity.tokens import TokenIssuer
from tests.support.portico import Running, make_settings, serve_in_thread
from tests.support.wire import ACCEPT, initialize_body, modern_call, rpc_answer
from tests.upstreams.launch import stdio_argv

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp: Path = tmp_path_factory.mktemp("rs")
    servers = [{"id": "echo", "command": stdio_argv("echo")}, {"id": "other", "command": stdio_argv("echo")}]
    settings = make_settings(
        tmp, servers, auth="oauth", identity={"tokens": {"key_file": str(tmp / "signing-keys.json")}}
    )
    with serve_in_thread(settings) as running:
        yield running


def issuer_of(portal: Running) -> TokenIssuer:
    assert portal.portico.token_issuer is not None
    return portal.portico.token_issuer


def token(portal: Running, resource: str | None = None, **kwargs: Any) -> str:
    kwargs.setdefault("scopes", ["mcp"])
    kwargs.setdefault("client_id", "test-client")
    return issuer_of(portal).issue("alice", resource or portal.url, **kwargs)


def skewed(portal: Running, shift_s: float, **changes: Any) -> TokenIssuer:
    """An issuer with Portico's keys whose clock is `shift_s` off, or whose settings differ by `changes`."""
    keyring = portal.portico.keyring
    assert keyring is not None
    settings = portal.portico.settings.token_settings.model_copy(update=changes)
    return TokenIssuer(keyring, settings, clock=lambda: time.time() + shift_s)


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def payload(jwt: str) -> dict[str, Any]:
    segment = jwt.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))))


def unsigned(portal: Running) -> str:
    """The alg=none forgery of a valid token: same claims, no signature."""
    return f"{b64({'alg': 'none', 'typ': 'at+jwt'})}.{b64(payload(token(portal)))}."


def flipped_signature(portal: Running) -> str:
    head, body, signature = token(portal).split(".")
    return f"{head}.{body}.{signature[:10]}{'A' if signature[10] != 'A' else 'B'}{signature[11:]}"


def foreign_key(portal: Running) -> str:
    ring = KeyRing.generate(grace_s=86_400)
    return TokenIssuer(ring, portal.portico.settings.token_settings).issue(
        "alice", portal.url, scopes=["mcp"], client_id="c"
    )


async def list_tools(url: str, authorization: str | None) -> httpx2.Response:
    body, headers = modern_call("tools/list", {})
    if authorization is not None:
        headers["authorization"] = authorization
    async with httpx2.AsyncClient() as http:
        return await http.post(url, content=body, headers=headers)


BAD_TOKENS: list[tuple[str, Callable[[Running], str], str]] = [
    ("expired", lambda p: skewed(p, -3_600).issue("alice", p.url, scopes=["mcp"], client_id="c"), "expired"),
    ("not yet valid", lambda p: skewed(p, 3_600).issue("alice", p.url, scopes=["mcp"], client_id="c"), "not yet"),
    (
        "wrong issuer",
        lambda p: skewed(p, 0, issuer="https://idp.example").issue("alice", p.url, scopes=["mcp"], client_id="c"),
        "issuer",
    ),
    ("wrong audience (a token for another server's URL)", lambda p: token(p, p.server_url("echo")), "audience"),
    ("bad signature", flipped_signature, "signature"),
    ("alg=none", unsigned, "algorithm not allowed"),
    ("signed by a key Portico does not know", foreign_key, "unknown signing key"),
    ("not a JWT at all", lambda p: "opaque-token-from-somewhere-else", "malformed"),
]


@pytest.mark.requirement("identity:negative-matrix")
@pytest.mark.parametrize(("case", "make", "reason"), BAD_TOKENS, ids=[c[0] for c in BAD_TOKENS])
async def test_a_bad_access_token_is_refused_with_401_invalid_token(
    portal: Running, case: str, make: Callable[[Running], str], reason: str
) -> None:
    reply = await list_tools(portal.url, f"Bearer {make(portal)}")
    assert reply.status_code == 401, (case, reply.text)
    challenge = reply.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert 'error="invalid_token"' in challenge
    assert f'resource_metadata="{portal.base}/.well-known/oauth-protected-resource/mcp"' in challenge
    assert reply.json()["error"] == "invalid_token"
    assert reason in reply.json()["error_description"], reply.json()


@pytest.mark.requirement("identity:negative-matrix")
async def test_a_request_without_a_token_gets_a_challenge_naming_the_metadata_and_scope(portal: Running) -> None:
    reply = await list_tools(portal.url, None)
    assert reply.status_code == 401
    challenge = reply.headers["www-authenticate"]
    assert challenge == (
        f'Bearer resource_metadata="{portal.base}/.well-known/oauth-protected-resource/mcp", scope="mcp"'
    )


async def test_a_valid_token_for_the_portal_lists_tools(portal: Running) -> None:
    reply = await list_tools(portal.url, f"Bearer {token(portal)}")
    assert reply.status_code == 200, reply.text
    names = {t["name"] for t in rpc_answer(reply)["result"]["tools"]}
    assert {"echo__echo", "other__echo"} <= names


async def test_a_token_is_good_only_at_the_url_it_was_issued_for(portal: Running) -> None:
    for_echo = token(portal, portal.server_url("echo"))
    assert (await list_tools(portal.server_url("echo"), f"Bearer {for_echo}")).status_code == 200
    assert (await list_tools(portal.server_url("other"), f"Bearer {for_echo}")).status_code == 401
    assert (await list_tools(portal.server_url("echo"), f"Bearer {token(portal)}")).status_code == 401
    challenge = (await list_tools(portal.server_url("other"), None)).headers["www-authenticate"]
    assert f'"{portal.base}/.well-known/oauth-protected-resource/servers/other/mcp"' in challenge


async def test_a_token_without_the_mcp_scope_gets_403_insufficient_scope(portal: Running) -> None:
    reply = await list_tools(portal.url, f"Bearer {token(portal, scopes=['profile'])}")
    assert reply.status_code == 403
    assert 'error="insufficient_scope"' in reply.headers["www-authenticate"]
    assert 'scope="mcp"' in reply.headers["www-authenticate"]


@pytest.mark.parametrize(
    "authorization", ["Basic YWxpY2U6c2VjcmV0", "Bearer", "Token abc", "bearer-but-not-really"], ids=repr
)
async def test_an_authorization_header_that_is_not_a_bearer_token_is_refused(
    portal: Running, authorization: str
) -> None:
    reply = await list_tools(portal.url, authorization)
    assert reply.status_code == 401
    assert reply.json()["error"] == "invalid_request"


async def test_the_scheme_name_is_case_insensitive(portal: Running) -> None:
    assert (await list_tools(portal.url, f"bEaReR {token(portal)}")).status_code == 200


async def test_two_authorization_headers_are_refused(portal: Running) -> None:
    body, headers = modern_call("tools/list", {})
    raw = [(k, v) for k, v in headers.items()]
    raw += [("authorization", f"Bearer {token(portal)}"), ("authorization", "Bearer other")]
    async with httpx2.AsyncClient() as http:
        reply = await http.post(portal.url, content=body, headers=raw)
    assert reply.status_code == 400


async def test_a_token_in_the_query_string_is_ignored(portal: Running) -> None:
    reply = await list_tools(f"{portal.url}?access_token={token(portal)}", None)
    assert reply.status_code == 401


async def test_legacy_sessions_need_the_token_on_every_request(portal: Running) -> None:
    bearer = {"authorization": f"Bearer {token(portal)}", "accept": ACCEPT}
    async with httpx2.AsyncClient() as http:
        assert (await http.post(portal.url, json=initialize_body(), headers={"accept": ACCEPT})).status_code == 401
        opened = await http.post(portal.url, json=initialize_body(), headers=bearer)
        assert opened.status_code == 200, opened.text
        session = {**bearer, "mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
        listed = await http.post(portal.url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers=session)
        assert listed.status_code == 200
        without = {k: v for k, v in session.items() if k != "authorization"}
        for method in ("POST", "GET", "DELETE"):
            kwargs: dict[str, Any] = (
                {"json": {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}} if method == "POST" else {}
            )
            reply = await http.request(method, portal.url, headers=without, **kwargs)
            assert reply.status_code == 401, method


async def test_another_users_token_cannot_use_a_legacy_session(portal: Running) -> None:
    async with httpx2.AsyncClient() as http:
        opened = await http.post(
            portal.url, json=initialize_body(), headers={"authorization": f"Bearer {token(portal)}", "accept": ACCEPT}
        )
        mallory = issuer_of(portal).issue("mallory", portal.url, scopes=["mcp"], client_id="c")
        headers = {
            "authorization": f"Bearer {mallory}",
            "accept": ACCEPT,
            "mcp-session-id": opened.headers["mcp-session-id"],
            "mcp-protocol-version": "2025-11-25",
        }
        reply = await http.post(portal.url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers=headers)
    assert reply.status_code == 404


@pytest.mark.parametrize(
    ("path", "resource"),
    [
        ("/.well-known/oauth-protected-resource/mcp", "/mcp"),
        ("/.well-known/oauth-protected-resource", "/mcp"),
        ("/.well-known/oauth-protected-resource/servers/echo/mcp", "/servers/echo/mcp"),
    ],
)
async def test_each_mcp_url_publishes_its_protected_resource_metadata(
    portal: Running, path: str, resource: str
) -> None:
    async with httpx2.AsyncClient() as http:
        reply = await http.get(f"{portal.base}{path}", headers={"origin": "https://client.example"})
    assert reply.status_code == 200
    document = reply.json()
    assert document["resource"] == f"{portal.base}{resource}"
    assert document["authorization_servers"] == [portal.base]
    assert document["scopes_supported"] == ["mcp"]
    assert document["bearer_methods_supported"] == ["header"]
    assert reply.headers["access-control-allow-origin"] == "*"


async def test_metadata_of_an_unknown_server_is_not_found(portal: Running) -> None:
    async with httpx2.AsyncClient() as http:
        reply = await http.get(f"{portal.base}/.well-known/oauth-protected-resource/servers/nope/mcp")
    assert reply.status_code == 404


async def test_refusals_are_counted_by_error_in_the_metrics(portal: Running) -> None:
    await list_tools(portal.url, "Bearer nonsense")
    async with httpx2.AsyncClient() as http:
        text = (await http.get(f"{portal.base}/metrics")).text
    assert 'portico_auth_refusals_total{error="invalid_token"}' in text
