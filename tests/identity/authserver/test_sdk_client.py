"""The MCP SDK's own OAuth client provider completes discovery, registration, authorization and the token
exchange against this server (with a minimal protected resource in front, as Portico will put there)."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest
from mcp.client.auth import OAuthClientProvider
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata
from starlette.types import Receive, Scope, Send

from portico.identity.authserver.app import AuthServer
from portico.identity.tokens import InvalidTokenError, TokenVerifier
from tests.identity.authserver.conftest import PASSWORD, REDIRECT, hidden, query_of
from tests.support.oauth import MemoryStorage

pytestmark = pytest.mark.anyio


class ProtectedResource:
    """/mcp answers 200 to a valid bearer token for it, else 401 pointing at its protected resource metadata."""

    def __init__(self, auth: AuthServer, verifier: TokenVerifier, base: str) -> None:
        self.auth, self.verifier, self.base = auth, verifier, base

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if self.auth.handles(path):
            await self.auth(scope, receive, send)
            return
        status, headers, body = 404, [], b""
        if path == "/.well-known/oauth-protected-resource/mcp":
            doc = {"resource": f"{self.base}/mcp", "authorization_servers": [self.base], "scopes_supported": ["mcp"]}
            status, body = 200, json.dumps(doc).encode()
            headers = [(b"content-type", b"application/json")]
        elif path == "/mcp":
            auth_header = dict(scope["headers"]).get(b"authorization", b"").decode()
            try:
                self.verifier.verify(auth_header.removeprefix("Bearer "), f"{self.base}/mcp")
                status, body = 200, b"{}"
            except InvalidTokenError:
                status = 401
                meta = f'Bearer resource_metadata="{self.base}/.well-known/oauth-protected-resource/mcp"'
                headers = [(b"www-authenticate", meta.encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def test_the_sdk_oauth_client_registers_signs_in_and_calls_the_resource(make_harness: Any) -> None:
    async with make_harness(wrap=ProtectedResource) as h:
        callback: dict[str, str] = {}

        async def redirect_handler(url: str) -> None:  # the person in the browser: sign in and approve
            async with h.browser() as browser:
                response = await browser.get(url)
                assert response.status_code == 303, response.text
                response = await h.sign_in(browser, response.headers["location"], "alice", PASSWORD)
                page = await browser.get(response.headers["location"])
                form = {
                    "request": hidden(page.text, "request"),
                    "csrf": hidden(page.text, "csrf"),
                    "decision": "approve",
                }
                response = await browser.post("/consent", data=form)
                callback.update(query_of(response.headers["location"]))

        async def callback_handler() -> AuthorizationCodeResult:
            return AuthorizationCodeResult(code=callback["code"], state=callback["state"], iss=callback.get("iss"))

        storage = MemoryStorage()
        provider = OAuthClientProvider(
            server_url=f"{h.base}/mcp",
            client_metadata=OAuthClientMetadata(
                redirect_uris=[REDIRECT],
                client_name="SDK client",
                grant_types=["authorization_code", "refresh_token"],
                token_endpoint_auth_method="none",
            ),
            storage=storage,
            redirect_handler=redirect_handler,
            callback_handler=callback_handler,
        )
        async with httpx2.AsyncClient(auth=provider, timeout=30) as client:
            response = await client.get(f"{h.base}/mcp")
    assert response.status_code == 200
    assert storage.tokens is not None
    assert storage.tokens.refresh_token
    assert storage.client is not None
    assert storage.client.client_id
