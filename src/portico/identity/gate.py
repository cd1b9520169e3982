"""The front door of every MCP request: who is calling, from where, or the refusal to send instead.

    Gate(resource_server | None)(scope, headers, server) -> Principal | Refusal

With `auth: none` (loopback only) every caller is the anonymous principal; with `auth: oauth` the bearer
token must be valid for the URL called (`portico.identity.resource`). Runs before the body is read, so an
unauthenticated request costs no body parsing.
"""

from __future__ import annotations

import orjson
from starlette.types import Scope

from portico.identity.resource import Challenge, ResourceServer
from portico.metrics import Metrics
from portico.transport.endpoint import Refusal
from portico.types import Principal

_JSON = (b"content-type", b"application/json")


class Gate:
    """Authenticates MCP requests for the transport (`McpEndpoint(authenticate=Gate(...))`)."""

    def __init__(self, resource: ResourceServer | None, metrics: Metrics | None = None) -> None:
        self.resource = resource
        self._metrics = metrics

    async def __call__(self, scope: Scope, headers: dict[str, str], server: str | None) -> Principal | Refusal:
        client = scope.get("client")
        ip = client[0] if client else None
        if self.resource is None:
            return Principal.anonymous(ip)
        if sum(1 for name, _ in scope["headers"] if name == b"authorization") > 1:
            return self._refuse(
                self.resource.challenge(server, 400, "invalid_request", "send one Authorization header")
            )
        result = self.resource.authenticate(headers, server, ip)
        if isinstance(result, Challenge):
            return self._refuse(result)
        return result

    def _refuse(self, challenge: Challenge) -> Refusal:
        if self._metrics is not None:
            self._metrics.auth_refusals.labels(challenge.error).inc()
        return Refusal(
            challenge.status,
            orjson.dumps(challenge.body()),
            ((b"www-authenticate", challenge.www_authenticate.encode("latin-1")), _JSON),
        )
