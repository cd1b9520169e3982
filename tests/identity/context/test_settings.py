"""The `network:`, `devices:` and `listen.tls:` settings: defaults, normalisation, and what they refuse."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from portico.identity.context.settings import DeviceSettings, NetworkSettings, TlsSettings


def test_defaults_believe_no_proxy_and_check_no_device() -> None:
    network, devices, tls = NetworkSettings(), DeviceSettings(), TlsSettings()
    assert (network.trusted_proxies, network.client_ip_header, network.countries) == ([], "x-forwarded-for", {})
    assert (devices.cert_sources, devices.unregistered_state, devices.cache_ttl_s) == ([], "unknown", 5.0)
    assert (tls.enabled, tls.client_cert) == (False, "none")


def test_country_codes_are_uppercased_and_merged() -> None:
    network = NetworkSettings(countries={"fr": ["192.0.2.0/25"], "FR": ["192.0.2.128/25"]})
    assert network.countries == {"FR": ["192.0.2.0/25", "192.0.2.128/25"]}


def test_the_cert_header_name_is_lowercased() -> None:
    assert DeviceSettings(cert_header="X-Forwarded-Client-Cert").cert_header == "x-forwarded-client-cert"


@pytest.mark.parametrize(
    ("model", "data"),
    [
        (NetworkSettings, {"trusted_proxies": ["10.0.0.1/8"]}),  # host bits set: a typo, not a network
        (NetworkSettings, {"trusted_proxies": ["proxy.internal"]}),
        (NetworkSettings, {"client_ip_header": "x-real-ip"}),
        (NetworkSettings, {"countries": {"FRA": ["192.0.2.0/24"]}}),
        (NetworkSettings, {"countries": {"FR": ["192.0.2.0/33"]}}),
        (NetworkSettings, {"unknown_key": 1}),
        (DeviceSettings, {"cert_sources": ["mtls"]}),  # without a CA nothing could be checked
        (DeviceSettings, {"cert_sources": ["smartcard"], "ca_file": "ca.pem"}),
        (DeviceSettings, {"cert_header": "x cert"}),
        (DeviceSettings, {"cache_ttl_s": 0}),
        (DeviceSettings, {"cache_ttl_s": 3600}),
        (TlsSettings, {"key_file": "k.pem"}),
        (TlsSettings, {"cert_file": "c.pem", "client_cert": "optional"}),
        (TlsSettings, {"client_ca_file": "ca.pem", "client_cert": "required"}),
        (TlsSettings, {"cert_file": "c.pem", "client_cert": "sometimes"}),
    ],
)
def test_invalid_settings_are_refused(model: type[BaseModel], data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        model.model_validate(data)


def test_every_setting_has_help_text() -> None:
    for model in (NetworkSettings, DeviceSettings, TlsSettings):
        for name, info in model.model_fields.items():
            assert info.description, f"{model.__name__}.{name}"


def test_settings_are_frozen() -> None:
    tls = TlsSettings(cert_file=Path("c.pem"), client_ca_file=Path("ca.pem"), client_cert="required")
    with pytest.raises(ValidationError):
        tls.client_cert = "none"  # type: ignore[misc]
