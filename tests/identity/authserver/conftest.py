"""A real authorization server on a loopback port (uvicorn), over a real store on each backend, driven with
httpx2 the way a browser and an OAuth client would: form posts, cookies, redirects read by hand."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import anyio
import httpx2
import pytest
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from portico.identity.authserver.app import AuthServer
from portico.identity.authserver.settings import AuthServerSettings
from portico.identity.keys import KeyRing
from portico.identity.settings import TokenSettings
from portico.identity.tokens import TokenIssuer, TokenVerifier
from portico.identity.users import UserDirectory
from portico.store import Store
from tests.identity.conftest import ManualClock
from tests.support.portico import free_port
from tests.support.waits import eventually

PASSWORD = "correct horse battery staple"
REDIRECT = "http://127.0.0.1:9999/callback"


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def jti_of(token: str) -> str:
    segment = token.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))["jti"])


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, f"no hidden field {name}"
    return match.group(1)


@asynccontextmanager
async def serve_asgi(app: ASGIApp, port: int) -> AsyncIterator[str]:
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning", access_log=False)
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        await eventually(lambda: server.started, 30, 0.02)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True


class Router:
    """Routes the AS's paths to it, like Portico's router does; 404 for everything else."""

    def __init__(self, auth: AuthServer) -> None:
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.auth.handles(scope["path"]):
            await self.auth(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@dataclass
class Harness:
    base: str
    auth: AuthServer
    clock: ManualClock
    directory: UserDirectory
    verifier: TokenVerifier
    http: httpx2.AsyncClient
    resources: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base + path

    def browser(self) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(base_url=self.base, follow_redirects=False, timeout=30)

    async def register(self, **metadata: Any) -> dict[str, Any]:
        body = {
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "client_name": "Test client",
            **metadata,
        }
        response = await self.http.post(self.url("/oauth/register"), json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def authorize(
        self, browser: httpx2.AsyncClient, client_id: str, challenge: str | None, **extra: str
    ) -> httpx2.Response:
        params = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT,
            "state": "st-1",
            "code_challenge_method": "S256",
            **extra,
        }
        if challenge is not None:
            params["code_challenge"] = challenge
        params = {k: v for k, v in params.items() if v != "<absent>"}
        return await browser.get(self.url("/oauth/authorize?" + urlencode(params)))

    async def sign_in(
        self, browser: httpx2.AsyncClient, location: str, username: str = "alice", password: str = PASSWORD
    ) -> httpx2.Response:
        """From the /login redirect: post the password form; the response after it (a redirect or a page)."""
        page = await browser.get(location)
        assert page.status_code == 200, page.text
        form = {
            "request": hidden(page.text, "request"),
            "csrf": hidden(page.text, "csrf"),
            "username": username,
            "password": password,
        }
        return await browser.post("/login", data=form)

    async def consent(self, browser: httpx2.AsyncClient, location: str, decision: str = "approve") -> dict[str, str]:
        """From the /consent redirect: post the decision; the query the client's redirect URI receives."""
        page = await browser.get(location)
        assert page.status_code == 200, page.text
        form = {"request": hidden(page.text, "request"), "csrf": hidden(page.text, "csrf"), "decision": decision}
        response = await browser.post("/consent", data=form)
        assert response.status_code == 303, response.text
        assert response.headers["location"].startswith(REDIRECT)
        return query_of(response.headers["location"])

    async def code_for(self, client_id: str, challenge: str, **extra: str) -> str:
        """A full browser round: authorize, sign in as alice, approve; the authorization code."""
        async with self.browser() as browser:
            response = await self.authorize(browser, client_id, challenge, **extra)
            assert response.status_code == 303, response.text
            response = await self.sign_in(browser, response.headers["location"])
            assert response.status_code == 303, response.text
            query = await self.consent(browser, response.headers["location"])
        assert query["state"] == "st-1"
        assert query["iss"] == self.base
        return query["code"]

    async def token(self, **form: str) -> httpx2.Response:
        auth = form.pop("basic", None)
        headers = {}
        if auth is not None:
            headers["authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
        return await self.http.post(self.url("/oauth/token"), data=form, headers=headers)

    async def exchange(self, client_id: str, code: str, verifier: str, **extra: str) -> httpx2.Response:
        return await self.token(
            grant_type="authorization_code",
            client_id=client_id,
            code=code,
            redirect_uri=REDIRECT,
            code_verifier=verifier,
            **extra,
        )


HarnessFactory = Callable[..., Any]


@pytest.fixture
async def make_harness(store: Store, directory: UserDirectory, clock: ManualClock) -> AsyncIterator[Callable[..., Any]]:
    """`async with make_harness(**settings) as h:` a served AS with user alice (group eng)."""
    await directory.add_user("alice", PASSWORD, groups=["eng"])

    @asynccontextmanager
    async def make(http_client: Any = None, wrap: Any = None, **settings: Any) -> AsyncIterator[Harness]:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        tokens = TokenSettings(issuer=base)
        keyring = KeyRing.generate(grace_s=tokens.rotation_grace_s, clock=clock)
        resources = [f"{base}/mcp", f"{base}/servers/notes/mcp"]
        auth = AuthServer(
            AuthServerSettings(**settings),
            tokens,
            TokenIssuer(keyring, tokens, clock),
            keyring,
            store,
            directory,
            lambda: resources,
            None,
            clock=clock,
            http_client=http_client,
        )
        verifier = TokenVerifier(keyring, tokens, clock, is_revoked=auth.is_revoked)
        app = wrap(auth, verifier, base) if wrap is not None else Router(auth)
        async with serve_asgi(app, port), httpx2.AsyncClient(timeout=30) as http:
            yield Harness(base, auth, clock, directory, verifier, http, resources)

    return make
