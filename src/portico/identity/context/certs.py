"""Client certificates: reading one from where it arrives (the ASGI TLS extension, a proxy's header), its
SHA-256 fingerprint, and checking that it chains to the device CA.

A certificate is named by the SHA-256 of its DER encoding, as 64 lowercase hex digits (`fingerprint_of`);
`normalise_fingerprint` accepts what people paste (`AB:CD:…`, `sha256:…`, any case).

`ChainVerifier` checks a certificate with `cryptography`'s RFC 5280 path validation (the client profile: a
leaf whose extended key usage, if any, allows clientAuth; a subjectAltName is not required, since device
certificates often have none) against the CA bundle, at the current time. Each verdict is remembered per
certificate for `ttl_s` (never past the leaf's expiry), so a busy device costs one check per TTL, not one per
request (a check is ~0.1 ms).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote_to_bytes

from cryptography import x509
from cryptography.x509 import verification

from portico.errors import ConfigError
from portico.identity.context.forwarded import last_xfcc_element

Clock = Callable[[], float]  # Unix seconds, like `time.time`
MAX_CERT_HEADER_CHARS = 32_768
_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.DOTALL)
_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class PresentedCert:
    """A client certificate as presented: the leaf and any intermediates the presenter sent (DER)."""

    leaf: bytes
    intermediates: tuple[bytes, ...] = ()
    fingerprint: str = field(init=False, compare=False)  # of the leaf, computed once

    def __post_init__(self) -> None:
        object.__setattr__(self, "fingerprint", fingerprint_of(self.leaf))


def fingerprint_of(der: bytes) -> str:
    """SHA-256 of a DER certificate, as 64 lowercase hex digits."""
    return hashlib.sha256(der).hexdigest()


def normalise_fingerprint(text: str) -> str:
    """`text` as 64 lowercase hex digits; colons, spaces and a `sha256:` prefix are dropped.

    Raises:
        ValueError: not a SHA-256 fingerprint.
    """
    cleaned = text.strip().lower().removeprefix("sha256:").replace(":", "").replace(" ", "")
    if _HEX.fullmatch(cleaned) is None:
        raise ValueError("not a SHA-256 fingerprint (64 hex digits)")
    return cleaned


def pem_blocks(data: bytes) -> list[bytes] | None:
    """The DER of every PEM certificate block in `data` (whitespace inside a block ignored); None if a block is
    not base64."""
    blocks: list[bytes] = []
    for match in _PEM.finditer(data):
        try:
            blocks.append(base64.b64decode(b"".join(match.group(1).split()), validate=True))
        except binascii.Error:
            return None
    return blocks


def _chain(ders: Sequence[bytes] | None) -> PresentedCert | None:
    if not ders:
        return None
    return PresentedCert(ders[0], tuple(ders[1:]))


def from_pem(text: str) -> PresentedCert | None:
    """The certificate (and any chain after it) in PEM text, as the ASGI TLS extension's `client_cert_chain`
    entries hold it; None when unreadable."""
    return _chain(pem_blocks(text.encode("ascii", "replace")))


def from_escaped_pem(value: str) -> PresentedCert | None:
    """A certificate in a proxy header: URL-encoded PEM (nginx `$ssl_client_escaped_cert`, possibly with the
    chain after it), or comma-separated base64 DER (Traefik). None when unreadable."""
    if len(value) > MAX_CERT_HEADER_CHARS:
        return None
    data = unquote_to_bytes(value.strip())
    if b"-----BEGIN" in data:
        return _chain(pem_blocks(data))
    ders: list[bytes] = []
    for part in data.split(b","):
        try:
            ders.append(base64.b64decode(b"".join(part.split()), validate=True))
        except binascii.Error:
            return None
    return _chain([der for der in ders if der])


def from_xfcc(value: str) -> PresentedCert | None:
    """The certificate in Envoy's `X-Forwarded-Client-Cert`, from the element the nearest proxy added: its
    `Cert` (URL-encoded PEM), with intermediates from `Chain` when present. None without a `Cert`."""
    if len(value) > MAX_CERT_HEADER_CHARS:
        return None
    element = last_xfcc_element(value)
    if element is None or not element.get("cert"):
        return None
    leaf = pem_blocks(unquote_to_bytes(element["cert"]))
    if not leaf:
        return None
    chain = pem_blocks(unquote_to_bytes(element.get("chain", ""))) or []
    return PresentedCert(leaf[0], tuple(der for der in chain if der != leaf[0]))


def load_ca_bundle(path: Path) -> verification.Store:
    """The trust store of the certificates in a PEM bundle.

    Raises:
        ConfigError: the file cannot be read or holds no certificate.
    """
    try:
        certificates = x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError("devices.ca_file cannot be read as PEM certificates", detail=f"{path}: {exc}") from exc
    return verification.Store(certificates)


class ChainVerifier:
    """Does a presented certificate chain to the device CA now? Verdicts are remembered per certificate."""

    def __init__(
        self, store: verification.Store, *, ttl_s: float, max_entries: int, clock: Clock | None = None
    ) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._clock: Clock = clock or time.time
        self._ee_policy = verification.ExtensionPolicy.webpki_defaults_ee().may_be_present(
            x509.SubjectAlternativeName, verification.Criticality.AGNOSTIC, None
        )
        self._ca_policy = verification.ExtensionPolicy.webpki_defaults_ca()
        self._verdicts: dict[str, tuple[float, str | None]] = {}

    def problem(self, cert: PresentedCert) -> str | None:
        """None when `cert` chains to the CA and is valid now; else why not (for logs and the audit record)."""
        key = cert.fingerprint
        if cert.intermediates:
            key += hashlib.sha256(b"".join(cert.intermediates)).hexdigest()
        now = self._clock()
        cached = self._verdicts.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        verdict, not_after = self._verify(cert, now)
        if len(self._verdicts) >= self._max_entries:
            self._verdicts.pop(next(iter(self._verdicts)))
        self._verdicts[key] = (min(now + self._ttl_s, not_after), verdict)
        return verdict

    def _verify(self, cert: PresentedCert, now: float) -> tuple[str | None, float]:
        try:
            leaf = x509.load_der_x509_certificate(cert.leaf)
            intermediates = [x509.load_der_x509_certificate(der) for der in cert.intermediates]
        except ValueError:
            return "the certificate is not valid DER", now + self._ttl_s
        verifier = (
            verification.PolicyBuilder()
            .store(self._store)
            .time(datetime.fromtimestamp(now, UTC))
            .extension_policies(ca_policy=self._ca_policy, ee_policy=self._ee_policy)
            .build_client_verifier()
        )
        try:
            verifier.verify(leaf, intermediates)
        except verification.VerificationError as exc:
            return f"the certificate does not chain to devices.ca_file: {exc}", now + self._ttl_s
        return None, leaf.not_valid_after_utc.timestamp()
