"""Settings of the embedded authorization server (`identity.server` in `portico.yaml`).

    identity:
      server:
        code_ttl_s: 60
        dynamic_registration: true
        client_id_metadata_documents: true
        scopes: [mcp]
        clients:
          - client_id: reporting-job
            name: Nightly reporting
            grant_types: [client_credentials]
            secret: ${env:REPORTING_SECRET}
            subject: svc-reporting
            groups: [reporting]

Client secrets arrive here already resolved (the config loader expands `${env:…}`/`${vault:…}`); the
authorization server keeps only their hashes.
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

GrantType = Literal["authorization_code", "refresh_token", "client_credentials"]
SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")  # RFC 6749 §3.3
HOST_GLOB = re.compile(r"(\*\.)?[A-Za-z0-9.-]+(:[0-9]+)?")


def _default_scopes() -> list[str]:
    return ["mcp"]


def _default_grants() -> list[GrantType]:
    return ["authorization_code", "refresh_token"]


class ClientSettings(BaseModel):
    """One client registered in the configuration (rather than dynamically or by metadata document)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    client_id: str = Field(
        min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._~-]+$", description="The client's identifier."
    )
    name: str | None = Field(None, max_length=100, description="Shown on the consent page.")
    redirect_uris: list[str] = Field(
        default_factory=list,
        description="Where authorization responses may be sent, compared exactly (a loopback http redirect URI "
        "may use any port, RFC 8252 §7.3). Required for the authorization_code grant.",
    )
    grant_types: list[GrantType] = Field(
        default_factory=_default_grants, description="Grants the client may use at the token endpoint."
    )
    secret: str | None = Field(
        None,
        description="The client secret, making this a confidential client (client_secret_basic or "
        "client_secret_post). Required for client_credentials. A `${vault:…}` (scope `oauth-client:<client_id>`), "
        "`${env:…}` or `${file:…}` reference to a secret of at least 16 characters; only a hash is kept in memory.",
    )
    subject: str | None = Field(
        None,
        description="For client_credentials: the service subject tokens name (default: the client id).",
    )
    groups: list[str] = Field(default_factory=list, description="For client_credentials: the subject's groups.")
    scopes: list[str] | None = Field(
        None, description="Scopes the client may be granted (default: every scope the server offers)."
    )
    resources: list[str] | None = Field(
        None, description="Resources (protected URLs) the client may get tokens for (default: all of them)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> ClientSettings:
        if "client_credentials" in self.grant_types and self.secret is None:
            raise ValueError("client_credentials needs a secret")
        if "authorization_code" in self.grant_types and not self.redirect_uris:
            raise ValueError("authorization_code needs redirect_uris")
        for uri in self.redirect_uris:
            parts = urlsplit(uri)
            if parts.scheme not in ("https", "http") or not parts.netloc or parts.fragment:
                raise ValueError(f"redirect URI {uri!r} must be an absolute http(s) URL without a fragment")
        return self


class AuthServerSettings(BaseModel):
    """The embedded OAuth 2.1 authorization server: lifetimes, registration, login and consent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code_ttl_s: int = Field(60, gt=0, le=600, description="Lifetime of an authorization code, in seconds.")
    request_ttl_s: int = Field(
        600, gt=0, le=3600, description="How long a browser has to sign in and consent after /oauth/authorize."
    )
    refresh_ttl_s: int = Field(
        30 * 86_400,
        gt=0,
        description="Absolute lifetime of a refresh-token family, from the authorization, in seconds.",
    )
    refresh_idle_ttl_s: int = Field(
        7 * 86_400, gt=0, description="A refresh token unused for this long (seconds) expires."
    )
    session_ttl_s: int = Field(
        8 * 3600, gt=0, description="Absolute lifetime of a browser login session at the authorization server."
    )
    session_idle_ttl_s: int = Field(
        3600, gt=0, description="A browser login session unused for this long (seconds) ends."
    )
    remember_consent: bool = Field(
        False,
        description="Remember a user's consent per (client, resource, scopes) so the consent page is shown once.",
    )
    dynamic_registration: bool = Field(
        True, description="Accept RFC 7591 dynamic client registration at /oauth/register."
    )
    max_registration_bytes: int = Field(
        16_384, ge=1024, le=1_048_576, description="Largest registration request body accepted."
    )
    max_redirect_uris: int = Field(10, ge=1, le=100, description="Most redirect URIs one registered client may have.")
    registrations_per_minute: int = Field(
        30, ge=1, description="Dynamic registrations accepted per minute from one address."
    )
    failed_sign_ins_per_address: int = Field(
        30,
        ge=1,
        description="Failed sign-ins (wrong password or code) from one client address within "
        "`failed_sign_in_window_s` before that address is refused for a while, whatever account it tries "
        "(password spraying; per-account lockout is `identity.users.max_failed_logins`).",
    )
    failed_sign_in_window_s: int = Field(300, ge=10, description="The window of `failed_sign_ins_per_address`.")
    client_id_metadata_documents: bool = Field(
        True,
        description="Accept https URLs as client ids and fetch the client's metadata from them (Client ID "
        "Metadata Documents, the MCP 2025-11-25 way of identifying clients).",
    )
    cimd_allowed_hosts: list[str] | None = Field(
        None,
        description="If set, only metadata documents on these hosts are accepted; `*.example.com` matches any "
        "subdomain. Unset: any public host.",
    )
    native_redirect_schemes: list[str] = Field(
        default_factory=lambda: ["cursor", "vscode", "vscode-insiders"],
        description="Private-use URI schemes accepted in redirect URIs besides reverse-domain ones "
        "(`com.example.app:`, RFC 8252 §7.1), for native clients that use a short scheme (Cursor, VS Code). "
        "PKCE keeps an intercepted code useless; the consent page shows the redirect URI.",
    )
    cimd_allow_loopback: bool = Field(
        False,
        description="Allow metadata documents on loopback addresses, and over http there (development and tests "
        "only; private and link-local addresses stay refused).",
    )
    cimd_timeout_s: float = Field(5.0, gt=0, le=30, description="Timeout for fetching a metadata document.")
    cimd_max_bytes: int = Field(5_120, ge=512, le=65_536, description="Largest metadata document accepted.")
    cimd_cache_min_s: int = Field(60, ge=0, description="A fetched metadata document is reused for at least this long.")
    cimd_cache_max_s: int = Field(86_400, ge=0, description="…and at most this long, whatever its Cache-Control says.")
    scopes: list[str] = Field(
        default_factory=_default_scopes,
        min_length=1,
        description="Scopes the server offers; a request without `scope` is granted all of them.",
    )
    clients: list[ClientSettings] = Field(default_factory=list, description="Clients registered in the configuration.")
    revocation_poll_s: float = Field(
        5.0, gt=0, le=300, description="How often each replica reloads revocations and purges expired rows."
    )

    @field_validator("native_redirect_schemes")
    @classmethod
    def _schemes(cls, value: list[str]) -> list[str]:
        refused = {"http", "https", "javascript", "data", "file", "vbscript", "about", "blob", "filesystem", "ftp",
                   "ws", "wss", "mailto", "tel", "sms"}  # fmt: skip
        for scheme in value:
            if not re.fullmatch(r"[a-z][a-z0-9+.-]*", scheme) or scheme in refused:
                raise ValueError(f"{scheme!r} cannot be a native-app redirect scheme")
        return value

    @field_validator("scopes")
    @classmethod
    def _scope_tokens(cls, value: list[str]) -> list[str]:
        for scope in value:
            if not SCOPE_TOKEN.fullmatch(scope):
                raise ValueError(f"{scope!r} is not an RFC 6749 scope token")
        return list(dict.fromkeys(value))

    @field_validator("cimd_allowed_hosts")
    @classmethod
    def _host_globs(cls, value: list[str] | None) -> list[str] | None:
        for host in value or ():
            if not HOST_GLOB.fullmatch(host):
                raise ValueError(f"{host!r} is not a host name or *.domain")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> AuthServerSettings:
        ids = [c.client_id for c in self.clients]
        if len(ids) != len(set(ids)):
            raise ValueError("client ids must be unique")
        if self.cimd_cache_min_s > self.cimd_cache_max_s:
            raise ValueError("cimd_cache_min_s must not exceed cimd_cache_max_s")
        if self.session_idle_ttl_s > self.session_ttl_s or self.refresh_idle_ttl_s > self.refresh_ttl_s:
            raise ValueError("an idle lifetime must not exceed the absolute one")
        for client in self.clients:
            unknown = set(client.scopes or ()) - set(self.scopes)
            if unknown:
                raise ValueError(f"client {client.client_id}: scopes not offered by the server: {sorted(unknown)}")
        return self
