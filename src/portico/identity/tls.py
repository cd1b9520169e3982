"""TLS on Portico's own listener, with the client's certificate handed to the app (the ASGI TLS extension).

uvicorn terminates TLS but puts nothing of the client's certificate in the scope. `uvicorn_tls_options`
returns the `uvicorn.Config` keyword arguments for `listen.tls`, including an `http=` protocol class that,
once per connection (the handshake is done by then), reads the peer certificate from the transport's
`ssl_object` and adds to every request scope on that connection

    scope["extensions"]["tls"] = {
        "server_cert": None,                    # not known to the protocol; the spec allows None
        "client_cert_chain": [PEM, ...],        # the client's leaf (Python < 3.13 gives no intermediates)
        "client_cert_name": "CN=…" | None,      # RFC 4514 subject
        "client_cert_error": None,              # a certificate that failed verification ended the handshake
        "tls_version": 0x0304 | …,
        "cipher_suite": None,                   # Python's ssl gives the name only, not the IANA number
    }

as the ASGI TLS extension specifies. The app sees it through `portico.identity.context.certs`.

Below: uvicorn's HTTP protocols (`HttpToolsProtocol`, `H11Protocol`, 0.54). Above: `portico serve` and the
test harness, which pass these options to `uvicorn.Config` / `uvicorn.run`.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any, Literal

from cryptography import x509
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from portico.identity.context.settings import TlsSettings

_TLS_VERSIONS = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}
_CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}
HttpImplementation = Literal["httptools", "h11"]


def tls_extension(transport: asyncio.BaseTransport) -> dict[str, Any] | None:
    """The ASGI TLS extension for a connection, or None when it is not TLS."""
    ssl_object = transport.get_extra_info("ssl_object")
    if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
        return None
    der = ssl_object.getpeercert(binary_form=True)
    chain: list[str] = []
    name: str | None = None
    if der:
        chain.append(ssl.DER_cert_to_PEM_cert(der))
        try:
            name = x509.load_der_x509_certificate(der).subject.rfc4514_string()
        except ValueError:  # the TLS layer accepted it, so this is not expected; the chain still stands
            name = None
    version = ssl_object.version()
    return {
        "server_cert": None,
        "client_cert_chain": chain,
        "client_cert_name": name,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(version) if version else None,
        "cipher_suite": None,
    }


class _WithTls:
    """The app, with this connection's TLS extension added to each HTTP and WebSocket scope."""

    __slots__ = ("app", "tls")

    def __init__(self, app: Any, tls: dict[str, Any]) -> None:
        self.app = app
        self.tls = tls

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            scope["extensions"] = {**(scope.get("extensions") or {}), "tls": self.tls}
        await self.app(scope, receive, send)


class TlsHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, adding the ASGI TLS extension to the scopes of a TLS connection."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        tls = tls_extension(transport)
        if tls is not None:
            self.app = _WithTls(self.app, tls)


class TlsH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, adding the ASGI TLS extension to the scopes of a TLS connection."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        tls = tls_extension(transport)
        if tls is not None:
            self.app = _WithTls(self.app, tls)


def uvicorn_tls_options(tls: TlsSettings, http: HttpImplementation = "httptools") -> dict[str, Any]:
    """Keyword arguments for `uvicorn.Config` / `uvicorn.run` serving `listen.tls`: empty (plain HTTP, uvicorn's
    own `http`) when TLS is off. Pass them after Portico's own, e.g. `uvicorn.run(app, host=…, **options)`,
    and do not pass `http=` separately.
    """
    if tls.cert_file is None:
        return {}
    options: dict[str, Any] = {
        "ssl_certfile": str(tls.cert_file),
        "ssl_cert_reqs": _CERT_REQS[tls.client_cert],
        "http": TlsH11Protocol if http == "h11" else TlsHttpToolsProtocol,
    }
    if tls.key_file is not None:
        options["ssl_keyfile"] = str(tls.key_file)
    if tls.client_ca_file is not None and tls.client_cert != "none":
        options["ssl_ca_certs"] = str(tls.client_ca_file)
    return options
