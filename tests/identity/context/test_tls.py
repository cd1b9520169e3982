"""Portico's TLS listener seam against a real uvicorn on loopback: real handshakes with throwaway certificates,
a real client presenting (or not) a certificate, and the resolver reading it from the ASGI TLS extension."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import orjson
import pytest
import uvicorn

from portico.identity.context.resolver import ContextResolver
from portico.identity.context.settings import DeviceSettings, NetworkSettings, TlsSettings
from portico.identity.devices import DeviceRegistry
from portico.identity.tls import HttpImplementation, TlsH11Protocol, TlsHttpToolsProtocol, uvicorn_tls_options
from tests.identity.context.certs import Issued, issue, make_ca
from tests.support.portico import free_port
from tests.support.waits import eventually

pytestmark = pytest.mark.anyio


@pytest.fixture(
    params=[pytest.param(("asyncio", {}), id="asyncio"), pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop")]
)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """Portico serves on uvloop; the tests run on both loops (their SSL transports are separate code)."""
    backend: tuple[str, dict[str, Any]] = request.param
    return backend


@pytest.fixture(scope="module")
def server_ca() -> Issued:
    return make_ca("Portico Test Server CA")


@pytest.fixture
def tls_files(tmp_path: Path, server_ca: Issued, ca: Issued) -> dict[str, Path]:
    server_cert, server_key = issue(server_ca, "portico", server=True).write(tmp_path, "server")
    (tmp_path / "server-ca.pem").write_text(server_ca.pem)
    (tmp_path / "device-ca.pem").write_text(ca.pem)
    return {
        "cert": server_cert,
        "key": server_key,
        "server_ca": tmp_path / "server-ca.pem",
        "device_ca": tmp_path / "device-ca.pem",
    }


def echo_context(resolver: ContextResolver) -> Any:
    """An ASGI app answering with the resolved context and the raw TLS extension."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        found = await resolver.resolve(scope)
        tls = (scope.get("extensions") or {}).get("tls")
        body = orjson.dumps({"state": found.device_state, "device": found.device_id, "ip": found.ip, "tls": tls})
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    return app


@asynccontextmanager
async def serve(app: Any, options: dict[str, Any]) -> AsyncIterator[str]:
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning", **options)
    server = uvicorn.Server(config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        await eventually(lambda: server.started, 30, 0.02)
        try:
            yield f"https://127.0.0.1:{port}/"
        finally:
            server.should_exit = True


def client_context(files: dict[str, Path], tmp_path: Path, cert: Issued | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(files["server_ca"]))
    if cert is not None:
        cert_path, key_path = cert.write(tmp_path, "client")
        context.load_cert_chain(cert_path, key_path)
    return context


async def get(url: str, context: ssl.SSLContext) -> dict[str, Any]:
    with anyio.fail_after(15):
        async with httpx2.AsyncClient(verify=context) as client:
            response = await client.get(url)
    result: dict[str, Any] = response.json()
    return result


@pytest.fixture
def resolver(registry: DeviceRegistry, tls_files: dict[str, Path]) -> ContextResolver:
    settings = DeviceSettings(cert_sources=["mtls"], ca_file=tls_files["device_ca"])
    return ContextResolver(NetworkSettings(), settings, registry)


@pytest.mark.parametrize("store_settings", ["sqlite"], indirect=True)
@pytest.mark.parametrize("http", ["httptools", "h11"])
@pytest.mark.requirement("context:mtls-listener")
async def test_optional_mtls_hands_an_enrolled_certificate_to_the_app(
    http: HttpImplementation,
    tls_files: dict[str, Path],
    tmp_path: Path,
    registry: DeviceRegistry,
    resolver: ContextResolver,
    alice_laptop: Issued,
) -> None:
    device = await registry.enroll(alice_laptop.pem, "alice")
    tls = TlsSettings(
        cert_file=tls_files["cert"],
        key_file=tls_files["key"],
        client_ca_file=tls_files["device_ca"],
        client_cert="optional",
    )
    async with serve(echo_context(resolver), uvicorn_tls_options(tls, http)) as url:
        with_cert = await get(url, client_context(tls_files, tmp_path, alice_laptop))
        without = await get(url, client_context(tls_files, tmp_path, None))
    assert (with_cert["state"], with_cert["device"], with_cert["ip"]) == ("enrolled", device.id, "127.0.0.1")
    extension = with_cert["tls"]
    assert extension["client_cert_chain"] == [alice_laptop.pem]
    assert extension["client_cert_name"] == "CN=alice-laptop"
    assert extension["tls_version"] in (0x0303, 0x0304)
    assert (without["state"], without["device"], without["tls"]["client_cert_chain"]) == ("none", None, [])


@pytest.mark.parametrize("store_settings", ["sqlite"], indirect=True)
async def test_required_mtls_refuses_a_handshake_without_a_certificate(
    tls_files: dict[str, Path], tmp_path: Path, registry: DeviceRegistry, resolver: ContextResolver, bob_phone: Issued
) -> None:
    await registry.revoke((await registry.enroll(bob_phone.pem, "bob")).id)
    tls = TlsSettings(
        cert_file=tls_files["cert"],
        key_file=tls_files["key"],
        client_ca_file=tls_files["device_ca"],
        client_cert="required",
    )
    async with serve(echo_context(resolver), uvicorn_tls_options(tls)) as url:
        with pytest.raises(httpx2.TransportError):
            await get(url, client_context(tls_files, tmp_path, None))
        revoked = await get(url, client_context(tls_files, tmp_path, bob_phone))
    assert revoked["state"] == "revoked"


@pytest.mark.parametrize("store_settings", ["sqlite"], indirect=True)
async def test_a_certificate_of_another_ca_ends_the_handshake(
    tls_files: dict[str, Path], tmp_path: Path, resolver: ContextResolver, stranger: Issued
) -> None:
    tls = TlsSettings(
        cert_file=tls_files["cert"],
        key_file=tls_files["key"],
        client_ca_file=tls_files["device_ca"],
        client_cert="optional",
    )
    async with serve(echo_context(resolver), uvicorn_tls_options(tls)) as url:
        with pytest.raises(httpx2.TransportError):
            await get(url, client_context(tls_files, tmp_path, stranger))


@pytest.mark.parametrize("store_settings", ["sqlite"], indirect=True)
async def test_without_client_certificates_the_listener_still_reports_tls(
    tls_files: dict[str, Path], tmp_path: Path, resolver: ContextResolver, alice_laptop: Issued
) -> None:
    tls = TlsSettings(cert_file=tls_files["cert"], key_file=tls_files["key"])
    async with serve(echo_context(resolver), uvicorn_tls_options(tls)) as url:
        answer = await get(url, client_context(tls_files, tmp_path, alice_laptop))  # offered, never asked for
    assert answer["state"] == "none"
    assert answer["tls"]["client_cert_chain"] == []


def test_tls_options_follow_the_settings(tls_files: dict[str, Path]) -> None:
    assert uvicorn_tls_options(TlsSettings()) == {}
    options = uvicorn_tls_options(
        TlsSettings(cert_file=tls_files["cert"], client_ca_file=tls_files["device_ca"], client_cert="required"), "h11"
    )
    assert options == {
        "ssl_certfile": str(tls_files["cert"]),
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
        "ssl_ca_certs": str(tls_files["device_ca"]),
        "http": TlsH11Protocol,
    }
    assert uvicorn_tls_options(TlsSettings(cert_file=tls_files["cert"]))["http"] is TlsHttpToolsProtocol
