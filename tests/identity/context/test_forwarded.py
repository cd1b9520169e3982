"""The forwarding-header parsers and the client-address walk: pure tables."""

from __future__ import annotations

from ipaddress import ip_address, ip_network

import pytest

from portico.identity.context.forwarded import (
    client_address,
    last_xfcc_element,
    parse_address,
    parse_forwarded,
    parse_x_forwarded_for,
    split_unquoted,
)

TRUSTED = (ip_network("10.0.0.0/24"), ip_network("fd00::/64"))


def ip(text: str) -> object:
    return ip_address(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("203.0.113.7", "203.0.113.7"),
        (" 203.0.113.7 ", "203.0.113.7"),
        ("203.0.113.7:4711", "203.0.113.7"),
        ("2001:db8::17", "2001:db8::17"),
        ("[2001:db8::17]", "2001:db8::17"),
        ("[2001:db8::17]:4711", "2001:db8::17"),
        ("::ffff:198.51.100.9", "198.51.100.9"),
        ("unknown", None),
        ("_hidden", None),
        ("", None),
        ("203.0.113.7:http", None),
        ("[2001:db8::17", None),
        ("[2001:db8::17]x", None),
        ("300.1.1.1", None),
        ("1.2.3.4.5", None),
        ("<script>", None),
    ],
)
def test_addresses_are_read_in_the_forms_proxies_write_them(text: str, expected: str | None) -> None:
    parsed = parse_address(text)
    assert (str(parsed) if parsed is not None else None) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("203.0.113.7", ["203.0.113.7"]),
        ("203.0.113.7, 10.0.0.2", ["203.0.113.7", "10.0.0.2"]),
        ("203.0.113.7,10.0.0.2,,", ["203.0.113.7", "10.0.0.2"]),
        ("junk, 10.0.0.2", [None, "10.0.0.2"]),
        ("", None),
        (" , ", None),
        ("1.1.1.1," * 5000, None),  # longer than MAX_HEADER_CHARS: malformed as a whole
    ],
)
def test_x_forwarded_for_is_a_list_of_hops(value: str, expected: list[str | None] | None) -> None:
    hops = parse_x_forwarded_for(value)
    assert (None if hops is None else [str(h) if h is not None else None for h in hops]) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("for=192.0.2.60;proto=http;by=203.0.113.43", ["192.0.2.60"]),
        ('For="[2001:db8:cafe::17]:4711"', ["2001:db8:cafe::17"]),
        ("for=192.0.2.43, for=198.51.100.17", ["192.0.2.43", "198.51.100.17"]),
        ('for=192.0.2.43;by="a,b;c", for=10.0.0.2', ["192.0.2.43", "10.0.0.2"]),  # separators inside quotes
        ('for="\\"weird\\""', [None]),
        ("for=unknown, for=10.0.0.2", [None, "10.0.0.2"]),
        ("for=_gazonk", [None]),
        ("proto=https, for=10.0.0.2", [None, "10.0.0.2"]),  # an element without for=
        ("for", [None]),  # a pair without =
        ('for="192.0.2.43', None),  # an open quote spoils the whole value
        ("", None),
    ],
)
def test_forwarded_header_for_parameters_are_its_hops(value: str, expected: list[str | None] | None) -> None:
    hops = parse_forwarded(value)
    assert (None if hops is None else [str(h) if h is not None else None for h in hops]) == expected


@pytest.mark.parametrize(
    ("peer", "hops", "expected", "why"),
    [
        ("203.0.113.9", ["1.2.3.4"], "203.0.113.9", "an untrusted peer's header is ignored (spoofing)"),
        ("203.0.113.9", None, "203.0.113.9", "no header"),
        ("10.0.0.5", None, "10.0.0.5", "a trusted proxy without a header is itself the client"),
        ("10.0.0.5", ["198.51.100.1"], "198.51.100.1", "one trusted proxy"),
        ("10.0.0.5", ["1.2.3.4", "198.51.100.1"], "198.51.100.1", "a spoofed left entry is never reached"),
        ("10.0.0.5", ["1.2.3.4", "198.51.100.1", "10.0.0.7"], "198.51.100.1", "a chain of trusted proxies"),
        ("10.0.0.5", ["10.0.0.8", "10.0.0.7"], "10.0.0.8", "every hop trusted: the leftmost"),
        ("10.0.0.5", [None, "10.0.0.7"], "10.0.0.5", "an unreadable hop falls back to the peer"),
        ("10.0.0.5", ["1.2.3.4", None], "10.0.0.5", "an unreadable nearest hop falls back to the peer"),
        ("fd00::5", ["2001:db8::1"], "2001:db8::1", "IPv6 proxy"),
        (None, ["1.2.3.4"], None, "no peer (a Unix socket)"),
    ],
)
def test_the_client_is_the_first_untrusted_hop_from_the_right(
    peer: str | None, hops: list[str | None] | None, expected: str | None, why: str
) -> None:
    parsed = [ip_address(h) if h is not None else None for h in hops] if hops is not None else None
    found = client_address(ip_address(peer) if peer else None, parsed, TRUSTED)
    assert (str(found) if found else None) == expected, why


def test_xfcc_takes_the_element_the_nearest_proxy_added() -> None:
    value = 'By=spiffe://a;Hash=aa;Subject="CN=x,O=y";Cert="first", By=spiffe://b;Hash=bb;Cert="%2D%2Dsecond"'
    element = last_xfcc_element(value)
    assert element is not None
    assert element["cert"] == "%2D%2Dsecond"
    assert element["by"] == "spiffe://b"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a,b", ["a", "b"]),
        ('a,"b,c",d', ["a", '"b,c"', "d"]),
        ('"a\\",b",c', ['"a\\",b"', "c"]),
        ('"open,b', None),
    ],
)
def test_splitting_respects_quoted_strings(text: str, expected: list[str] | None) -> None:
    assert split_unquoted(text, ",") == expected
