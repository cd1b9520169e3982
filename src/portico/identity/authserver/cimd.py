"""Client ID Metadata Documents: a client id that is an https URL names a JSON document describing the client
(draft-ietf-oauth-client-id-metadata-document, SEP-991 in the MCP 2025-11-25 authorization spec).

    parse_client_id_url(url, allow_loopback)   -> the URL's host, or OAuthError       (pure)
    parse_document(url, body)                  -> Client, or OAuthError                (pure)
    MetadataFetcher.client(url)                -> Client (fetched or cached), or OAuthError

Fetching is the server making a request on a stranger's behalf, so it is fenced (server-side request
forgery): https only; the host must pass the optional allowlist; the name is resolved once and every address
must be public (never private, link-local, loopback, multicast or reserved; loopback only with
`cimd_allow_loopback`, which also permits http there); the connection goes to the address that was checked (the
name travels in the Host header and TLS SNI, so a second DNS answer cannot redirect it); no redirects; a
timeout; a size cap read as a stream. Documents are cached per URL for max-age clamped to the configured
bounds.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import re
import socket
import time
from collections.abc import Callable, Collection
from urllib.parse import urlsplit, urlunsplit

import anyio
import httpx2

from portico.identity.authserver.model import Client, OAuthError, redirect_uri_problem
from portico.identity.authserver.settings import AuthServerSettings
from portico.netaddr import is_loopback_host

HttpClientFactory = Callable[[], httpx2.AsyncClient]
MAX_URL_CHARS = 512
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)", re.IGNORECASE)


def _invalid(detail: str) -> OAuthError:
    return OAuthError("invalid_client", "The client metadata document is not usable", status=400, detail=detail)


def is_url_client_id(client_id: str) -> bool:
    """Whether `client_id` is to be treated as a metadata-document URL (anything starting with a scheme)."""
    return client_id.startswith(("https://", "http://"))


def parse_client_id_url(url: str, *, allow_loopback: bool) -> str:
    """The host of a valid client-id URL: https, a path other than `/`, no fragment, user info or dot segments.

    Raises:
        OAuthError: invalid_client.
    """
    if len(url) > MAX_URL_CHARS:
        raise _invalid("client id URL too long")
    parts = urlsplit(url)
    host = parts.hostname
    if not host or parts.username is not None or parts.password is not None or parts.fragment or "#" in url:
        raise _invalid("client id URL needs a host and no user info or fragment")
    if parts.scheme != "https" and not (parts.scheme == "http" and allow_loopback and is_loopback_host(host)):
        raise _invalid("client id URL must be https")
    if not parts.path or parts.path == "/" or any(seg in (".", "..") for seg in parts.path.split("/")):
        raise _invalid("client id URL needs a path without dot segments")
    try:
        parts.port  # noqa: B018  (raises ValueError on a malformed port)
    except ValueError:
        raise _invalid("client id URL has a malformed port") from None
    return host


def host_allowed(host: str, allowed: list[str] | None) -> bool:
    if allowed is None:
        return True
    host = host.lower().rstrip(".")
    for pattern in allowed:
        pattern = pattern.lower()
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and fnmatch.fnmatchcase(host, pattern):
                return True
        elif host == pattern:
            return True
    return False


def address_allowed(address: str, *, allow_loopback: bool) -> bool:
    """Only globally routable unicast addresses; loopback when allowed."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return allow_loopback
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_link_local or ip.is_private)


def parse_document(url: str, body: bytes, native_schemes: Collection[str] = ()) -> Client:
    """The client a fetched metadata document describes.

    Its `client_id` must equal `url` exactly; it needs `redirect_uris`; it may not claim a shared secret (the
    document is public), so its token endpoint authentication is `none`.

    Raises:
        OAuthError: invalid_client.
    """
    try:
        doc = json.loads(body)
    except ValueError:
        raise _invalid("document is not JSON") from None
    if not isinstance(doc, dict):
        raise _invalid("document is not a JSON object")
    if doc.get("client_id") != url:
        raise _invalid("document client_id differs from its URL")
    if "client_secret" in doc or "client_secret_expires_at" in doc:
        raise _invalid("document carries a client secret")
    method = doc.get("token_endpoint_auth_method", "none")
    if method != "none":
        raise _invalid("document token_endpoint_auth_method must be none")
    uris = doc.get("redirect_uris")
    if not isinstance(uris, list) or not uris or len(uris) > 20:
        raise _invalid("document needs 1-20 redirect_uris")
    for uri in uris:
        if redirect_uri_problem(uri, native_schemes) is not None:
            raise _invalid("document has an unusable redirect URI")
    grants = doc.get("grant_types", ["authorization_code"])
    if not isinstance(grants, list) or not set(grants) <= {"authorization_code", "refresh_token"}:
        raise _invalid("document grant_types must be authorization_code and/or refresh_token")
    name = doc.get("client_name")
    if name is not None and (not isinstance(name, str) or len(name) > 100):
        raise _invalid("document client_name is not a short string")
    return Client(
        client_id=url,
        source="cimd",
        name=name,
        redirect_uris=tuple(uris),
        grant_types=frozenset(grants) | {"authorization_code"},
        auth_method="none",
    )


