"""The `identity:` section of `portico.yaml`: access tokens, local accounts, the embedded authorization server
and SSO providers. Relative paths are relative to the working directory, like the vault's key file.

    auth: oauth                       # top level: none (loopback only) | oauth
    identity:
      tokens:
        issuer: https://gateway.example.com   # defaults to the public URL (http.public_url, else listen)
        access_ttl_s: 600
        key_file: .portico/identity/signing-keys.json
      users: {max_failed_logins: 5, lockout_s: 900}
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from portico.identity.authserver.settings import AuthServerSettings
from portico.identity.passwords import MIN_PASSWORD_CHARS
from portico.identity.sso.settings import SsoProviderSettings

AsymmetricAlg = Literal["ES256", "ES384", "ES512", "RS256", "PS256", "EdDSA"]
SIGNING_ALG: AsymmetricAlg = "ES256"  # what Portico signs with (P-256 keys); verification may allow more
DEFAULT_KEY_FILE = Path(".portico/identity/signing-keys.json")
MCP_SCOPE = "mcp"  # the scope every MCP endpoint requires of an access token


def _default_algs() -> list[AsymmetricAlg]:
    return [SIGNING_ALG]


class TokenSettings(BaseModel):
    """How Portico's own JWT access tokens (RFC 9068) are issued, signed and verified."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    issuer: str = Field(
        "http://127.0.0.1:8080",
        description="The authorization server's issuer URL, the `iss` of every token; must equal the `issuer` "
        "in its RFC 8414 metadata exactly (no trailing slash added or removed). http only on loopback in "
        "production; no query or fragment. Defaults to Portico's public URL.",
    )
    access_ttl_s: int = Field(600, gt=0, description="Lifetime of an access token, in seconds, unless asked.")
    max_access_ttl_s: int = Field(
        86_400,
        gt=0,
        description="Longest lifetime an access token may be issued with (e.g. by `portico token issue --ttl`).",
    )
    key_file: Path = Field(
        DEFAULT_KEY_FILE,
        description="JSON key set holding the ES256 signing keys (private: mode 0600, created on first use). "
        "Replicas must share it. Losing it only invalidates outstanding tokens.",
    )
    rotation_grace_s: int = Field(
        86_400,
        ge=0,
        description="After a key rotation, how long the previous key stays published in the JWKS and accepted "
        "for verification. At least `max_access_ttl_s`, so tokens signed just before a rotation live out their "
        "lifetime.",
    )
    leeway_s: int = Field(
        30,
        ge=0,
        le=300,
        description="Clock skew tolerated for `nbf` and `iat` in the future. Expiry (`exp`) gets no leeway.",
    )
    allowed_algs: list[AsymmetricAlg] = Field(
        default_factory=_default_algs,
        description="Signature algorithms accepted when verifying; must include ES256. Symmetric algorithms "
        "(HS256…) and `none` cannot be configured: they would let a public key act as a shared secret.",
    )
    max_token_bytes: int = Field(
        8_192,
        ge=256,
        le=65_536,
        description="Longest token accepted; longer ones are rejected before any parsing.",
    )
    verify_cache_entries: int = Field(
        10_000,
        ge=0,
        description="Verified tokens remembered (LRU, each until its `exp`) so a token's signature is checked "
        "once; 0 turns the cache off.",
    )

    @field_validator("issuer")
    @classmethod
    def _issuer_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise ValueError("must be an absolute http(s) URL")
        if parts.query or parts.fragment or "#" in value or "?" in value:
            raise ValueError("must have no query or fragment (RFC 8414)")
        return value

    @field_validator("allowed_algs")
    @classmethod
    def _signing_alg_allowed(cls, value: list[AsymmetricAlg]) -> list[AsymmetricAlg]:
        if SIGNING_ALG not in value:
            raise ValueError(f"must include {SIGNING_ALG}, the algorithm Portico signs its tokens with")
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _lifetimes(self) -> TokenSettings:
        if self.access_ttl_s > self.max_access_ttl_s:
            raise ValueError("access_ttl_s must not exceed max_access_ttl_s")
        if self.rotation_grace_s < self.max_access_ttl_s:
            raise ValueError(
                "rotation_grace_s must be at least max_access_ttl_s, or tokens signed just before a rotation "
                "would be refused before they expire"
            )
        return self


class LocalUserSettings(BaseModel):
    """Local accounts: lockout after repeated failures, the password length floor, the TOTP issuer name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_failed_logins: int = Field(
        5, ge=1, description="Consecutive failed sign-ins (wrong password or code) before the account is locked."
    )
    lockout_s: float = Field(900.0, gt=0, description="How long a locked account stays locked, in seconds.")
    min_password_chars: int = Field(
        MIN_PASSWORD_CHARS, ge=MIN_PASSWORD_CHARS, description="Shortest password accepted (never below 12)."
    )
    totp_issuer: str = Field(
        "Portico", min_length=1, description="Issuer name authenticator apps show beside the account."
    )
    max_concurrent_hashes: int = Field(
        2, ge=1, description="Password hashes computed at once (each takes ~46 MiB and one core for ~100 ms)."
    )


class IdentitySettings(BaseModel):
    """Who may call Portico and how they prove it (used when `auth: oauth`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tokens: TokenSettings = Field(
        default_factory=TokenSettings, description="Access tokens Portico issues and accepts (RFC 9068 JWTs)."
    )
    users: LocalUserSettings = Field(
        default_factory=LocalUserSettings, description="Local accounts (`portico user …`): lockout, passwords, TOTP."
    )
    server: AuthServerSettings = Field(
        default_factory=AuthServerSettings,
        description="The embedded OAuth 2.1 authorization server: lifetimes, client registration, clients.",
    )
    sso: list[SsoProviderSettings] = Field(
        default_factory=list,
        description="External OpenID Connect identity providers people may sign in with (a button each on the "
        "sign-in page). Register `<public URL>/login/sso/<id>/callback` as the redirect URI at the IdP.",
    )
    sso_state_key_file: Path = Field(
        Path(".portico/identity/sso-state.key"),
        description="Key sealing the short-lived SSO state cookie (created on first use, mode 0600). Replicas "
        "must share it.",
    )

    @model_validator(mode="after")
    def _unique_providers(self) -> IdentitySettings:
        ids = [provider.id for provider in self.sso]
        if len(ids) != len(set(ids)):
            raise ValueError("sso: provider ids must be unique")
        return self
