"""One configured IdP as seen over the network: its discovery document and signing keys, cached.

Sits under `flow` (which runs a sign-in) and over httpx2. Metadata is read lazily, on the first sign-in, so an
IdP that is down at start-up does not stop Portico; it is reused for `metadata_ttl_s`. The JWKS is cached the
same way and re-read early when an ID token names a `kid` it does not hold (key rotation), at most once per
`jwks_refresh_min_interval_s`. Every endpoint the metadata names must be https (http only on loopback).

All outbound requests go through `fetch_json`, the one place httpx2 and JSON errors become `SsoError`s:
redirects are not followed, bodies are capped at `MAX_BODY_BYTES`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import httpx2
import orjson
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry, Key

from portico.identity.sso.errors import SsoError, SsoFailure
from portico.identity.sso.settings import SsoProviderSettings, check_url

MAX_BODY_BYTES = 1 << 20
# Asymmetric only: HS* would make the client secret a signing key, `none` is no signature.
ID_TOKEN_ALGS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"})
WELL_KNOWN = "/.well-known/openid-configuration"

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    """The parts of an OIDC discovery document Portico uses."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    id_token_algs: frozenset[str]


def parse_metadata(doc: Mapping[str, Any], expected_issuer: str) -> ProviderMetadata:
    """The metadata in a discovery document for `expected_issuer`.

    Raises:
        SsoError: `DISCOVERY_ISSUER_MISMATCH` when `issuer` differs in any way (OIDC Discovery §4.3),
            `DISCOVERY_FAILED` when an endpoint is missing or not https.
    """
    if doc.get("issuer") != expected_issuer:
        raise SsoError(SsoFailure.DISCOVERY_ISSUER_MISMATCH, detail=f"discovery issuer is {doc.get('issuer')!r}")
    endpoints: dict[str, str | None] = {}
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint"):
        value = doc.get(name)
        if value is None and name == "userinfo_endpoint":
            endpoints[name] = None
            continue
        if not isinstance(value, str):
            raise SsoError(SsoFailure.DISCOVERY_FAILED, detail=f"discovery document has no {name}")
        try:
            endpoints[name] = check_url(value, name)
        except ValueError as exc:
            raise SsoError(SsoFailure.DISCOVERY_FAILED, detail=str(exc)) from None
    advertised = doc.get("id_token_signing_alg_values_supported")
    algs = ID_TOKEN_ALGS & set(advertised) if isinstance(advertised, list) else ID_TOKEN_ALGS
    if not algs:
        raise SsoError(SsoFailure.DISCOVERY_FAILED, detail=f"no usable ID token algorithm in {advertised!r}")
    return ProviderMetadata(
        issuer=expected_issuer,
        authorization_endpoint=str(endpoints["authorization_endpoint"]),
        token_endpoint=str(endpoints["token_endpoint"]),
        jwks_uri=str(endpoints["jwks_uri"]),
        userinfo_endpoint=endpoints["userinfo_endpoint"],
        id_token_algs=frozenset(algs),
    )


def parse_jwks(doc: Mapping[str, Any]) -> dict[str | None, Key]:
    """Signing keys by `kid` (None for a key without one). Encryption keys and keys joserfc cannot read are
    skipped; a private part, if an IdP publishes one by mistake, is never used for anything but verifying."""
    keys: dict[str | None, Key] = {}
    entries = doc.get("keys")
    if not isinstance(entries, list):
        raise SsoError(SsoFailure.DISCOVERY_FAILED, detail="JWKS has no keys list")
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig" or entry.get("kty") == "oct":
            continue
        try:
            key = JWKRegistry.import_key(entry)
        except (JoseError, ValueError, TypeError):
            continue
        kid = entry.get("kid")
        keys[kid if isinstance(kid, str) else None] = key
    return keys


