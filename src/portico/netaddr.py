"""Addresses as Portico reads them, in one place: client IPs (policy, the connection context) and whether a
host is this machine (bind checks, http allowed only on loopback in URLs). A leaf module: imports nothing of
Portico's, so settings models anywhere may use it."""

from __future__ import annotations

import functools
import ipaddress
from ipaddress import IPv4Address, IPv6Address

IPAddress = IPv4Address | IPv6Address


@functools.lru_cache(maxsize=4096)
def parse_ip(text: str | None) -> IPAddress | None:
    """An address, IPv4-mapped IPv6 (`::ffff:10.0.0.1`) unwrapped; None when absent or malformed."""
    if not text:
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_loopback_host(host: str | None) -> bool:
    """Whether `host` (a bind address or a URL's hostname, brackets allowed) names this machine: `localhost`
    or a loopback address."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
