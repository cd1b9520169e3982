"""Public-server mode: anonymous callers at a public server's own URL, and what they may do there.

    edge      Gate → PublicAccess.admit(server, ip)          an anonymous Principal, or 429 with Retry-After
              McpEndpoint → PublicAccess.body_limit(...)     the small body limit for anonymous callers (413)
    pipeline  Policy → PublicPolicyStage                     anonymous callers judged by the anonymous view
              → InspectionStage                              arguments scored, results scanned for credentials

Who counts as a public caller: a request to `/servers/<id>/mcp` of a server with `public:` enabled that carries
no `Authorization` header. It gets `Principal(subject="anonymous", authenticated_by="public")` with the client
address from the connection context (trusted proxies handled there). A request with a token is authenticated
as usual and treated as that person (a bad token is still a 401: the client asked to be someone). The portal
`/mcp` and non-public servers' URLs never admit anonymous callers.

How policy matches anonymous callers (fail closed): marking a server public opens nothing by itself. An
anonymous caller is judged twice: by the policy as written (so every `forbid` applies to them, as to anyone),
and then by the *anonymous view* of it: every forbid rule, but only the permit rules that list the user
`anonymous` literally in `users:`, and `default: deny` whatever the policy's default. A permit written for
signed-in people — no `users:` condition, or a glob such as `*` or `*@example.com` — never admits the
public, so a broad rule for staff cannot silently open a public server to the internet:

    - id: public-docs
      effect: permit
      servers: [docs]
      users: [anonymous]

The rate limiter is per process (see `portico.transport.ratelimit`). A refusal over the limit is HTTP 429 with
`Retry-After` and a JSON-RPC error body (id null): the limit is checked before the body is read, so there is no
request id to answer, and Streamable HTTP clients see the status of their POST (the SDK raises on it) while
proxies and load balancers understand 429.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from datetime import datetime

import orjson

from portico.config import Settings
from portico.errors import RateLimitedError
from portico.inspection.settings import PublicSettings
from portico.metrics import Metrics
from portico.policy import CompiledPolicy, PolicySettings, compile_policy
from portico.policy.stage import PolicyStage
from portico.transport.endpoint import Refusal
from portico.transport.ratelimit import RateLimiter, address_key
from portico.types import CallNext, Exchange, Principal, Reply

PUBLIC = "public"  # `Principal.authenticated_by` of an anonymous caller admitted at a public server's URL
ANONYMOUS = "anonymous"  # their subject, and the user a permit rule must name to admit them
_JSON = (b"content-type", b"application/json")


class PublicAccess:
    """Admission of anonymous callers at public servers' URLs: which servers, how often, how large a body."""

    def __init__(
        self,
        servers: Mapping[str, PublicSettings],
        max_body_bytes: int,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`servers`: the public settings of every server that has them (disabled ones are ignored);
        `max_body_bytes`: `http.max_body_bytes`, the limit for everyone else and the ceiling for public ones."""
        self.servers = {server_id: s for server_id, s in servers.items() if s.enabled}
        self._max_body = max_body_bytes
        self._metrics = metrics
        self._limiters = {
            server_id: RateLimiter(
                s.rate_limit.requests_per_minute / 60.0,
                s.rate_limit.burst,
                max_keys=s.rate_limit.max_tracked_addresses,
                clock=clock,
            )
            for server_id, s in self.servers.items()
        }

    @classmethod
    def from_settings(cls, settings: Settings, metrics: Metrics | None = None) -> PublicAccess:
        public = {s.id: s.public for s in settings.servers if s.public is not None and s.enabled}
        return cls(public, settings.http.max_body_bytes, metrics)

    def is_public(self, server: str | None) -> bool:
        return server is not None and server in self.servers

    def admit(self, server: str, ip: str | None) -> Principal | Refusal:
        """An anonymous principal for a request to public `server` from `ip`, or the 429 to send instead."""
        settings = self.servers[server]
        wait = self._limiters[server].take(address_key(ip, settings.rate_limit.ipv6_prefix))
        if wait > 0:
            if self._metrics is not None:
                self._metrics.public_throttled.labels(server).inc()
            body = {"jsonrpc": "2.0", "id": None, "error": RateLimitedError().to_rpc().to_json()}
            retry_after = str(max(1, math.ceil(wait))).encode()
            return Refusal(429, orjson.dumps(body), ((b"retry-after", retry_after), _JSON))
        return Principal(subject=ANONYMOUS, authenticated_by=PUBLIC, ip=ip)

    def body_limit(self, server: str | None, principal: Principal) -> int:
        """The largest request body `principal` may send to `server`'s URL."""
        if principal.authenticated_by == PUBLIC and server is not None and server in self.servers:
            return min(self.servers[server].max_body_bytes, self._max_body)
        return self._max_body


def anonymous_view(policy: PolicySettings) -> CompiledPolicy:
    """The policy an anonymous caller is judged by: every forbid, only the permits that name the user
    `anonymous` literally, and implicit deny."""
    rules = [
        rule for rule in policy.rules if rule.effect == "forbid" or (rule.users is not None and ANONYMOUS in rule.users)
    ]
    return compile_policy(policy.model_copy(update={"default": "deny", "rules": rules}))


class PublicPolicyStage:
    """Judge anonymous callers of public servers by the anonymous view of the policy (see the module docstring).

    Sits right after `PolicyStage`, which has judged the call by the policy as written; for a public caller this
    stage judges it again (a guarded call is refused unless the view permits it too, and its decision replaces
    the first in the audit record) and narrows listings to what the view shows. Everyone else passes untouched.
    `get_policy` is read on every exchange, so a reloaded policy applies at once.
    """

    def __init__(self, get_policy: Callable[[], PolicySettings], clock: Callable[[], datetime]) -> None:
        self._get_policy = get_policy
        self._seen: PolicySettings | None = None
        self._view: CompiledPolicy | None = None
        self._judge = PolicyStage(self._current_view, clock)

    def _current_view(self) -> CompiledPolicy:
        settings = self._get_policy()
        if self._view is None or settings is not self._seen:
            self._view, self._seen = anonymous_view(settings), settings
        return self._view

    async def __call__(self, exchange: Exchange, call_next: CallNext) -> Reply:
        """Raises:
        DeniedError: a public caller asked for something the anonymous view does not permit.
        """
        if exchange.principal.authenticated_by != PUBLIC:
            return await call_next(exchange)
        return await self._judge(exchange, call_next)