async def fetch_json(
    http: httpx2.AsyncClient,
    method: str,
    url: str,
    *,
    failure: SsoFailure,
    timeout_s: float,
    accept_error_body: bool = False,
    **kwargs: Any,
) -> tuple[int, Any]:
    """`(status, parsed JSON body)` of one request. Non-2xx fails unless `accept_error_body` (the token endpoint
    answers errors as JSON with 400/401).

    Raises:
        SsoError: `failure`, on a transport error, a redirect, an oversized or non-JSON body, or a non-2xx status.
    """
    try:
        async with http.stream(method, url, timeout=timeout_s, follow_redirects=False, **kwargs) as response:
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    raise SsoError(failure, detail=f"{url}: body over {MAX_BODY_BYTES} bytes")
            status = response.status_code
    except httpx2.HTTPError as exc:
        raise SsoError(failure, detail=f"{method} {url}: {type(exc).__name__}: {exc}") from None
    if not 200 <= status < 300 and not (accept_error_body and 400 <= status < 500):
        raise SsoError(failure, detail=f"{method} {url}: HTTP {status}")
    try:
        return status, orjson.loads(body)
    except orjson.JSONDecodeError:
        raise SsoError(failure, detail=f"{method} {url}: HTTP {status}, body is not JSON") from None


class OidcProvider:
    """The discovery document and signing keys of one IdP, fetched on demand and cached."""

    def __init__(self, settings: SsoProviderSettings, http: httpx2.AsyncClient, clock: Clock = time.time) -> None:
        self.settings = settings
        self._http = http
        self._clock = clock
        self._metadata: ProviderMetadata | None = None
        self._metadata_at = 0.0
        self._keys: dict[str | None, Key] = {}
        self._keys_at = 0.0
        self._lock = anyio.Lock()

    async def metadata(self) -> ProviderMetadata:
        """The IdP's metadata, read again once `metadata_ttl_s` has passed.

        Raises:
            SsoError: `DISCOVERY_FAILED` or `DISCOVERY_ISSUER_MISMATCH`.
        """
        async with self._lock:
            if self._metadata is None or self._clock() - self._metadata_at >= self.settings.metadata_ttl_s:
                url = self.settings.issuer.rstrip("/") + WELL_KNOWN
                _, doc = await fetch_json(
                    self._http, "GET", url, failure=SsoFailure.DISCOVERY_FAILED, timeout_s=self.settings.timeout_s
                )
                if not isinstance(doc, dict):
                    raise SsoError(SsoFailure.DISCOVERY_FAILED, detail="discovery document is not an object")
                self._metadata = parse_metadata(doc, self.settings.issuer)
                self._metadata_at = self._clock()
            return self._metadata

    async def signing_key(self, kid: str | None) -> Key:
        """The IdP's key for `kid`; the JWKS is re-read if it is stale or (rate-limited) if `kid` is unknown.

        Raises:
            SsoError: `ID_TOKEN_UNKNOWN_KEY`, or `DISCOVERY_FAILED` when the JWKS cannot be read.
        """
        metadata = await self.metadata()
        async with self._lock:
            age = self._clock() - self._keys_at
            stale = not self._keys or age >= self.settings.metadata_ttl_s
            unknown = _pick(self._keys, kid) is None and age >= self.settings.jwks_refresh_min_interval_s
            if stale or unknown:
                _, doc = await fetch_json(
                    self._http,
                    "GET",
                    metadata.jwks_uri,
                    failure=SsoFailure.DISCOVERY_FAILED,
                    timeout_s=self.settings.timeout_s,
                )
                if not isinstance(doc, dict):
                    raise SsoError(SsoFailure.DISCOVERY_FAILED, detail="JWKS is not an object")
                self._keys = parse_jwks(doc)
                self._keys_at = self._clock()
            key = _pick(self._keys, kid)
        if key is None:
            raise SsoError(SsoFailure.ID_TOKEN_UNKNOWN_KEY, detail="no JWKS key for the ID token's kid")
        return key


def _pick(keys: Mapping[str | None, Key], kid: str | None) -> Key | None:
    if kid is not None:
        return keys.get(kid)
    return next(iter(keys.values())) if len(keys) == 1 else None  # no kid: only an unambiguous key set will do
