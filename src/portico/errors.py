"""Portico's exceptions, one tree with one root.

    PorticoError                      every error Portico raises on purpose
    ├── ConfigError                   the config file or environment is invalid (names the key and line)
    ├── ProtocolError                 the client sent something that is not valid MCP / JSON-RPC
    │   ├── ParseError                  not JSON                                  (-32700)
    │   ├── InvalidRequestError         not a JSON-RPC request                    (-32600)
    │   ├── MethodNotFoundError         unknown or unsupported method             (-32601)
    │   ├── InvalidParamsError          params missing or of the wrong shape      (-32602)
    │   ├── HeaderMismatchError         modern-era headers disagree with the body (-32020)
    │   └── UnsupportedVersionError     protocol version not served               (-32022)
    ├── NotFoundError                 unknown tool / prompt / resource / server (-32602)
    ├── DeniedError                   an enforcement stage refused the call     (-32001)
    │   ├── ContentBlockedError         content inspection refused a message (names signals, never text)
    │   └── DlpBlockedError             a DLP rule refused a call or withheld a result (never the value)
    ├── RateLimitedError              too many requests from one client address (-32005, HTTP 429)
    ├── UpstreamError                 the upstream server failed us             (-32003)
    │   ├── UpstreamUnavailableError    not connected, crashed, or circuit open
    │   ├── UpstreamTimeoutError        did not answer within its timeout       (-32004)
    │   └── UrlElicitationRequiredError the user must first connect in a browser (-32042, 2025-11-25)
    ├── NoBackChannelError            a server-to-client request on a wire that cannot carry one
    ├── BodyTooLargeError             request body over the configured limit (HTTP 413)
    ├── StoreError                    the database cannot be opened or migrated  (portico.store.db)
    └── AuditError                    the audit log cannot record: the call is not acknowledged (portico.audit.log)
        └── ChainConflictError          another writer moved this node's chain   (portico.audit.chain)

Each class carries a JSON-RPC `code` and a `public` message safe to send to any client. `detail` is private:
it goes to the process log, never to the wire. Client input is never echoed into `public`.

Foreign exceptions (httpx, OS, pydantic) are mapped to these at exactly one boundary each: the upstream
connectors for upstream failures, the transport for wire parsing, `config.load` for configuration.
"""

from __future__ import annotations

from typing import Any

from portico.types import RpcError

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
DENIED = -32001
RESOURCE_NOT_FOUND_LEGACY = -32002
UPSTREAM_FAILED = -32003
UPSTREAM_TIMEOUT = -32004
RATE_LIMITED = -32005
HEADER_MISMATCH = -32020
MISSING_CLIENT_CAPABILITY = -32021
UNSUPPORTED_PROTOCOL_VERSION = -32022
URL_ELICITATION_REQUIRED = -32042


class PorticoError(Exception):
    """Root of every error Portico raises on purpose."""

    code: int = INTERNAL_ERROR
    default_public = "Internal error"

    def __init__(self, public: str | None = None, *, detail: str | None = None, data: Any = None) -> None:
        self.public = public or self.default_public
        self.detail = detail
        self.data = data
        super().__init__(detail or self.public)

    def to_rpc(self) -> RpcError:
        return RpcError(self.code, self.public, self.data)


class ConfigError(PorticoError):
    """The configuration is invalid. `public` names the key (dotted path) and, when known, the line."""

    default_public = "Invalid configuration"


class ProtocolError(PorticoError):
    code = INVALID_REQUEST
    default_public = "Invalid request"


class ParseError(ProtocolError):
    code = PARSE_ERROR
    default_public = "Parse error: the body is not valid JSON"


class InvalidRequestError(ProtocolError):
    code = INVALID_REQUEST
    default_public = "Invalid request: expected one JSON-RPC 2.0 request or notification object"


class MethodNotFoundError(ProtocolError):
    code = METHOD_NOT_FOUND
    default_public = "Method not found"


class InvalidParamsError(ProtocolError):
    code = INVALID_PARAMS
    default_public = "Invalid params"


class HeaderMismatchError(ProtocolError):
    code = HEADER_MISMATCH
    default_public = "Header mismatch"


class UnsupportedVersionError(ProtocolError):
    code = UNSUPPORTED_PROTOCOL_VERSION
    default_public = "Unsupported protocol version"


class NotFoundError(PorticoError):
    """Unknown tool, prompt, resource or server (or one the caller may not see: the same answer, on purpose)."""

    code = INVALID_PARAMS
    default_public = "Not found"


class DeniedError(PorticoError):
    code = DENIED
    default_public = "Denied by policy"


class ContentBlockedError(DeniedError):
    """Content inspection refused a message (a likely prompt injection, a leaked credential). The public
    message and `data` name the signals or detectors and the direction; the text itself is never included."""

    default_public = "Blocked by content inspection"


class DlpBlockedError(DeniedError):
    """A DLP rule blocked a call before it reached the upstream, or withheld its result. The public message names
    the rule, the detector and the JSON path (sensitive dict keys masked); never the matched value."""

    default_public = "Blocked by data loss prevention"


class RateLimitedError(PorticoError):
    """A client address sent more requests than its limit allows (answered as HTTP 429 with Retry-After)."""

    code = RATE_LIMITED
    default_public = "Too many requests: retry later"


class UpstreamError(PorticoError):
    code = UPSTREAM_FAILED
    default_public = "Upstream server failed"


class UpstreamUnavailableError(UpstreamError):
    default_public = "Upstream server unavailable"


class UpstreamTimeoutError(UpstreamError):
    code = UPSTREAM_TIMEOUT
    default_public = "Upstream server timed out"


class UrlElicitationRequiredError(UpstreamError):
    """The call needs the user to complete a URL-mode elicitation first (connect an upstream account). `data`
    is the spec's `{"elicitations": [{"mode": "url", "elicitationId", "url", "message"}]}`: the URL is Portico's
    own connect link, never an upstream's."""

    code = URL_ELICITATION_REQUIRED
    default_public = "This request needs you to connect an account first"


SERVER_REQUEST_CAPABILITY = {
    "sampling/createMessage": "sampling",
    "elicitation/create": "elicitation",
    "roots/list": "roots",
}


class NoBackChannelError(PorticoError):
    """A server-to-client request the client cannot take (wire or undeclared capability); -32021 with the
    `requiredCapabilities` the spec asks for."""

    code = MISSING_CLIENT_CAPABILITY
    default_public = "The client cannot receive server requests on this connection"

    def __init__(self, method: str, public: str | None = None) -> None:
        capability = SERVER_REQUEST_CAPABILITY.get(method)
        shown = f"{self.default_public} ({method})" if method in SERVER_REQUEST_CAPABILITY else None
        super().__init__(public or shown, data={"requiredCapabilities": {capability: {}} if capability else {}})


class BodyTooLargeError(PorticoError):
    code = INVALID_REQUEST
    default_public = "Request body too large"
