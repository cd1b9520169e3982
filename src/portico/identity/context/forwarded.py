"""Pure parsers for what proxies tell us about a client: `X-Forwarded-For`, RFC 7239 `Forwarded`, Envoy's
`X-Forwarded-Client-Cert`, and the right-to-left walk that picks the client address out of a hop list.

Nothing here trusts anything: `client_address` is told which peers are trusted and ignores the headers of
anyone else. Every parser takes untrusted text and never raises: a value it cannot read is `None` (the whole
header) or a `None` hop (one entry), and the walk then falls back to the peer.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from portico.netaddr import parse_ip

IPAddress = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network

MAX_HEADER_CHARS = 8_192  # a longer forwarding header is treated as malformed (bounds the work per request)
MAX_HOPS = 64


@functools.lru_cache(maxsize=4096)  # `ip_address` costs ~3 µs; the same few peers and proxies come again and again
def parse_address(text: str) -> IPAddress | None:
    """An address as proxies write it: `1.2.3.4`, `1.2.3.4:80`, `::1`, `[::1]`, `[::1]:80`. IPv4-mapped IPv6 is
    unwrapped. `None` for anything else (`unknown`, obfuscated `_names`, junk)."""
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or (end + 1 < len(text) and not _is_port(text[end + 1 :])):
            return None
        text = text[1:end]
    elif text.count(":") == 1:  # IPv4 with a port; bare IPv6 has two or more colons
        text, port = text.split(":")
        if not port.isdigit():
            return None
    return parse_ip(text)


def _is_port(text: str) -> bool:
    return text.startswith(":") and text[1:].isdigit()


def split_unquoted(text: str, separator: str) -> list[str] | None:
    """Split on `separator` outside double-quoted strings (where `\\` escapes the next character). `None` when a
    quote is left open."""
    parts: list[str] = []
    start, quoted, escaped = 0, False, False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append(text[start:index])
            start = index + 1
    if quoted:
        return None
    parts.append(text[start:])
    return parts


def unquote(value: str) -> str:
    """A token or an RFC 9110 quoted-string, as its text."""
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        out: list[str] = []
        escaped = False
        for char in value[1:-1]:
            if escaped or char != "\\":
                out.append(char)
                escaped = False
            else:
                escaped = True
        return "".join(out)
    return value


def parse_x_forwarded_for(value: str) -> list[IPAddress | None] | None:
    """The hops of an `X-Forwarded-For` value (all header lines joined with `,`), client first."""
    if len(value) > MAX_HEADER_CHARS:
        return None
    hops = [parse_address(part) for part in value.split(",") if part.strip()]
    return hops[-MAX_HOPS:] if hops else None


def parse_forwarded(value: str) -> list[IPAddress | None] | None:
    """The `for=` hops of an RFC 7239 `Forwarded` value (all lines joined with `,`), client first. An element
    without `for`, or with an unknown or obfuscated one, is a `None` hop; an open quote spoils the whole value."""
    if len(value) > MAX_HEADER_CHARS:
        return None
    elements = split_unquoted(value, ",")
    if elements is None:
        return None
    hops: list[IPAddress | None] = []
    for element in elements:
        if not element.strip():
            continue
        pairs = parameters(element)
        hops.append(parse_address(pairs["for"]) if pairs is not None and "for" in pairs else None)
    return hops[-MAX_HOPS:] if hops else None


def parameters(element: str) -> dict[str, str] | None:
    """`key=value;key="value"` as a dict (keys lowercased, values unquoted; the first of a repeated key wins).
    `None` for a pair without `=`."""
    pairs = split_unquoted(element, ";")
    if pairs is None:
        return None
    found: dict[str, str] = {}
    for pair in pairs:
        if not pair.strip():
            continue
        key, equals, raw = pair.partition("=")
        if not equals:
            return None
        found.setdefault(key.strip().lower(), unquote(raw))
    return found


def last_xfcc_element(value: str) -> dict[str, str] | None:
    """The element of an `X-Forwarded-Client-Cert` value the nearest proxy added (the last), as parameters."""
    elements = split_unquoted(value, ",")
    if not elements:
        return None
    return parameters(elements[-1])


def is_trusted(address: IPAddress, trusted: Sequence[Network]) -> bool:
    return any(address in network for network in trusted)


def client_address(
    peer: IPAddress | None, hops: Sequence[IPAddress | None] | None, trusted: Sequence[Network]
) -> IPAddress | None:
    """Who the client is. The peer, unless it is a trusted proxy with a readable hop list: then the hops right
    to left, skipping trusted proxies; the first other address is the client. An unreadable hop before that
    falls back to the peer; when every hop is trusted, the leftmost is the client."""
    if peer is None or not hops or not is_trusted(peer, trusted):
        return peer
    for hop in reversed(hops):
        if hop is None:
            return peer
        if not is_trusted(hop, trusted):
            return hop
    return hops[0]