def cache_seconds(cache_control: str | None, *, low: int, high: int) -> int:
    """How long to keep a document: its max-age, clamped to [low, high]; `no-store`/`no-cache` mean `low`."""
    value = cache_control or ""
    if "no-store" in value.lower() or "no-cache" in value.lower():
        return low
    match = _MAX_AGE.search(value)
    age = int(match.group(1)) if match else low
    return max(low, min(high, age))


def _default_http_client() -> httpx2.AsyncClient:
    return httpx2.AsyncClient(follow_redirects=False, trust_env=False)


class MetadataFetcher:
    """Fetches, validates and caches client metadata documents. One per authorization server."""

    def __init__(
        self,
        settings: AuthServerSettings,
        *,
        http_client: HttpClientFactory | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._http_client = http_client or _default_http_client
        self._clock = clock
        self._cache: dict[str, tuple[Client, float]] = {}

    async def client(self, url: str) -> Client:
        """The client whose id is `url`.

        Raises:
            OAuthError: invalid_client (the URL, the fetch or the document failed a check).
        """
        now = self._clock()
        cached = self._cache.get(url)
        if cached is not None and cached[1] > now:
            return cached[0]
        allow_loopback = self._settings.cimd_allow_loopback
        host = parse_client_id_url(url, allow_loopback=allow_loopback)
        if not host_allowed(host, self._settings.cimd_allowed_hosts):
            raise _invalid("client id host not in cimd_allowed_hosts")
        address = await self._resolve(url, host, allow_loopback)
        body, cache_control = await self._fetch(url, host, address)
        client = parse_document(url, body, self._settings.native_redirect_schemes)
        ttl = cache_seconds(cache_control, low=self._settings.cimd_cache_min_s, high=self._settings.cimd_cache_max_s)
        if len(self._cache) >= 1000:  # bounded: drop the oldest insertion
            self._cache.pop(next(iter(self._cache)))
        self._cache[url] = (client, now + ttl)
        return client

    async def _resolve(self, url: str, host: str, allow_loopback: bool) -> str:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            with anyio.fail_after(self._settings.cimd_timeout_s):
                infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, TimeoutError) as exc:
            raise _invalid(f"cannot resolve the client id host: {type(exc).__name__}") from None
        addresses = [str(info[4][0]) for info in infos]
        if not addresses or not all(address_allowed(a, allow_loopback=allow_loopback) for a in addresses):
            raise _invalid("client id host resolves to a non-public address")
        return addresses[0]

    async def _fetch(self, url: str, host: str, address: str) -> tuple[bytes, str | None]:
        parts = urlsplit(url)
        ip_host = f"[{address}]" if ":" in address else address
        pinned = urlunsplit(parts._replace(netloc=f"{ip_host}:{parts.port}" if parts.port else ip_host))
        host_header = parts.netloc
        limit = self._settings.cimd_max_bytes
        try:
            with anyio.fail_after(self._settings.cimd_timeout_s):
                async with self._http_client() as http:
                    request = http.build_request(
                        "GET",
                        pinned,
                        headers={"Host": host_header, "Accept": "application/json"},
                        extensions={"sni_hostname": host} if parts.scheme == "https" else {},
                    )
                    response = await http.send(request, stream=True, follow_redirects=False)
                    try:
                        if response.status_code != 200:
                            raise _invalid(f"metadata document fetch answered HTTP {response.status_code}")
                        declared = response.headers.get("content-length")
                        if declared is not None and declared.isdigit() and int(declared) > limit:
                            raise _invalid("metadata document too large")
                        body = b""
                        async for chunk in response.aiter_bytes():
                            body += chunk
                            if len(body) > limit:
                                raise _invalid("metadata document too large")
                        return body, response.headers.get("cache-control")
                    finally:
                        await response.aclose()
        except TimeoutError:
            raise _invalid("metadata document fetch timed out") from None
        except httpx2.HTTPError as exc:
            raise _invalid(f"metadata document fetch failed: {type(exc).__name__}") from None
