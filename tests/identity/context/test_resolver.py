"""`ContextResolver` and `apply_context` on ASGI scopes as uvicorn builds them: the client IP behind proxies,
the country, and the device a certificate names (every source, every verdict), with a real device registry on
both store backends."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import text

from portico.identity.context.resolver import ClientContext, ContextResolver, apply_context
from portico.identity.context.settings import DeviceSettings, NetworkSettings
from portico.identity.devices import DeviceRegistry
from portico.policy.model import country_of, device_state_of
from portico.store import Store
from portico.types import Principal
from tests.identity.context.certs import Issued, expired, issue

pytestmark = pytest.mark.anyio

PROXY, OTHER_PROXY, CLIENT, ATTACKER = "10.0.0.5", "10.0.0.7", "198.51.100.20", "203.0.113.66"
NETWORK = NetworkSettings(
    trusted_proxies=["10.0.0.0/24"],
    countries={"FR": ["198.51.100.0/24"], "DE": ["203.0.113.0/24"], "de": ["203.0.113.64/26"]},
)


def scope(peer: str | None, headers: list[tuple[str, str]] = (), tls_chain: list[str] | None = None) -> Any:  # type: ignore[assignment]
    built: dict[str, Any] = {
        "type": "http",
        "client": (peer, 50_000) if peer is not None else None,
        "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers],
    }
    if tls_chain is not None:
        built["extensions"] = {"tls": {"client_cert_chain": tls_chain, "tls_version": 0x0304}}
    return built


def network_only(network: NetworkSettings = NETWORK) -> ContextResolver:
    return ContextResolver(network, DeviceSettings(), None)


# ------------------------------------------------------------------------------------------- client IP


@pytest.mark.requirement("context:forwarded-only-from-trusted-proxies")
@pytest.mark.parametrize(
    ("peer", "headers", "expected"),
    [
        (ATTACKER, [("x-forwarded-for", CLIENT)], ATTACKER),
        (ATTACKER, [("x-forwarded-for", PROXY)], ATTACKER),
        (PROXY, [("x-forwarded-for", CLIENT)], CLIENT),
        (PROXY, [("x-forwarded-for", f"1.1.1.1, {CLIENT}")], CLIENT),
        (PROXY, [("x-forwarded-for", f"{CLIENT}, {OTHER_PROXY}")], CLIENT),
        # A spoofed line first, the proxy's own line after it (HAProxy adds a line): both are read, in order.
        (PROXY, [("x-forwarded-for", "1.1.1.1"), ("x-forwarded-for", CLIENT)], CLIENT),
        (PROXY, [("forwarded", f"for={CLIENT}")], PROXY),  # the other header is not the configured one
        (PROXY, [("x-forwarded-for", "garbage")], PROXY),
        (PROXY, [("x-forwarded-for", "")], PROXY),
        (PROXY, [], PROXY),
        ("::ffff:10.0.0.5", [("x-forwarded-for", CLIENT)], CLIENT),
        (None, [("x-forwarded-for", CLIENT)], None),
    ],
)
async def test_the_client_ip_believes_forwarding_headers_only_from_trusted_proxies(
    peer: str | None, headers: list[tuple[str, str]], expected: str | None
) -> None:
    assert (await network_only().resolve(scope(peer, headers))).ip == expected


@pytest.mark.parametrize(
    ("peer", "value", "expected"),
    [
        (PROXY, f"for={CLIENT};proto=https", CLIENT),
        (PROXY, f'for="1.1.1.1", for="{CLIENT}:4711", for={OTHER_PROXY}', CLIENT),
        (PROXY, 'for="[2001:db8::9]:443"', "2001:db8::9"),
        (PROXY, "for=unknown", PROXY),
        (PROXY, 'for="198.51.100.20', PROXY),
        (ATTACKER, f"for={CLIENT}", ATTACKER),
    ],
)
async def test_rfc_7239_forwarded_is_read_when_configured(peer: str, value: str, expected: str) -> None:
    resolver = network_only(NETWORK.model_copy(update={"client_ip_header": "forwarded"}))
    found = await resolver.resolve(scope(peer, [("forwarded", value), ("x-forwarded-for", "9.9.9.9")]))
    assert found.ip == expected


@pytest.mark.parametrize(
    ("peer", "country"),
    [(CLIENT, "FR"), ("203.0.113.1", "DE"), (ATTACKER, "DE"), ("192.0.2.1", None), ("::1", None)],
)
async def test_the_country_comes_from_the_configured_ranges(peer: str, country: str | None) -> None:
    found = await network_only().resolve(scope(peer))
    assert found.country == country
    assert country_of(apply_context(Principal("alice", claims={"country": "US"}), found)) == country


async def test_the_country_is_that_of_the_forwarded_client_not_the_proxy() -> None:
    resolver = network_only(NETWORK.model_copy(update={"countries": {"NL": ["10.0.0.0/24"], "FR": [f"{CLIENT}"]}}))
    assert (await resolver.resolve(scope(PROXY, [("x-forwarded-for", CLIENT)]))).country == "FR"


async def test_the_country_file_answers_what_configured_ranges_do_not(tmp_path: Path) -> None:
    table = tmp_path / "ip-country.csv"
    table.write_text(
        '# first,last,CC\n192.0.2.0,192.0.2.255,JP\n2001:db8::,2001:db8::ffff,CA\n"3405803776","3405804031","AU"\n'
    )
    resolver = network_only(NETWORK.model_copy(update={"country_file": table, "countries": {"FR": ["192.0.2.7"]}}))
    answers = [(await resolver.resolve(scope(peer))).country for peer in ("192.0.2.1", "192.0.2.7", "2001:db8::1")]
    assert answers == ["JP", "FR", "CA"]
    assert (await resolver.resolve(scope("203.0.113.1"))).country == "AU"  # 3405803776 = 203.0.113.0


# ---------------------------------------------------------------------------------------------- devices


def devices(ca_file: Path, **changes: Any) -> DeviceSettings:
    return DeviceSettings(cert_sources=["mtls", "header"], ca_file=ca_file, **changes)


def escaped(cert: Issued) -> str:
    return quote(cert.pem, safe="")


def xfcc(cert: Issued) -> str:
    return f'By=spiffe://portico;Hash=00;Cert="{escaped(cert)}";Subject="CN=x,O=y";URI=spiffe://client'


@pytest.fixture
async def enrolled(registry: DeviceRegistry, alice_laptop: Issued, bob_phone: Issued) -> DeviceRegistry:
    await registry.enroll(alice_laptop.pem, "alice", "laptop")
    revoked = await registry.enroll(bob_phone.pem, "bob", "phone")
    await registry.revoke(revoked.id)
    return registry


@pytest.mark.requirement("context:device-state-from-verified-certificates")
@pytest.mark.parametrize(
    ("case", "expected_state", "has_problem"),
    [
        ("alice over mtls", "enrolled", False),
        ("alice via the proxy header", "enrolled", False),
        ("alice via the proxy's xfcc header", "xfcc-enrolled", False),
        ("bob (revoked) over mtls", "revoked", False),
        ("bob (revoked) via the proxy header", "revoked", False),
        ("a certificate of another CA over mtls", "none", True),
        ("a certificate of another CA via the proxy header", "none", True),
        ("an expired certificate over mtls", "none", True),
        ("an unregistered certificate of the CA", "unknown", True),
        ("alice's certificate in a header from an untrusted peer", "none", True),
        ("alice's certificate in a header, bob's on the connection, untrusted peer", "revoked", False),
        ("an unreadable proxy header", "none", True),
        ("no certificate", "none", False),
        ("the proxy says there is no certificate (an empty header)", "none", False),
        ("the proxy sends no header (its own connection certificate is not the client's)", "none", False),
    ],
)
async def test_the_device_state_is_the_registrys_verdict_on_a_verified_certificate(
    case: str,
    expected_state: str,
    has_problem: bool,
    enrolled: DeviceRegistry,
    ca: Issued,
    ca_file: Path,
    alice_laptop: Issued,
    bob_phone: Issued,
    stranger: Issued,
) -> None:
    old = expired(ca, "old-laptop")
    unregistered = issue(ca, "new-laptop")
    header = "x-ssl-client-cert"
    scopes = {
        "alice over mtls": scope(CLIENT, tls_chain=[alice_laptop.pem]),
        "alice via the proxy header": scope(PROXY, [(header, escaped(alice_laptop))]),
        "alice via the proxy's xfcc header": scope(PROXY, [("x-forwarded-client-cert", xfcc(alice_laptop))]),
        "bob (revoked) over mtls": scope(CLIENT, tls_chain=[bob_phone.pem]),
        "bob (revoked) via the proxy header": scope(PROXY, [(header, escaped(bob_phone))]),
        "a certificate of another CA over mtls": scope(CLIENT, tls_chain=[stranger.pem]),
        "a certificate of another CA via the proxy header": scope(PROXY, [(header, escaped(stranger))]),
        "an expired certificate over mtls": scope(CLIENT, tls_chain=[old.pem]),
        "an unregistered certificate of the CA": scope(CLIENT, tls_chain=[unregistered.pem]),
        "alice's certificate in a header from an untrusted peer": scope(ATTACKER, [(header, escaped(alice_laptop))]),
        "alice's certificate in a header, bob's on the connection, untrusted peer": scope(
            ATTACKER, [(header, escaped(alice_laptop))], tls_chain=[bob_phone.pem]
        ),
        "an unreadable proxy header": scope(PROXY, [(header, "%%%not-a-cert")]),
        "no certificate": scope(CLIENT),
        "the proxy says there is no certificate (an empty header)": scope(PROXY, [(header, "")]),
        "the proxy sends no header (its own connection certificate is not the client's)": scope(
            PROXY, tls_chain=[alice_laptop.pem]
        ),
    }
    settings = devices(ca_file)
    if expected_state == "xfcc-enrolled":
        settings = devices(ca_file, cert_header="x-forwarded-client-cert", cert_header_format="xfcc")
        expected_state = "enrolled"
    found = await ContextResolver(NETWORK, settings, enrolled).resolve(scopes[case])
    assert found.device_state == expected_state, case
    assert (found.cert_problem is not None) == has_problem, (case, found.cert_problem)
    assert (found.device_id is None) == (expected_state == "none"), case


async def test_an_enrolled_device_counts_only_for_its_owner(
    enrolled: DeviceRegistry, ca_file: Path, alice_laptop: Issued
) -> None:
    found = await ContextResolver(NETWORK, devices(ca_file), enrolled).resolve(
        scope(CLIENT, tls_chain=[alice_laptop.pem])
    )
    alice = apply_context(Principal("alice", claims={"device_state": "enrolled", "scope": "mcp"}), found)
    mallory = apply_context(Principal("mallory", claims={"device_state": "enrolled"}), found)
    assert (device_state_of(alice), device_state_of(mallory)) == ("enrolled", "unknown")
    assert alice.device_id == mallory.device_id == found.device_id
    assert (alice.ip, alice.claims["scope"]) == (CLIENT, "mcp")


async def test_no_certificate_means_no_device_whatever_the_token_claims(
    ca_file: Path, registry: DeviceRegistry
) -> None:
    found = await ContextResolver(NETWORK, devices(ca_file), registry).resolve(scope(CLIENT))
    principal = apply_context(Principal("alice", device_id="dev_forged", claims={"device_state": "enrolled"}), found)
    assert (principal.device_id, device_state_of(principal)) == (None, "none")


async def test_an_unregistered_certificate_can_count_as_no_device(
    registry: DeviceRegistry, ca: Issued, ca_file: Path
) -> None:
    resolver = ContextResolver(NETWORK, devices(ca_file, unregistered_state="none"), registry)
    found = await resolver.resolve(scope(CLIENT, tls_chain=[issue(ca, "new-laptop").pem]))
    assert (found.device_id, found.device_state) == (None, "none")


async def test_an_unregistered_certificate_is_an_unknown_device_named_by_its_fingerprint(
    registry: DeviceRegistry, ca: Issued, ca_file: Path
) -> None:
    cert = issue(ca, "new-laptop")
    found = await ContextResolver(NETWORK, devices(ca_file), registry).resolve(scope(CLIENT, tls_chain=[cert.pem]))
    assert found == ClientContext(
        CLIENT, "FR", f"sha256:{cert.fingerprint}", "unknown", None, cert.fingerprint, "not enrolled"
    )


@pytest.mark.requirement("context:device-fails-closed")
async def test_an_unavailable_registry_makes_the_device_unknown(
    store: Store, enrolled: DeviceRegistry, ca_file: Path, alice_laptop: Issued
) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(text("DROP TABLE devices"))
    found = await ContextResolver(NETWORK, devices(ca_file), enrolled).resolve(
        scope(CLIENT, tls_chain=[alice_laptop.pem])
    )
    assert (found.device_state, found.cert_problem) == ("unknown", "device registry unavailable")


async def test_devices_are_not_checked_without_cert_sources(alice_laptop: Issued) -> None:
    found = await network_only().resolve(
        scope(CLIENT, [("x-ssl-client-cert", escaped(alice_laptop))], [alice_laptop.pem])
    )
    assert (found.device_id, found.device_state, found.cert_problem) == (None, "none", None)


async def test_a_resolver_checking_devices_needs_a_registry(ca_file: Path) -> None:
    with pytest.raises(ValueError, match="DeviceRegistry"):
        ContextResolver(NETWORK, devices(ca_file), None)
