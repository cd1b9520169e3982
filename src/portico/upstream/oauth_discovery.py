"""Finding an upstream's authorization server the way the MCP spec tells a client to, with every URL the upstream
hands us treated as hostile.

    probe   POST <server url> without credentials → 401 `WWW-Authenticate: Bearer resource_metadata=…, scope=…`
    PRM     the challenge's resource_metadata, else /.well-known/oauth-protected-resource/<path>, else the root
            (the SDK's `build_protected_resource_metadata_discovery_urls`); `resource` must name this server
    AS      RFC 8414 then OIDC discovery, path-aware, in the spec's order (the SDK's
            `build_oauth_authorization_server_metadata_discovery_urls`); `issuer` must equal the URL it was
            fetched for; `code_challenge_methods_supported` must include S256 or we refuse
    scopes  configured, else the challenge's scope=, else the PRM's scopes_supported, else omitted

`check_url` is the SSRF guard for every URL learned from an upstream (metadata, endpoints, the authorize URL
the browser is sent to): http(s) only, https unless the host is loopback and the server's own url is loopback
http; the resolved addresses (getaddrinfo, so octal/hex/IPv4-mapped spellings are normalised by the resolver,
not by us) must not be link-local, multicast, unspecified or reserved, loopback only beside a loopback server,
private only when allowed. Redirects are never followed. Limit: the address is checked, then connected to
(no DNS pinning between the two).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import anyio
import httpx2
import orjson
from mcp.client.auth.utils import (
    build_oauth_authorization_server_metadata_discovery_urls,
    build_protected_resource_metadata_discovery_urls,
)

from portico.errors import UpstreamError
from portico.netaddr import is_loopback_host
from portico.types import JSON
from portico.upstream.envelope import LEGACY_VERSION
from portico.upstream.oauth_settings import UpstreamOAuthSettings

MAX_METADATA_BYTES = 256 * 1024
_CHALLENGE_PARAM = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


class UpstreamAuthError(UpstreamError):
    """The upstream's OAuth metadata, registration or token endpoint failed us, or broke a rule we enforce
    (no S256, an unsafe URL, an issuer mismatch). `detail` says which; never a token."""

    default_public = "Upstream authorization failed"


@dataclass(frozen=True, slots=True)
class Challenge:
    """What a 401/403 `WWW-Authenticate: Bearer …` told us."""

    resource_metadata: str | None = None
    scope: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class UpstreamAuth:
    """Everything discovery learned about one upstream's authorization, checked."""

    resource: str
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    registration_endpoint: str | None
    scopes: tuple[str, ...]
    token_auth_methods: tuple[str, ...]
    iss_parameter_supported: bool


def parse_challenge(header: str | None) -> Challenge | None:
    """The Bearer challenge of a `WWW-Authenticate` header (RFC 6750 §3), or None when there is none."""
    if not header:
        return None
    start = header.lower().find("bearer")
    if start < 0:
        return None
    params: dict[str, str] = {}
    for match in _CHALLENGE_PARAM.finditer(header[start + 6 :]):
        key = match.group(1).lower()
        params.setdefault(key, match.group(2) if match.group(2) is not None else match.group(3))
    return Challenge(params.get("resource_metadata"), params.get("scope"), params.get("error"))


def is_loopback_url(url: str) -> bool:
    return is_loopback_host(urlsplit(url).hostname)


def check_url_shape(url: str, *, allow_loopback: bool) -> str:
    """The scheme and syntax half of the guard (no DNS). Returns the URL.

    Raises:
        UpstreamAuthError: not http(s), http to a non-loopback host (or loopback when not allowed), credentials
            or a fragment in the URL, or no host.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
        raise UpstreamAuthError(detail=f"refused URL {url[:120]!r}: only http(s) URLs with a host")
    if parts.username is not None or parts.password is not None or parts.fragment:
        raise UpstreamAuthError(detail=f"refused URL {url[:120]!r}: userinfo or fragment")
    if parts.scheme == "http" and not (allow_loopback and is_loopback_url(url)):
        raise UpstreamAuthError(detail=f"refused URL {url[:120]!r}: https required")
    return url


def address_allowed(address: str, *, allow_loopback: bool, allow_private: bool) -> bool:
    """Whether Portico may connect to this (resolved, numeric) address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return allow_loopback
    if ip.is_link_local or ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        return False  # 169.254.0.0/16 (cloud metadata), fe80::/10, …
    if ip in ipaddress.ip_network("100.64.0.0/10") or ip.is_private or not ip.is_global:
        return allow_private
    return True


