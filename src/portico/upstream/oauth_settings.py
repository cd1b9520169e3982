"""The `oauth:` block of a remote server: Portico as the OAuth client toward an upstream that needs each user's
own authorization. Plain pydantic, no Portico imports (`portico.config` imports this module).

    servers:
      - id: github
        url: https://mcp.github.example/mcp
        oauth:
          client_id: Iv1.8a61f9b3a7aba766          # omit: dynamic registration (RFC 7591) at the upstream's AS
          client_secret: ${vault:oauth_client_secret}  # omit: a public client (PKCE only)
          scopes: [repo, read:org]                 # omit: the 401 challenge's scope=, else the PRM's scopes_supported
          catalog: service
          catalog_credential: ${vault:catalog_token}
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_REFERENCE = re.compile(r"^\$\{(vault|env|file):[^}]+\}$")
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")  # RFC 6749 §3.3 scope-token


class UpstreamOAuthSettings(BaseModel):
    """Per-user OAuth toward one upstream: each user connects once in a browser; Portico keeps their tokens in
    the vault (scope `user:<subject>:server:<id>`), refreshes them, and never forwards the client's own token."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    client_id: str | None = Field(
        None,
        description="Portico's client id at the upstream's authorization server; omitted: dynamic client "
        "registration (RFC 7591), the registration kept in the vault (scope `server:<id>`, name `oauth_client`).",
    )
    client_secret: str | None = Field(
        None,
        description="Its secret as a ${vault:NAME} (scope server:<id>), ${env:NAME} or ${file:PATH} reference; "
        "omitted: a public client authenticated by PKCE only.",
    )
    scopes: list[str] | None = Field(
        None,
        description="Scopes to ask for; omitted: the upstream's 401 challenge `scope=`, else its protected resource "
        "metadata `scopes_supported`, else none.",
    )
    authorization_server: str | None = Field(
        None, description="Issuer URL to use instead of the first one the protected resource metadata names."
    )
    catalog: Literal["service"] = Field(
        "service",
        description="How Portico lists this server's tools: `service` only, with `catalog_credential`, or with no "
        "credential when the upstream lists without one. A user's token is never used for listing.",
    )
    catalog_credential: str | None = Field(
        None,
        description="Bearer token for listing only, as a ${vault:…}/${env:…}/${file:…} reference; never used for "
        "a user's call. Needed when the upstream requires authorization to list (else the server stays down "
        "with an error saying so).",
    )
    allow_private_network: bool = Field(
        False,
        description="Accept metadata and endpoint URLs on private addresses (10/8, 172.16/12, 192.168/16, "
        "fc00::/7). Loopback is accepted only when the server's own url is loopback; link-local and cloud "
        "metadata addresses never are.",
    )
    max_user_connections: int = Field(256, gt=0, description="Per-user upstream connections kept open at most.")
    idle_timeout_s: float = Field(300.0, gt=0, description="A per-user connection unused this long is closed.")
    refresh_skew_s: float = Field(
        30.0, ge=0, description="Refresh an access token this long before it expires (clock skew, request time)."
    )
    ticket_ttl_s: float = Field(600.0, gt=0, le=3600, description="Lifetime of a connect link handed to a client.")
    http_timeout_s: float = Field(10.0, gt=0, description="Timeout of each metadata, registration and token request.")

    @field_validator("client_secret", "catalog_credential")
    @classmethod
    def _reference_only(cls, value: str | None) -> str | None:
        if value is not None and not _REFERENCE.match(value):
            raise ValueError("must be a ${vault:NAME}, ${env:NAME} or ${file:PATH} reference, never the secret itself")
        return value

    @field_validator("scopes")
    @classmethod
    def _scope_shape(cls, value: list[str] | None) -> list[str] | None:
        for scope in value or []:
            if not _SCOPE_TOKEN.match(scope):
                raise ValueError(f"not a valid OAuth scope token: {scope!r}")
        return value

    @field_validator("authorization_server")
    @classmethod
    def _issuer_shape(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/?#]+", value):
            raise ValueError("must be an http(s) issuer URL")
        return value
