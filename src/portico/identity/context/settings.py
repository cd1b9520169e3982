"""The settings of the connection context: `network:` (client IP, country), `devices:` (device certificates) and
`listen.tls:` (Portico's own TLS listener, optionally asking for client certificates).

    network:
      trusted_proxies: [10.0.0.0/24]         # only these peers may say who the client is
      client_ip_header: x-forwarded-for      # or `forwarded` (RFC 7239)
      countries: {DE: [192.0.2.0/24], FR: [198.51.100.0/24]}
      country_file: /etc/portico/ip-country.csv
    devices:
      cert_sources: [mtls, header]
      ca_file: /etc/portico/device-ca.pem
      cert_header: x-ssl-client-cert         # nginx: proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;
      cert_header_format: escaped_pem        # or `xfcc` (Envoy's x-forwarded-client-cert)
    listen:
      tls: {cert_file: server.pem, key_file: server.key, client_ca_file: device-ca.pem, client_cert: optional}

Relative paths are relative to the working directory, like the vault's key file.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

CertSource = Literal["mtls", "header"]
_HEADER_NAME = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+")  # an RFC 9110 token, lowercase (ASGI lowercases names)
_COUNTRY = re.compile(r"[A-Z]{2}")


def _cidrs(values: list[str], where: str) -> list[str]:
    for cidr in values:
        try:
            ipaddress.ip_network(cidr, strict=True)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from exc
    return values


class NetworkSettings(BaseModel):
    """Where a request comes from: which peers are proxies to believe, and how an address maps to a country."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="CIDRs (or single addresses) of the reverse proxies in front of Portico. Only a peer in one "
        "of them may name the client (`client_ip_header`) or pass on its certificate (`devices.cert_header`); "
        "from anyone else those headers are ignored. List proxies only, never client networks.",
    )
    client_ip_header: Literal["x-forwarded-for", "forwarded"] = Field(
        "x-forwarded-for",
        description="Which header trusted proxies name the client in: `x-forwarded-for`, or RFC 7239 "
        "`forwarded` (its `for=` parameters). Read right to left, skipping trusted proxies; the first other "
        "address is the client. A malformed value falls back to the peer address.",
    )
    countries: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Country (ISO 3166-1 alpha-2) → CIDRs, for `countries:` policy conditions. The longest "
        "matching prefix wins; these override `country_file`.",
    )
    country_file: Path | None = Field(
        None,
        description="Optional offline IP-to-country table, one range a line: `first,last,CC` with addresses "
        "(DB-IP's 'IP to Country Lite' CSV) or integers (IP2Location LITE DB1 CSV). Read once at start-up; "
        "ranges must not overlap. No database is bundled with Portico.",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, value: list[str]) -> list[str]:
        return _cidrs(value, "trusted_proxies")

    @field_validator("countries")
    @classmethod
    def _country_ranges(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        normalised: dict[str, list[str]] = {}
        for code, cidrs in value.items():
            upper = code.upper()
            if _COUNTRY.fullmatch(upper) is None:
                raise ValueError(f"{code!r} is not an ISO 3166-1 alpha-2 country code")
            normalised.setdefault(upper, []).extend(_cidrs(cidrs, upper))
        return normalised


class DeviceSettings(BaseModel):
    """Device certificates: where a client's certificate comes from, the CA it must chain to, the registry cache."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cert_sources: list[CertSource] = Field(
        default_factory=list,
        description="Where a device certificate may come from: `mtls` (Portico's own TLS listener, see "
        "`listen.tls.client_cert`) and/or `header` (set by a TLS-terminating proxy in "
        "`network.trusted_proxies`). Empty: no device checks; every caller's device state is `none`.",
    )
    ca_file: Path | None = Field(
        None,
        description="PEM bundle of the CA certificates device certificates must chain to (put intermediate CAs "
        "here too: Python's TLS layer does not hand on the client's intermediates). Required with "
        "`cert_sources`. Checked by Portico for every source, whatever the TLS layer already checked.",
    )
    cert_header: str = Field(
        "x-ssl-client-cert",
        description="The header a trusted proxy puts the client certificate in. Ignored from any other peer. The "
        "proxy must set it on every request, overwriting any the client sent (nginx `proxy_set_header`; Envoy "
        "`forward_client_cert_details: SANITIZE_SET`).",
    )
    cert_header_format: Literal["escaped_pem", "xfcc"] = Field(
        "escaped_pem",
        description="`escaped_pem`: the URL-encoded PEM (nginx `$ssl_client_escaped_cert`; also base64 DER, as "
        "Traefik sends); `xfcc`: Envoy's `x-forwarded-client-cert` (its `Cert=` and `Chain=`, from the element "
        "the nearest proxy added).",
    )
    unregistered_state: Literal["unknown", "none"] = Field(
        "unknown",
        description="What a valid certificate (it chains to `ca_file`) that is not in the device registry "
        "counts as: `unknown` (a device, not enrolled) or `none` (as if no certificate was sent).",
    )
    cache_ttl_s: float = Field(
        5.0,
        gt=0,
        le=300,
        description="How long a registry answer (and a chain check) is remembered per certificate. A "
        "revocation takes effect at once on the process that made it and within this many seconds on others "
        "(including after `portico device revoke`).",
    )
    cache_entries: int = Field(10_000, ge=1, description="Certificates whose registry answer is remembered.")
    last_seen_interval_s: float = Field(
        300.0,
        ge=0,
        description="A device's `last_seen` is written at most this often (0: never written).",
    )

    @field_validator("cert_header")
    @classmethod
    def _header_name(cls, value: str) -> str:
        lowered = value.lower()
        if _HEADER_NAME.fullmatch(lowered) is None:
            raise ValueError("must be an HTTP header name")
        return lowered

    @field_validator("cert_sources")
    @classmethod
    def _distinct_sources(cls, value: list[CertSource]) -> list[CertSource]:
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _ca_when_checking(self) -> DeviceSettings:
        if self.cert_sources and self.ca_file is None:
            raise ValueError("ca_file is required when cert_sources is set")
        return self


class TlsSettings(BaseModel):
    """TLS on Portico's own listener (`listen.tls`), and whether clients are asked for a certificate."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cert_file: Path | None = Field(
        None, description="PEM certificate chain the listener presents. Unset: plain HTTP (no TLS)."
    )
    key_file: Path | None = Field(None, description="PEM private key of `cert_file` (unset: inside `cert_file`).")
    client_ca_file: Path | None = Field(
        None, description="PEM bundle client certificates must chain to at the TLS handshake (usually the same "
        "file as `devices.ca_file`). Required unless `client_cert` is `none`.",
    )  # fmt: skip
    client_cert: Literal["none", "optional", "required"] = Field(
        "none",
        description="`none`: never ask for a client certificate; `optional`: ask, and refuse the handshake only "
        "if one is sent that does not chain to `client_ca_file`; `required`: refuse the handshake without one.",
    )

    @property
    def enabled(self) -> bool:
        return self.cert_file is not None

    @model_validator(mode="after")
    def _consistent(self) -> TlsSettings:
        if self.cert_file is None and (self.key_file is not None or self.client_ca_file is not None):
            raise ValueError("key_file and client_ca_file need cert_file")
        if self.client_cert != "none" and (self.cert_file is None or self.client_ca_file is None):
            raise ValueError(f"client_cert: {self.client_cert} needs cert_file and client_ca_file")
        return self
