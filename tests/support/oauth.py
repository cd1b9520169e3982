"""OAuth as tests drive it: the official SDK's client provider with a person at the browser (signing in on
Portico's real pages through `FormBrowser`, no JavaScript, and approving), and the pieces of a hand-driven
authorization-code flow (registration, a PKCE authorize URL, the code exchange's verifier)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Awaitable, Callable

import httpx2
from mcp.client.auth import OAuthClientProvider
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

from tests.support.browser import FormBrowser, Page

REDIRECT = "http://127.0.0.1:9/callback"  # never fetched: the browser stops at it and hands over the code
VERIFIER = "v" * 64  # the PKCE verifier of every hand-driven flow
CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).rstrip(b"=").decode()


class MemoryStorage:
    """Where the SDK keeps its registration and tokens (a real client would use a keychain)."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


def signing_in_as(
    username: str, password: str, url: str, storage: MemoryStorage, seen: list[str] | None = None
) -> OAuthClientProvider:
    """The SDK's provider, with a person who signs in as `username` and approves whatever it is asked."""
    callback: dict[str, str] = {}

    async def redirect_handler(authorize_url: str) -> None:
        if seen is not None:
            seen.append(authorize_url)
        async with FormBrowser(stop_at=REDIRECT) as browser:
            page = await browser.open(authorize_url)
            page = await browser.submit(page.form("password"), {"username": username, "password": password})
            page = await browser.submit(page.form("decision"), button="approve")
            callback.update(page.callback_params)

    async def callback_handler() -> AuthorizationCodeResult:
        return AuthorizationCodeResult(code=callback["code"], state=callback.get("state"), iss=callback.get("iss"))

    return sdk_provider(url, storage, redirect_handler, callback_handler, f"SDK client of {username}")


def sdk_provider(
    url: str,
    storage: MemoryStorage,
    redirect_handler: Callable[[str], Awaitable[None]],
    callback_handler: Callable[[], Awaitable[AuthorizationCodeResult]],
    client_name: str = "SDK client",
) -> OAuthClientProvider:
    """The SDK's provider for a public client redirecting to `REDIRECT` (registered dynamically)."""
    return OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            redirect_uris=[REDIRECT],  # type: ignore[list-item]
            client_name=client_name,
            grant_types=["authorization_code", "refresh_token"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )


async def register(http: httpx2.AsyncClient, base: str) -> str:
    """Register a public client redirecting to `REDIRECT`; its client id."""
    reply = await http.post(
        f"{base}/oauth/register", json={"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}
    )
    assert reply.status_code == 201, reply.text
    return str(reply.json()["client_id"])


def authorize_url(base: str, client_id: str, resource: str) -> str:
    """An authorization request with PKCE S256 (`CHALLENGE`) for `resource`."""
    query = httpx2.QueryParams(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT,
            "code_challenge": CHALLENGE,
            "code_challenge_method": "S256",
            "resource": resource,
        }
    )
    return f"{base}/oauth/authorize?{query}"


async def submit_password(browser: FormBrowser, base: str, resource: str, username: str, password: str) -> Page:
    """Register a client, start its authorization in `browser` and submit the password; the page that follows."""
    page = await browser.open(authorize_url(base, await register(browser.http, base), resource))
    return await browser.submit(page.form("password"), {"username": username, "password": password})
