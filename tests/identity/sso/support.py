"""Run `SsoLogin` for real: wrapped in a tiny ASGI app whose `on_login` answers with the identity as JSON, served
by uvicorn on loopback next to the test issuer; a browser made of httpx2 with a cookie jar, redirects followed
by hand so each hop can be inspected or tampered with."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx2
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from portico.audit.log import AuditLog
from portico.errors import PorticoError
from portico.identity.login import LoginIdentity
from portico.identity.sso.app import SsoLogin
from portico.identity.sso.settings import SsoProviderSettings
from tests.support.oidc_issuer import OidcIssuer, serve_asgi
from tests.support.portico import free_port

PROVIDER = "test"
STATE_KEY = secrets.token_bytes(32)


def provider_settings(idp: OidcIssuer, /, **overrides: Any) -> SsoProviderSettings:
    values: dict[str, Any] = {
        "id": PROVIDER,
        "display_name": "Test IdP",
        "issuer": idp.issuer,
        "client_id": idp.client_id,
        "client_secret": idp.client_secret,
        "timeout_s": 10,
    }
    values.update(overrides)
    return SsoProviderSettings.model_validate(values)


class RejectingRequest(PorticoError):
    default_public = "That sign-in request has expired."


@dataclass
class Gateway:
    base: str
    sso: SsoLogin
    logins: list[tuple[str, LoginIdentity]] = field(default_factory=list)

    def start_url(self, request_id: str = "req-1", provider: str = PROVIDER) -> str:
        return f"{self.base}/login/sso/{provider}?request={request_id}"


class _App:
    """The authorization server's stand-in: SSO paths to `SsoLogin`, everything else 404."""

    def __init__(self, gateway_box: list[Gateway]) -> None:
        self._box = gateway_box

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sso = self._box[0].sso
        if scope["type"] == "http" and sso.handles(scope["path"]):
            await sso(scope, receive, send)
        else:
            await Response(status_code=404)(scope, receive, send)


@asynccontextmanager
async def running_gateway(
    issuer: OidcIssuer,
    *providers: SsoProviderSettings,
    audit: AuditLog | None = None,
    state_key: bytes = STATE_KEY,
    clock: Any = None,
    public_url: str | None = None,
    **overrides: Any,
) -> AsyncIterator[Gateway]:
    """A gateway with `providers` (default: one provider for `issuer` with `overrides`) on a loopback port.
    `public_url` (default: its own address) lets two gateways act as replicas behind one name."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    box: list[Gateway] = []

    async def on_login(request: Request, request_id: str, identity: LoginIdentity) -> ASGIApp:
        assert request.url.path.endswith("/callback")
        box[0].logins.append((request_id, identity))
        if request_id == "expired-request":
            raise RejectingRequest(detail="no such pending request")
        return JSONResponse(
            {
                "request": request_id,
                "subject": identity.subject,
                "username": identity.username,
                "groups": sorted(identity.groups),
                "amr": list(identity.amr),
                "mfa": identity.mfa,
                "idp": identity.idp,
                "display_name": identity.display_name,
                "extra": identity.extra,
            }
        )

    settings = list(providers) or [provider_settings(issuer, **overrides)]
    extra: dict[str, Any] = {"clock": clock} if clock is not None else {}
    sso = SsoLogin(settings, public_url or base, on_login, state_key=state_key, audit=audit, **extra)
    gateway = Gateway(base, sso)
    box.append(gateway)
    for p in settings:
        issuer.redirect_uris.append(sso.redirect_uri(p.id))
    try:
        async with serve_asgi(_App(box), port):
            yield gateway
    finally:
        await sso.aclose()


@asynccontextmanager
async def browser() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(follow_redirects=False, timeout=30, trust_env=False) as client:
        yield client


async def to_idp(client: httpx2.AsyncClient, gateway: Gateway, request_id: str = "req-1") -> httpx2.Response:
    """Step 1: Portico sends the browser to the IdP."""
    response = await client.get(gateway.start_url(request_id))
    assert response.status_code == 302, response.text
    return response


async def back_from_idp(client: httpx2.AsyncClient, to_idp_response: httpx2.Response) -> httpx2.Response:
    """Step 2: the IdP (auto-approving) sends the browser back to Portico's callback."""
    response = await client.get(to_idp_response.headers["location"])
    assert response.status_code == 302, response.text
    return response


async def sign_in(client: httpx2.AsyncClient, gateway: Gateway, request_id: str = "req-1") -> httpx2.Response:
    """The whole round trip; the callback's response."""
    callback = await back_from_idp(client, await to_idp(client, gateway, request_id))
    return await client.get(callback.headers["location"])


def refusal(response: httpx2.Response) -> str:
    """The reason code on an SSO error page (and a check that it is one)."""
    assert response.headers["content-type"].startswith("text/html"), response.headers
    marker = 'data-reason="'
    assert marker in response.text, response.text
    return response.text.split(marker, 1)[1].split('"', 1)[0]
