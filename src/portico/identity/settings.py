"""The access-token settings of the embedded authorization server: issuer, lifetimes, signing keys, checks.

Not yet a section of `portico.yaml` on its own; the identity section that wires the OAuth endpoints will hold
it. Relative paths are relative to the working directory, like the vault's key file.

    issuer: https://gateway.example.com
    access_ttl_s: 600
    key_file: .portico/identity/signing-keys.json
    rotation_grace_s: 86400
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

AsymmetricAlg = Literal["ES256", "ES384", "ES512", "RS256", "PS256", "EdDSA"]
SIGNING_ALG: AsymmetricAlg = "ES256"  # what Portico signs with (P-256 keys); verification may allow more
DEFAULT_KEY_FILE = Path(".portico/identity/signing-keys.json")


def _default_algs() -> list[AsymmetricAlg]:
    return [SIGNING_ALG]


class TokenSettings(BaseModel):
    """How Portico's own JWT access tokens (RFC 9068) are issued, signed and verified."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    issuer: str = Field(
        "http://127.0.0.1:8080",
        description="The authorization server's issuer URL, the `iss` of every token; must equal the `issuer` "
        "in its RFC 8414 metadata exactly (no trailing slash added or removed). http only on loopback in "
        "production; no query or fragment.",
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
