"""Client ID Metadata Documents: an https URL as client id, fetched under SSRF guards."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.types import Receive, Scope, Send

from portico.identity.authserver.cimd import address_allowed, cache_seconds, parse_client_id_url, parse_document
from portico.identity.authserver.model import OAuthError
from tests.identity.authserver.conftest import REDIRECT, pkce, serve_asgi
from tests.support.portico import free_port

pytestmark = pytest.mark.anyio


class MetadataHost:
    """Serves one client metadata document at /client.json, naming itself by the URL it is served at."""

    def __init__(self, **overrides: Any) -> None:
        self.url = ""
        self.overrides = overrides
        self.fetches = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.fetches += 1
        doc = {
            "client_id": self.url,
            "client_name": "CIMD client",
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
            **self.overrides,
        }
        body = json.dumps(doc).encode()
        headers = [(b"content-type", b"application/json"), (b"cache-control", b"max-age=3600")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def test_metadata_document_client_completes_the_code_flow(make_harness: Any) -> None:
    host = MetadataHost()
    port = free_port()
    host.url = f"http://127.0.0.1:{port}/client.json"
    async with serve_asgi(host, port), make_harness(cimd_allow_loopback=True) as h:
        verifier, challenge = pkce()
        code = await h.code_for(host.url, challenge)
        response = await h.exchange(host.url, code, verifier)
        assert response.status_code == 200, response.text
        token = h.verifier.verify(response.json()["access_token"], h.resources[0])
        await h.code_for(host.url, challenge)
    assert token.client_id == host.url
    assert host.fetches == 1  # cached per its max-age


async def test_a_loopback_metadata_document_is_refused_unless_allowed(make_harness: Any) -> None:
    host = MetadataHost()
    port = free_port()
    host.url = f"http://127.0.0.1:{port}/client.json"
    async with serve_asgi(host, port), make_harness() as h:
        _, challenge = pkce()
        async with h.browser() as browser:
            response = await h.authorize(browser, host.url, challenge)
    assert response.status_code == 400
    assert "location" not in response.headers
    assert host.fetches == 0


async def test_a_document_naming_another_client_id_is_refused(make_harness: Any) -> None:
    host = MetadataHost(client_id="https://someone-else.example/client.json")
    port = free_port()
    host.url = f"http://127.0.0.1:{port}/client.json"
    async with serve_asgi(host, port), make_harness(cimd_allow_loopback=True) as h:
        _, challenge = pkce()
        async with h.browser() as browser:
            response = await h.authorize(browser, host.url, challenge)
    assert response.status_code == 400
    assert "location" not in response.headers


@pytest.mark.parametrize(
    "url",
    [
        "http://app.example/client.json",  # not https
        "https://app.example/",  # no path
        "https://user:pw@app.example/c.json",  # user info
        "https://app.example/c.json#x",  # fragment
        "https://app.example/a/../c.json",  # dot segment
    ],
)
def test_client_id_urls_of_the_wrong_shape_are_refused(url: str) -> None:
    with pytest.raises(OAuthError) as err:
        parse_client_id_url(url, allow_loopback=False)
    assert err.value.error == "invalid_client"


@pytest.mark.parametrize(
    ("address", "loopback", "allowed"),
    [
        ("93.184.216.34", False, True),
        ("10.0.0.1", False, False),
        ("192.168.1.1", False, False),
        ("169.254.169.254", False, False),  # cloud metadata
        ("127.0.0.1", False, False),
        ("127.0.0.1", True, True),
        ("::1", True, True),
        ("fe80::1", True, False),
        ("::ffff:10.0.0.1", False, False),
        ("fc00::1", False, False),
        ("0.0.0.0", False, False),
    ],
)
def test_only_public_addresses_are_fetched(address: str, loopback: bool, allowed: bool) -> None:
    assert address_allowed(address, allow_loopback=loopback) is allowed


@pytest.mark.parametrize(
    "doc",
    [
        {"client_id": "https://a.example/c.json", "redirect_uris": [REDIRECT], "client_secret": "x"},
        {
            "client_id": "https://a.example/c.json",
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "client_secret_basic",
        },
        {"client_id": "https://a.example/c.json", "redirect_uris": ["javascript:alert(1)"]},
        {"client_id": "https://a.example/c.json"},
        {"client_id": "https://a.example/other.json", "redirect_uris": [REDIRECT]},
    ],
)
def test_unusable_metadata_documents_are_refused(doc: dict[str, Any]) -> None:
    with pytest.raises(OAuthError):
        parse_document("https://a.example/c.json", json.dumps(doc).encode())


@pytest.mark.parametrize(
    ("header", "seconds"),
    [(None, 60), ("max-age=3600", 3600), ("max-age=5", 60), ("max-age=999999999", 86400), ("no-store", 60)],
)
def test_cache_lifetime_follows_max_age_within_bounds(header: str | None, seconds: int) -> None:
    assert cache_seconds(header, low=60, high=86400) == seconds
