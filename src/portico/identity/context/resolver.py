"""`ContextResolver`: from an ASGI request to the connection facts policy decides on (client IP, country,
device and its state), and `apply_context` to put them on a `Principal`.

Trust, in one place:

* The client IP is the TCP peer's, unless the peer is in `network.trusted_proxies`: then the forwarding header
  (`X-Forwarded-For` or `Forwarded`, every line of it, in order) is walked right to left past trusted proxies
  (`forwarded.client_address`). Headers are read from `scope["headers"]` itself: a dict of headers keeps one
  line of a repeated header, and a spoofed first line is exactly what an attacker would send.
* A device certificate comes from the proxy's header only when the peer is a trusted proxy (from anyone else
  the header is ignored, and noted); otherwise from Portico's own TLS listener (`mtls`). The proxy must set
  the header on every request, overwriting whatever the client sent (nginx: `proxy_set_header`; Envoy:
  `forward_client_cert_details: SANITIZE_SET`), or a client's own header would pass through it. Whatever its source it
  must chain to `devices.ca_file` now: one that does not is as if none was sent (device state `none`; the
  reason is in `cert_problem`).
* A valid certificate is looked up in the registry by fingerprint: `enrolled` or `revoked` as the registry
  says; not registered → `devices.unregistered_state` (`unknown` by default, with the device id
  `sha256:<fingerprint>`); registry unavailable → `unknown`. Policy's `device: enrolled` fails closed in
  every case but an enrolled, valid certificate.
* `apply_context` also checks ownership: a device enrolled to another subject is `unknown` for this caller
  (a stolen or shared certificate does not carry its owner's standing).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from ipaddress import ip_network
from typing import Any

from portico.identity.context.certs import (
    ChainVerifier,
    Clock,
    PresentedCert,
    from_escaped_pem,
    from_pem,
    from_xfcc,
    load_ca_bundle,
)
from portico.identity.context.country import CountryTable
from portico.identity.context.forwarded import (
    IPAddress,
    Network,
    client_address,
    is_trusted,
    parse_address,
    parse_forwarded,
    parse_x_forwarded_for,
)
from portico.identity.context.settings import DeviceSettings, NetworkSettings
from portico.identity.devices import DeviceError, DeviceRegistry
from portico.policy.conditions import DeviceState
from portico.types import Principal

log = logging.getLogger("portico.identity.context")
_MAX_REMEMBERED_CHARS = 8_192


@dataclass(frozen=True, slots=True)
class ClientContext:
    """The connection facts of one request.

    `device_id` is the registry's id for an enrolled or revoked device, `sha256:<fingerprint>` for a valid but
    unregistered certificate counted as `unknown`, else None. `device_owner` is the registry's owner (checked
    against the caller by `apply_context`). `cert_problem` says why a presented certificate did not count.
    """

    ip: str | None
    country: str | None = None
    device_id: str | None = None
    device_state: DeviceState = "none"
    device_owner: str | None = None
    cert_fingerprint: str | None = None
    cert_problem: str | None = None


class ContextResolver:
    """Resolves `ClientContext` for ASGI requests. Build once at start-up; safe to share between tasks.

    `registry` may be None when `devices.cert_sources` is empty. `clock` (Unix seconds) is for the chain
    checks' validity time and cache.

    Raises:
        ConfigError: `devices.ca_file` or `network.country_file` cannot be read.
        ValueError: devices are checked but no registry was given.
    """

    def __init__(
        self,
        network: NetworkSettings,
        devices: DeviceSettings,
        registry: DeviceRegistry | None,
        *,
        clock: Clock | None = None,
    ) -> None:
        if devices.cert_sources and registry is None:
            raise ValueError("devices.cert_sources is set, so a DeviceRegistry is needed")
        self.network = network
        self.devices = devices
        self.registry = registry
        self._trusted: tuple[Network, ...] = tuple(ip_network(cidr) for cidr in network.trusted_proxies)
        self._ip_header = network.client_ip_header.encode("ascii")
        self._parse_hops = parse_forwarded if network.client_ip_header == "forwarded" else parse_x_forwarded_for
        self._countries = CountryTable.build(network.countries, network.country_file)
        self._mtls = "mtls" in devices.cert_sources
        self._cert_header = devices.cert_header.encode("ascii") if "header" in devices.cert_sources else None
        self._parse_cert = from_xfcc if devices.cert_header_format == "xfcc" else from_escaped_pem
        self._parsed: dict[str, PresentedCert | None] = {}  # raw header or PEM → certificate, bounded
        self._verifier: ChainVerifier | None = None
        if devices.cert_sources and devices.ca_file is not None:
            store = load_ca_bundle(devices.ca_file)
            self._verifier = ChainVerifier(
                store, ttl_s=devices.cache_ttl_s, max_entries=devices.cache_entries, clock=clock
            )

    async def resolve(self, scope: Mapping[str, Any]) -> ClientContext:
        """The connection facts of the ASGI HTTP request `scope`. Never raises for anything the client sends."""
        peer = _peer(scope)
        via_proxy = peer is not None and bool(self._trusted) and is_trusted(peer, self._trusted)
        address = peer
        if via_proxy:
            joined = _joined(scope, self._ip_header)
            address = client_address(peer, self._parse_hops(joined) if joined is not None else None, self._trusted)
        ip = str(address) if address is not None else None
        country = self._countries.country(address)
        if self._verifier is None:
            return ClientContext(ip, country)
        cert, problem = self._presented(scope, via_proxy)
        if cert is None:
            return ClientContext(ip, country, cert_problem=problem)
        fingerprint = cert.fingerprint
        problem = self._verifier.problem(cert)
        if problem is not None:
            return ClientContext(ip, country, cert_fingerprint=fingerprint, cert_problem=problem)
        return await self._device(ip, country, fingerprint)

    def _presented(self, scope: Mapping[str, Any], via_proxy: bool) -> tuple[PresentedCert | None, str | None]:
        """The certificate to judge, and a note when one was offered but cannot count."""
        if self._cert_header is not None:
            value = _joined(scope, self._cert_header)
            if via_proxy:
                if value is None or not value.strip():  # nginx sends an empty value when there is no cert
                    return None, None
                cert = self._parse_once(value, self._parse_cert)
                return cert, None if cert is not None else "the proxy's certificate header is unreadable"
            if value is not None:
                # Anyone can send the header; only a trusted proxy's counts. The TLS certificate may still.
                problem = "certificate header from an untrusted peer ignored"
                cert = self._from_connection(scope) if self._mtls else None
                return cert, problem if cert is None else None
        if self._mtls:  # the certificate on the connection itself, whoever the peer is
            return self._from_connection(scope), None
        return None, None

    def _from_connection(self, scope: Mapping[str, Any]) -> PresentedCert | None:
        extensions = scope.get("extensions")
        tls = extensions.get("tls") if isinstance(extensions, dict) else None
        chain = tls.get("client_cert_chain") if isinstance(tls, dict) else None
        if not chain or not isinstance(chain, list) or not isinstance(chain[0], str):
            return None
        # The same PEM string object comes with every request on a connection: its hash is computed once.
        return self._parse_once(chain[0] if len(chain) == 1 else "\n".join(map(str, chain)), from_pem)

    def _parse_once(self, raw: str, parse: Callable[[str], PresentedCert | None]) -> PresentedCert | None:
        """`parse(raw)`, remembered (parsing and hashing a certificate costs tens of microseconds)."""
        try:
            return self._parsed[raw]
        except KeyError:
            pass
        cert = parse(raw)
        if len(raw) > _MAX_REMEMBERED_CHARS:  # a certificate this large is rare: not worth its memory
            return cert
        if len(self._parsed) >= self.devices.cache_entries:
            self._parsed.pop(next(iter(self._parsed)))
        self._parsed[raw] = cert
        return cert

    async def _device(self, ip: str | None, country: str | None, fingerprint: str) -> ClientContext:
        unknown = ClientContext(ip, country, f"sha256:{fingerprint}", "unknown", cert_fingerprint=fingerprint)
        if self.registry is None:  # not reached: __init__ requires a registry whenever certificates are judged
            return unknown
        try:
            device = await self.registry.lookup(fingerprint)
        except DeviceError as exc:
            log.warning("device registry unavailable; counting the device as unknown: %s", exc.detail)
            return dataclasses.replace(unknown, cert_problem="device registry unavailable")
        if device is None:
            if self.devices.unregistered_state == "none":
                return ClientContext(ip, country, cert_fingerprint=fingerprint, cert_problem="not enrolled")
            return dataclasses.replace(unknown, cert_problem="not enrolled")
        return ClientContext(
            ip, country, device.id, device.state, device_owner=device.owner, cert_fingerprint=fingerprint
        )


def apply_context(principal: Principal, context: ClientContext) -> Principal:
    """`principal` with the connection facts: `ip`, `device_id`, and `claims["device_state"]` and
    `claims["country"]` (replacing any a token carried: where a call comes from is the connection's to say,
    not the token's). A device enrolled to another subject is `unknown` for this caller.
    """
    state = context.device_state
    if state == "enrolled" and context.device_owner != principal.subject:
        state = "unknown"
    claims = {k: v for k, v in principal.claims.items() if k not in ("device_state", "country")}
    claims["device_state"] = state
    if context.country is not None:
        claims["country"] = context.country
    return dataclasses.replace(principal, ip=context.ip, device_id=context.device_id, claims=claims)


def _peer(scope: Mapping[str, Any]) -> IPAddress | None:
    client = scope.get("client")
    if not client:
        return None
    host = client[0]
    return parse_address(host) if isinstance(host, str) else None


def _joined(scope: Mapping[str, Any], name: bytes) -> str | None:
    """Every line of header `name`, in order, joined with `,` (RFC 9110 §5.3); None when absent."""
    values = [value for key, value in scope.get("headers", ()) if key == name]
    if not values:
        return None
    return ",".join(value.decode("latin-1") for value in values)
