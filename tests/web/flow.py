"""The OAuth client's half of the browser tests: register by DCR, build the authorize URL (PKCE S256), exchange
the code, call the MCP endpoint with the token; and local users on the running Portico's store.

The client's redirect URI is never served: the browser context catches it (tests/support/chromium.py).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx2

from portico.identity.passwords import Argon2Params, PasswordHasher
from portico.identity.users import UserDirectory
from tests.support.portico import Running
from tests.support.wire import modern_call, rpc_answer

REDIRECT = "http://127.0.0.1:47613/callback"  # nothing listens: the browser context records the request to it
CLIENT_NAME = "Browser Test Client"
PASSWORD = "correct horse battery staple"
# Cheap Argon2 for the accounts the tests create; Portico's own directory verifies them all the same (the
# parameters are in the hash), then upgrades the hash to its own parameters on the first sign-in.
FAST_HASHER = PasswordHasher(Argon2Params(time_cost=1, memory_kib=1024))


@dataclass
class Portal:
    running: Running
    client_id: str

    @property
    def base(self) -> str:
        return self.running.base

    def directory(self) -> UserDirectory:
        portico = self.running.portico
        assert portico.store is not None
        assert portico.vault is not None
        return UserDirectory(portico.store, portico.vault, hasher=FAST_HASHER)

    async def add_user(self, username: str, **kwargs: Any) -> str:
        await self.directory().add_user(username, PASSWORD, **kwargs)
        return username

    def authorize_url(self, challenge: str, state: str, **extra: str) -> str:
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": REDIRECT,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            **extra,
        }
        return f"{self.base}/oauth/authorize?{urlencode(params)}"

    async def exchange(self, code: str, verifier: str) -> dict[str, Any]:
        form = {
            "grant_type": "authorization_code",
            "client_id": self.client_id,
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        }
        async with httpx2.AsyncClient(timeout=30, trust_env=False) as http:
            response = await http.post(f"{self.base}/oauth/token", data=form)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def list_tools(self, access_token: str) -> dict[str, Any]:
        body, headers = modern_call("tools/list", {})
        headers["authorization"] = f"Bearer {access_token}"
        async with httpx2.AsyncClient(timeout=30, trust_env=False) as http:
            response = await http.post(self.running.url, content=body, headers=headers)
        assert response.status_code == 200, response.text
        return rpc_answer(response)


async def register_client(base: str) -> str:
    """A public client registered by RFC 7591 dynamic registration; its client_id."""
    metadata = {
        "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "client_name": CLIENT_NAME,
    }
    async with httpx2.AsyncClient(timeout=30, trust_env=False) as http:
        response = await http.post(f"{base}/oauth/register", json=metadata)
    assert response.status_code == 201, response.text
    return str(response.json()["client_id"])


def pkce() -> tuple[str, str]:
    """(verifier, S256 challenge)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def claims_of(jwt: str) -> dict[str, Any]:
    """The payload of a JWT, unverified (Portico's /mcp endpoint is what verifies it, in the tests)."""
    segment = jwt.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))))