async def check_url(url: str, *, allow_loopback: bool, allow_private: bool) -> str:
    """The whole guard: shape, then every address the host resolves to. Returns the URL.

    Raises:
        UpstreamAuthError: refused (the detail says why).
    """
    check_url_shape(url, allow_loopback=allow_loopback)
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        infos = await anyio.getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UpstreamAuthError(detail=f"cannot resolve {host[:80]!r}: {exc}") from exc
    for info in infos:
        address = str(info[4][0])
        if not address_allowed(address, allow_loopback=allow_loopback, allow_private=allow_private):
            raise UpstreamAuthError(detail=f"refused URL {url[:120]!r}: {host[:80]!r} resolves to {address}")
    return url


def resource_matches(resource: str, server_url: str) -> bool:
    """RFC 9728 §3.3 / RFC 8707: the PRM's `resource` names this server (same origin, a path prefix of it)."""
    r, s = urlsplit(resource), urlsplit(server_url)
    if (r.scheme, r.netloc.lower()) != (s.scheme, s.netloc.lower()):
        return False
    prefix = r.path.rstrip("/")
    return s.path.rstrip("/") == prefix or s.path.startswith(prefix + "/")


def select_scopes(settings: UpstreamOAuthSettings, challenge: Challenge | None, prm: JSON) -> tuple[str, ...]:
    """The spec's order: configured, the challenge's scope=, the PRM's scopes_supported, else none."""
    if settings.scopes is not None:
        return tuple(settings.scopes)
    if challenge is not None and challenge.scope:
        return tuple(challenge.scope.split())
    supported = prm.get("scopes_supported")
    if isinstance(supported, list):
        return tuple(s for s in supported if isinstance(s, str))
    return ()


def parse_as_metadata(document: JSON, issuer: str, guard: UrlGuard) -> UpstreamAuth:
    """Check AS metadata (pure: URL shapes only; `discover` resolves the endpoints too).

    Raises:
        UpstreamAuthError: issuer mismatch, no S256, missing or unsafe endpoints.
    """
    if str(document.get("issuer", "")).rstrip("/") != issuer.rstrip("/"):
        raise UpstreamAuthError(detail=f"authorization server metadata issuer mismatch for {issuer[:120]!r}")
    methods = document.get("code_challenge_methods_supported")
    if not isinstance(methods, list) or "S256" not in methods:
        raise UpstreamAuthError(detail="the upstream's authorization server does not support PKCE S256")
    response_types = document.get("response_types_supported")
    if isinstance(response_types, list) and "code" not in response_types:
        raise UpstreamAuthError(detail="the upstream's authorization server does not offer the code flow")
    endpoints: dict[str, str | None] = {}
    for key in ("authorization_endpoint", "token_endpoint", "registration_endpoint"):
        value = document.get(key)
        if value is None and key == "registration_endpoint":
            endpoints[key] = None
            continue
        if not isinstance(value, str):
            raise UpstreamAuthError(detail=f"authorization server metadata lacks {key}")
        endpoints[key] = check_url_shape(value, allow_loopback=guard.allow_loopback)
    auth_methods = document.get("token_endpoint_auth_methods_supported")
    return UpstreamAuth(
        resource="",
        issuer=issuer,
        authorization_endpoint=str(endpoints["authorization_endpoint"]),
        token_endpoint=str(endpoints["token_endpoint"]),
        registration_endpoint=endpoints["registration_endpoint"],
        scopes=(),
        token_auth_methods=tuple(m for m in auth_methods if isinstance(m, str))
        if isinstance(auth_methods, list)
        else ("client_secret_basic",),
        iss_parameter_supported=document.get("authorization_response_iss_parameter_supported") is True,
    )


