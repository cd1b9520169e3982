"""The official SDK's OAuth client provider with a person at the browser: signs in on Portico's real pages
(through `FormBrowser`, no JavaScript) and approves, so tests can run the whole MCP authorization flow."""

from __future__ import annotations

from mcp.client.auth import OAuthClientProvider
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

from tests.support.browser import FormBrowser

REDIRECT = "http://127.0.0.1:9/callback"  # never fetched: the browser stops at it and hands over the code


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

    return OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            redirect_uris=[REDIRECT],  # type: ignore[list-item]
            client_name=f"SDK client of {username}",
            grant_types=["authorization_code", "refresh_token"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )
