"""Reading client certificates from where they arrive, fingerprints, and the cached chain check."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from portico.errors import ConfigError
from portico.identity.context.certs import (
    ChainVerifier,
    PresentedCert,
    from_escaped_pem,
    from_xfcc,
    load_ca_bundle,
    normalise_fingerprint,
)
from tests.identity.conftest import ManualClock
from tests.identity.context.certs import Issued, intermediate, issue


def test_nginx_escaped_pem_is_read(alice_laptop: Issued) -> None:
    assert from_escaped_pem(quote(alice_laptop.pem, safe="")) == PresentedCert(alice_laptop.der)


def test_an_escaped_pem_with_its_chain_keeps_the_intermediates(ca: Issued, alice_laptop: Issued) -> None:
    assert from_escaped_pem(quote(alice_laptop.pem + ca.pem)) == PresentedCert(alice_laptop.der, (ca.der,))


def test_traefik_style_base64_der_is_read(alice_laptop: Issued, ca: Issued) -> None:
    value = quote(base64.b64encode(alice_laptop.der).decode()) + "," + base64.b64encode(ca.der).decode()
    assert from_escaped_pem(value) == PresentedCert(alice_laptop.der, (ca.der,))


@pytest.mark.parametrize(
    "value",
    ["", "%%%", "-----BEGIN CERTIFICATE-----\n@@@\n-----END CERTIFICATE-----", "not base64!", "A" * 40_000],
)
def test_unreadable_certificate_headers_are_no_certificate(value: str) -> None:
    assert from_escaped_pem(value) is None


def test_xfcc_cert_and_chain_are_read_from_the_last_element(
    ca: Issued, alice_laptop: Issued, bob_phone: Issued
) -> None:
    older = f'Hash=00;Cert="{quote(bob_phone.pem, safe="")}"'
    nearest = f'Hash=11;Cert="{quote(alice_laptop.pem, safe="")}";Chain="{quote(alice_laptop.pem + ca.pem, safe="")}"'
    assert from_xfcc(f"{older},{nearest}") == PresentedCert(alice_laptop.der, (ca.der,))


@pytest.mark.parametrize("value", ['Hash=00;Subject="CN=x"', 'Cert="%%%"', 'Cert="open', ""])
def test_xfcc_without_a_readable_cert_is_no_certificate(value: str) -> None:
    assert from_xfcc(value) is None


@pytest.mark.parametrize(
    ("text", "ok"),
    [("ab" * 32, True), ("AB:" * 31 + "AB", True), ("sha256:" + "0" * 64, True), ("0" * 63, False), ("g" * 64, False)],
)
def test_fingerprints_are_normalised_or_refused(text: str, ok: bool) -> None:
    if ok:
        assert normalise_fingerprint(text) == text.lower().removeprefix("sha256:").replace(":", "")
    else:
        with pytest.raises(ValueError, match="fingerprint"):
            normalise_fingerprint(text)


def verifier(bundle: list[Issued], tmp_path: Path, clock: ManualClock | None = None) -> ChainVerifier:
    path = tmp_path / "bundle.pem"
    path.write_text("".join(cert.pem for cert in bundle))
    return ChainVerifier(load_ca_bundle(path), ttl_s=5.0, max_entries=2, clock=clock)


def test_intermediates_come_from_the_presenter_or_the_bundle(ca: Issued, tmp_path: Path) -> None:
    sub = intermediate(ca)
    leaf = issue(sub, "carol-laptop")
    roots_only = verifier([ca], tmp_path)
    assert roots_only.problem(PresentedCert(leaf.der)) is not None
    assert roots_only.problem(PresentedCert(leaf.der, (sub.der,))) is None
    assert verifier([ca, sub], tmp_path).problem(PresentedCert(leaf.der)) is None


def test_a_verdict_is_remembered_for_the_ttl_but_never_past_expiry(ca: Issued, tmp_path: Path) -> None:
    clock = ManualClock(time.time())
    check = verifier([ca], tmp_path, clock)
    leaf = issue(ca, "dave-laptop")
    assert check.problem(PresentedCert(leaf.der)) is None
    clock.now = leaf.cert.not_valid_after_utc.timestamp() - 1  # cached verdict has run out: checked afresh
    assert check.problem(PresentedCert(leaf.der)) is None
    clock.advance(2)
    assert "not valid at validation time" in (check.problem(PresentedCert(leaf.der)) or "")


def test_a_bundle_without_certificates_is_a_config_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pem"
    empty.write_text("no certificates here\n")
    with pytest.raises(ConfigError):
        load_ca_bundle(empty)
    with pytest.raises(ConfigError):
        load_ca_bundle(tmp_path / "missing.pem")


def test_garbage_der_is_a_problem_not_a_crash(ca: Issued, tmp_path: Path) -> None:
    assert verifier([ca], tmp_path).problem(PresentedCert(b"\x30\x03junk")) == "the certificate is not valid DER"