@dataclass(frozen=True, slots=True)
class UrlGuard:
    """The SSRF rules for one upstream: loopback only beside a loopback http server url."""

    allow_loopback: bool
    allow_private: bool

    @classmethod
    def for_server(cls, server_url: str, settings: UpstreamOAuthSettings) -> UrlGuard:
        return cls(is_loopback_url(server_url), settings.allow_private_network)

    async def check(self, url: str) -> str:
        return await check_url(url, allow_loopback=self.allow_loopback, allow_private=self.allow_private)


async def get_json(http: httpx2.AsyncClient, guard: UrlGuard, url: str) -> tuple[int, JSON | None]:
    """GET a metadata document through the guard: (status, JSON object or None). No redirects are followed.

    Raises:
        UpstreamAuthError: refused URL, or the request failed.
    """
    await guard.check(url)
    headers = {"accept": "application/json", "mcp-protocol-version": LEGACY_VERSION}
    try:
        response = await http.get(url, headers=headers)
    except httpx2.HTTPError as exc:
        raise UpstreamAuthError(detail=f"GET {url[:120]!r} failed: {type(exc).__name__}") from exc
    if response.status_code != 200 or len(response.content) > MAX_METADATA_BYTES:
        return response.status_code, None
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.status_code, None
    return response.status_code, body if isinstance(body, dict) else None


async def probe(http: httpx2.AsyncClient, server_url: str) -> Challenge | None:
    """An unauthenticated request to the MCP endpoint; the Bearer challenge of its 401, if any."""
    body = orjson.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"protocolVersion": LEGACY_VERSION, "capabilities": {}, "clientInfo": {"name": "portico"}},
        }
    )
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    try:
        async with http.stream("POST", server_url, content=body, headers=headers) as response:
            if response.status_code in (401, 403):
                return parse_challenge(response.headers.get("www-authenticate"))
    except httpx2.HTTPError as exc:
        raise UpstreamAuthError(detail=f"probing {server_url[:120]!r} failed: {type(exc).__name__}") from exc
    return None


async def discover(http: httpx2.AsyncClient, server_url: str, settings: UpstreamOAuthSettings) -> UpstreamAuth:
    """Discover and check one upstream's authorization server (see the module docstring).

    Raises:
        UpstreamAuthError: no usable metadata, or a rule broken.
    """
    guard = UrlGuard.for_server(server_url, settings)
    challenge = await probe(http, server_url)
    prm: JSON | None = None
    for url in build_protected_resource_metadata_discovery_urls(
        challenge.resource_metadata if challenge else None, server_url
    ):
        status, prm = await get_json(http, guard, url)
        if prm is not None:
            break
    if prm is None:
        raise UpstreamAuthError(detail="no protected resource metadata found for the upstream")
    resource = prm.get("resource")
    if not isinstance(resource, str) or not resource_matches(resource, server_url):
        raise UpstreamAuthError(detail="the protected resource metadata names another resource")
    issuer = settings.authorization_server
    if issuer is None:
        servers = prm.get("authorization_servers")
        if not isinstance(servers, list) or not servers or not isinstance(servers[0], str):
            raise UpstreamAuthError(detail="the protected resource metadata names no authorization server")
        issuer = servers[0]
    await guard.check(issuer)
    document: JSON | None = None
    for url in build_oauth_authorization_server_metadata_discovery_urls(issuer, server_url):
        status, document = await get_json(http, guard, url)
        if document is not None:
            break
        if status >= 500:
            raise UpstreamAuthError(detail=f"authorization server metadata: HTTP {status}")
    if document is None:
        raise UpstreamAuthError(detail="no authorization server metadata found")
    auth = parse_as_metadata(document, issuer, guard)
    await guard.check(auth.token_endpoint)
    if auth.registration_endpoint is not None:
        await guard.check(auth.registration_endpoint)
    await guard.check(auth.authorization_endpoint)
    return UpstreamAuth(
        resource=resource,
        issuer=auth.issuer,
        authorization_endpoint=auth.authorization_endpoint,
        token_endpoint=auth.token_endpoint,
        registration_endpoint=auth.registration_endpoint,
        scopes=select_scopes(settings, challenge, prm),
        token_auth_methods=auth.token_auth_methods,
        iss_parameter_supported=auth.iss_parameter_supported,
    )
