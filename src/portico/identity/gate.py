"""The front door of every MCP request: who is calling, from where, or the refusal to send instead.

    Gate(resource_server | None, context)(scope, headers, server) -> Principal | Refusal

First the connection's facts (`portico.identity.context`: the client IP behind trusted proxies, its country,
the device certificate and its registry state); then, with `auth: oauth`, the bearer token, which must be valid
for the URL called (`portico.identity.resource`); with `auth: none` (loopback only) the caller is anonymous.
The principal carries both. At a public server's URL (`servers[].public`) a request without a token is an
anonymous caller, admitted or refused (429) by its per-address rate limit (`portico.inspection.public`).
Runs before the body is read, so a refused request costs no body parsing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
from starlette.types import Scope

from portico.identity.context.resolver import ClientContext, ContextResolver, apply_context
from portico.identity.resource import Challenge, ResourceServer
from portico.metrics import Metrics
from portico.transport.endpoint import Refusal
from portico.types import Principal

if TYPE_CHECKING:
    from portico.inspection.public import PublicAccess

_JSON = (b"content-type", b"application/json")


class Gate:
    """Authenticates MCP requests for the transport (`McpEndpoint(authenticate=Gate(...))`)."""

    def __init__(
        self,
        resource: ResourceServer | None,
        context: ContextResolver | None = None,
        metrics: Metrics | None = None,
        public: PublicAccess | None = None,
    ) -> None:
        self.resource = resource
        self.context = context
        self._metrics = metrics
        self.public = public  # public servers: a request without a token there is an anonymous, rate-limited caller

    async def __call__(self, scope: Scope, headers: dict[str, str], server: str | None) -> Principal | Refusal:
        facts: ClientContext | None = None
        if self.context is not None:
            facts = await self.context.resolve(scope)
            ip = facts.ip
        else:
            client = scope.get("client")
            ip = client[0] if client else None
        # Without auth every caller is anonymous: a token cannot exempt anyone from a public server's limits.
        tokenless = self.resource is None or "authorization" not in headers
        if self.public is not None and server is not None and self.public.is_public(server) and tokenless:
            admitted = self.public.admit(server, ip)
            return admitted if isinstance(admitted, Refusal) or facts is None else apply_context(admitted, facts)
        if self.resource is None:
            anonymous = Principal.anonymous(ip)
            return anonymous if facts is None else apply_context(anonymous, facts)
        if sum(1 for name, _ in scope["headers"] if name == b"authorization") > 1:
            return self._refuse(
                self.resource.challenge(server, 400, "invalid_request", "send one Authorization header")
            )
        result = self.resource.authenticate(headers, server, ip)
        if isinstance(result, Challenge):
            return self._refuse(result)
        return result if facts is None else apply_context(result, facts)

    def _refuse(self, challenge: Challenge) -> Refusal:
        if self._metrics is not None:
            self._metrics.auth_refusals.labels(challenge.error).inc()
        return Refusal(
            challenge.status,
            orjson.dumps(challenge.body()),
            ((b"www-authenticate", challenge.www_authenticate.encode("latin-1")), _JSON),
        )
