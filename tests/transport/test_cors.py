"""CORS for browser-based clients: the MCP endpoints answer only pages the Origin check allows (naming that
origin, exposing the session and challenge headers); the OAuth endpoints a client fetches answer any page;
the sign-in pages answer none. A real Portico with `auth: oauth` on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.support.portico import Running, make_settings, serve_in_thread
from tests.support.wire import modern_call
from tests.upstreams.launch import stdio_argv

LOCAL_PAGE = "http://localhost:6274"  # e.g. the Inspector's UI on this machine
FOREIGN_PAGE = "https://evil.example"


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp: Path = tmp_path_factory.mktemp("cors")
    settings = make_settings(
        tmp,
        [{"id": "echo", "command": stdio_argv("echo")}],
        auth="oauth",
        identity={"tokens": {"key_file": str(tmp / "keys.json")}},
    )
    with serve_in_thread(settings) as running:
        yield running


def preflight(
    url: str, origin: str, method: str = "POST", headers: str = "content-type, authorization"
) -> httpx2.Response:
    with httpx2.Client() as http:
        return http.options(
            url,
            headers={
                "origin": origin,
                "access-control-request-method": method,
                "access-control-request-headers": headers,
            },
        )


@pytest.mark.parametrize("path", ["/mcp", "/servers/echo/mcp"])
def test_a_local_page_may_preflight_the_mcp_endpoint_and_a_foreign_one_may_not(portal: Running, path: str) -> None:
    allowed = preflight(f"{portal.base}{path}", LOCAL_PAGE, headers="content-type, authorization, mcp-protocol-version")
    refused = preflight(f"{portal.base}{path}", FOREIGN_PAGE)
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == LOCAL_PAGE
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert allowed.headers["access-control-allow-headers"] == "content-type, authorization, mcp-protocol-version"
    assert "access-control-allow-credentials" not in allowed.headers
    assert refused.status_code == 403
    assert "access-control-allow-origin" not in refused.headers


def test_a_local_page_can_read_the_challenge_that_starts_oauth_discovery(portal: Running) -> None:
    body, headers = modern_call("tools/list", {})
    with httpx2.Client() as http:
        local = http.post(portal.url, content=body, headers={**headers, "origin": LOCAL_PAGE})
        foreign = http.post(portal.url, content=body, headers={**headers, "origin": FOREIGN_PAGE})
    assert local.status_code == 401
    assert local.headers["access-control-allow-origin"] == LOCAL_PAGE
    assert "WWW-Authenticate" in local.headers["access-control-expose-headers"]
    assert "Mcp-Session-Id" in local.headers["access-control-expose-headers"]
    assert foreign.status_code == 403  # the Origin check (DNS rebinding) refuses before anything else
    assert "access-control-allow-origin" not in foreign.headers


@pytest.mark.parametrize(
    "path",
    [
        "/.well-known/oauth-authorization-server",
        "/.well-known/oauth-protected-resource/mcp",
        "/oauth/jwks.json",
        "/oauth/register",
        "/oauth/token",
        "/oauth/revoke",
    ],
)
def test_any_page_may_call_the_oauth_endpoints_a_client_fetches(portal: Running, path: str) -> None:
    answered = preflight(f"{portal.base}{path}", FOREIGN_PAGE)
    assert answered.status_code == 204
    assert answered.headers["access-control-allow-origin"] == "*"
    with httpx2.Client() as http:
        if path.startswith("/.well-known") or path.endswith("jwks.json"):
            reply = http.get(f"{portal.base}{path}", headers={"origin": FOREIGN_PAGE})
        else:
            reply = http.post(f"{portal.base}{path}", data={}, headers={"origin": FOREIGN_PAGE})
    assert reply.headers["access-control-allow-origin"] == "*"


@pytest.mark.parametrize("path", ["/oauth/authorize", "/login", "/consent"])
def test_no_page_may_read_the_sign_in_pages(portal: Running, path: str) -> None:
    with httpx2.Client() as http:
        reply = http.get(f"{portal.base}{path}", headers={"origin": LOCAL_PAGE})
        answered = preflight(f"{portal.base}{path}", LOCAL_PAGE, method="GET")
    assert "access-control-allow-origin" not in reply.headers
    assert "access-control-allow-origin" not in answered.headers
