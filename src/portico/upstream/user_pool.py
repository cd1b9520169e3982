"""`OAuthUpstream`: a Streamable HTTP upstream whose calls carry each user's own upstream token.

The connection model, and why:

* The upstream's **shared connection** (this class *is* an `HttpUpstream`, supervised like any other) serves
  only Portico's own exchanges (`Exchange.internal`: catalog listing, `list_changed`, resource
  subscriptions). It presents `oauth.catalog_credential`, or nothing. It never carries a user's call, and never
  a user's token: one user's listing is not everyone's (an upstream may filter tools per account), and a
  catalog that waited for a first user would leave nobody a tool to call and so nobody a connect link. An
  upstream that requires authorization even to list is reported, with what to configure, as this server's
  error (health `last_error` and the log).
* Every **user call** goes over that user's own connection (`UserConnection`, an `HttpUpstream` with
  `Authorization: Bearer <the user's upstream token>` and nothing else credential-like), created on first use,
  keyed by subject, closed after `idle_timeout_s` unused, at most `max_user_connections` (least recently used
  idle ones are closed first). A legacy upstream thus gets one session per user, bound to that user's token,
  as its own auth expects; a modern (stateless) upstream costs one keep-alive pool per active user.
  A token refresh replaces the connection (the header is fixed at connect); that happens once per token
  lifetime, not per call.
* No token for the user, or a refresh refused: the call fails with URL-mode elicitation — `-32042` with a
  connect link in the handshake era; an `InputRequiredResult` with a url-mode `elicitation/create` for
  2026-07-28 clients of `tools/call`, `prompts/get`, `resources/read` (the modern era has no -32042).
* A 401 from the upstream on a user's connection refreshes that user's token once and retries; a 403
  `insufficient_scope` asks the user to connect again with the challenge's scopes added.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
from mcp_types.methods import INPUT_REQUIRED_METHODS

from portico.errors import PorticoError, UpstreamUnavailableError, UrlElicitationRequiredError
from portico.types import JSON, Era, Exchange
from portico.upstream.http import HttpUpstream
from portico.upstream.model import Health
from portico.upstream.oauth_client import OAuthClient
from portico.upstream.oauth_discovery import UpstreamAuthError, parse_challenge
from portico.upstream.oauth_settings import UpstreamOAuthSettings
from portico.upstream.wire import Response
from portico.vault import VaultError, parse_vault_ref, server_scope

log = logging.getLogger("portico.upstream.oauth")

CONNECT_INPUT_KEY = "portico.connect"
_INTERNAL = "portico"


class UpstreamUnauthorizedError(PorticoError):
    """The upstream answered 401/403 to a bearer token. Deliberately not an `UpstreamError`: the connector's
    probes swallow those, and this one must reach `OAuthUpstream`, which turns it into a refresh or a connect
    request (it never reaches a client)."""

    default_public = "Upstream server refused the credential"

    def __init__(self, status: int, scope: str | None, error: str | None) -> None:
        super().__init__(detail=f"HTTP {status} {error or ''}".strip())
        self.status = status
        self.scope = scope
        self.error = error


class _ChallengeAware(HttpUpstream):
    async def _read_response(self, response: Response, request_id: int, exchange: Exchange | None, era: Era) -> JSON:
        if response.status_code in (401, 403):
            challenge = parse_challenge(response.headers.get("www-authenticate"))
            await response.aclose()
            raise UpstreamUnauthorizedError(
                response.status_code, challenge.scope if challenge else None, challenge.error if challenge else None
            )
        return await super()._read_response(response, request_id, exchange, era)


class UserConnection(_ChallengeAware):
    """One user's connection to the upstream: the user's bearer token and no other credential."""

    def __init__(self, *args: Any, token: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.token = token
        self.closed = anyio.Event()

    async def resolve_values(self, mapping: Any) -> dict[str, str]:
        headers = {k: v for k, v in mapping.items() if k.lower() != "authorization"}
        resolved = await super().resolve_values(headers)
        return {**resolved, "authorization": f"Bearer {self.token}"}

    async def _standing_stream(self) -> None:
        return None  # list_changed and resource updates come over the shared connection

    def close(self) -> None:
        self.health.state = Health.DOWN
        self._broken.set()

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Connect, report started, serve until closed or broken. Errors before `started` go to the starter."""
        started = False
        try:
            async with anyio.create_task_group() as tg:
                with anyio.fail_after(self.settings.connect_timeout_s):
                    self.info = await self._connect(tg)
                self.health.state = Health.READY
                started = True
                task_status.started()
                await self._broken.wait()
                tg.cancel_scope.cancel()
        except Exception as exc:
            if not started:
                raise _first_leaf(exc) from None
            log.info("upstream %s: a user connection ended: %s", self.id, self._describe(exc))
        finally:
            self.health.state = Health.DOWN
            with anyio.CancelScope(shield=True):
                await self._disconnect()
            self.closed.set()


@dataclass(slots=True)
class _Slot:
    connection: UserConnection
    last_used: float
    in_use: int = 0


@dataclass(slots=True)
class _UserConnections:
    owner: OAuthUpstream
    slots: dict[str, _Slot] = field(default_factory=dict)
    locks: dict[str, anyio.Lock] = field(default_factory=dict)
    tg: anyio.abc.TaskGroup | None = None

    def _now(self) -> float:
        return anyio.current_time()

    async def acquire(self, subject: str, token: str) -> UserConnection:
        lock = self.locks.setdefault(subject, anyio.Lock())
        async with lock:
            slot = self.slots.get(subject)
            if slot is not None and (slot.connection.token != token or not slot.connection.ready):
                self._close(subject)
                slot = None
            if slot is None:
                if self.tg is None:
                    raise UpstreamUnavailableError(f"Upstream server {self.owner.id!r} is unavailable")
                await self._make_room()
                connection = UserConnection(self.owner.settings, None, token=token)
                connection.secrets = self.owner.secrets
                await self.tg.start(connection.run)
                slot = self.slots[subject] = _Slot(connection, self._now())
            slot.in_use += 1
            slot.last_used = self._now()
            return slot.connection

    def release(self, subject: str, connection: UserConnection) -> None:
        slot = self.slots.get(subject)
        if slot is not None and slot.connection is connection:
            slot.in_use -= 1
            slot.last_used = self._now()

    def drop(self, subject: str, connection: UserConnection) -> None:
        slot = self.slots.get(subject)
        if slot is not None and slot.connection is connection:
            self._close(subject)

    def _close(self, subject: str) -> None:
        slot = self.slots.pop(subject, None)
        if slot is not None:
            slot.connection.close()  # calls still running on it end with UpstreamUnavailableError
        lock = self.locks.get(subject)
        if slot is not None and lock is not None and not lock.locked():
            self.locks.pop(subject, None)

    async def _make_room(self) -> None:
        limit = self.owner.oauth.max_user_connections
        while len(self.slots) >= limit:
            idle = [(s.last_used, subject) for subject, s in self.slots.items() if s.in_use == 0]
            if not idle:
                raise UpstreamUnavailableError(
                    f"Upstream server {self.owner.id!r} is busy", detail="every per-user connection is in use"
                )
            self._close(min(idle)[1])

    async def janitor(self) -> None:
        idle_s = self.owner.oauth.idle_timeout_s
        while True:
            await anyio.sleep(max(idle_s / 4, 0.05))
            now = self._now()
            for subject, slot in list(self.slots.items()):
                if slot.in_use == 0 and (now - slot.last_used >= idle_s or not slot.connection.ready):
                    self._close(subject)

    def close_user(self, subject: str) -> None:
        """Close `subject`'s connection (their tokens are gone); calls still running on it end unavailable."""
        self._close(subject)

    def close_all(self) -> None:
        for subject in list(self.slots):
            self._close(subject)


class OAuthUpstream(_ChallengeAware):
    """A Streamable HTTP upstream with `oauth:` (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        oauth: UpstreamOAuthSettings | None = getattr(self.settings, "oauth", None)
        if oauth is None:
            raise ValueError("OAuthUpstream needs a server with `oauth:`")
        self.oauth = oauth
        self.client: OAuthClient | None = None
        self._users = _UserConnections(self)

    def bind(self, client: OAuthClient) -> None:
        """Where user tokens come from (the process's `OAuthClient`, bound at start-up). A user whose tokens are
        deleted (disconnect, refused refresh) loses their connection at once."""
        self.client = client
        client.on_disconnected(self.id, self._users.close_user)

    @property
    def user_connections(self) -> int:
        return len(self._users.slots)

    # ------------------------------------------------------------------------------------ lifecycle

    async def supervise(self) -> None:
        async with anyio.create_task_group() as tg:
            self._users.tg = tg
            tg.start_soon(self._users.janitor)
            try:
                await super().supervise()
            finally:
                self._users.tg = None
                self._users.close_all()
                tg.cancel_scope.cancel()

    async def resolve_values(self, mapping: Any) -> dict[str, str]:
        """The shared connection's headers: the configured ones, plus the catalog credential."""
        headers = await super().resolve_values(mapping)
        token = await self._catalog_token()
        if token is not None:
            headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            headers["authorization"] = f"Bearer {token}"
        return headers

    async def _catalog_token(self) -> str | None:
        reference = self.oauth.catalog_credential
        if reference is None:
            return None
        name = parse_vault_ref(reference)
        if name is None:
            return (await super().resolve_values({"authorization": reference}))["authorization"]
        try:
            return await (self.secrets or _missing()).get(server_scope(self.id), name)
        except VaultError as exc:
            raise UpstreamUnavailableError(detail=f"catalog credential: {exc.public}") from exc

    def _describe(self, exc: BaseException) -> str:
        """Why the shared connection failed; a refused listing says what the operator must configure."""
        leaf = _first_leaf(exc)
        if not isinstance(leaf, UpstreamUnauthorizedError):
            return super()._describe(exc)
        if self.oauth.catalog_credential is None:
            reason = (
                f"the upstream requires authorization to list its tools ({leaf.detail}): set "
                f"servers[{self.id}].oauth.catalog_credential to a listing token"
            )
        else:
            reason = f"the upstream refused servers[{self.id}].oauth.catalog_credential ({leaf.detail})"
        log.error("upstream %s: %s", self.id, reason)
        return reason

    # ---------------------------------------------------------------------------------------- calls

    async def request(self, exchange: Exchange, method: str, params: JSON) -> JSON:
        if _is_internal(exchange):
            try:
                return await super().request(exchange, method, params)
            except UpstreamUnauthorizedError as exc:
                self.mark_broken(f"the upstream refused the catalog credential ({exc.detail})")
                raise UpstreamUnavailableError(f"Upstream server {self.id!r} is unavailable") from exc
        return await self._user_request(exchange, method, params)

    async def _user_request(self, exchange: Exchange, method: str, params: JSON) -> JSON:
        client = self.client
        if client is None:
            raise UpstreamUnavailableError(f"Upstream server {self.id!r} is unavailable", detail="OAuth not bound")
        subject = exchange.principal.subject
        params = _without_connect_answer(params)
        try:
            token = await client.access_token(self.settings, subject)
            for _ in range(2):
                if token is None:
                    break
                try:
                    return await self._on_connection(subject, token, exchange, method, params)
                except UpstreamUnauthorizedError as exc:
                    if exc.status == 403 and exc.error == "insufficient_scope":
                        return self._connect_required(exchange, client, tuple((exc.scope or "").split()))
                    token = await client.refresh(self.settings, subject, token)
        except UpstreamAuthError as exc:
            raise UpstreamUnavailableError(f"Upstream server {self.id!r} is unavailable", detail=exc.detail) from exc
        except VaultError as exc:
            raise UpstreamUnavailableError(f"Upstream server {self.id!r}: credential unavailable",
                                           detail=exc.detail or exc.public) from exc  # fmt: skip
        return self._connect_required(exchange, client, ())

    async def _on_connection(self, subject: str, token: str, exchange: Exchange, method: str, params: JSON) -> JSON:
        """One attempt over the user's connection for `token`. Raises: UpstreamUnauthorizedError: refused."""
        connection = await self._users.acquire(subject, token)
        try:
            return await connection.request(exchange, method, params)
        except UpstreamUnauthorizedError:
            self._users.drop(subject, connection)
            raise
        finally:
            self._users.release(subject, connection)

    def _connect_required(self, exchange: Exchange, client: OAuthClient, scopes: tuple[str, ...]) -> JSON:
        """Ask the user to connect: a modern InputRequiredResult where the method allows one, else -32042.

        Raises:
            UrlElicitationRequiredError: in the handshake era (and for methods that cannot ask for input).
        """
        url = client.connect_link(exchange.principal.subject, self.settings, scopes)
        title = self.settings.title or self.id
        message = f"Connect {title} to continue"
        if exchange.era is Era.MODERN and exchange.method in INPUT_REQUIRED_METHODS:
            request = {"method": "elicitation/create", "params": {"mode": "url", "message": message, "url": url}}
            return {"result": {"resultType": "input_required", "inputRequests": {CONNECT_INPUT_KEY: request}}}
        elicitation = {"mode": "url", "elicitationId": secrets.token_urlsafe(16), "url": url, "message": message}
        raise UrlElicitationRequiredError(message, data={"elicitations": [elicitation]})


def _first_leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _is_internal(exchange: Exchange) -> bool:
    """Portico's own exchanges (`Exchange.internal`): no request id, the `portico` principal, unauthenticated.
    A signed-in user called "portico" has `authenticated_by` other than "none"."""
    principal = exchange.principal
    return exchange.request_id is None and principal.subject == _INTERNAL and principal.authenticated_by == "none"


def _without_connect_answer(params: JSON) -> JSON:
    """A modern client's retry answers our connect request: that answer is Portico's, not the upstream's."""
    responses = params.get("inputResponses")
    if not isinstance(responses, dict) or CONNECT_INPUT_KEY not in responses:
        return params
    rest = {k: v for k, v in responses.items() if k != CONNECT_INPUT_KEY}
    out = {k: v for k, v in params.items() if k != "inputResponses"}
    if rest:
        out["inputResponses"] = rest
    return out


class _Missing:
    async def get(self, scope: str, name: str) -> str:
        raise VaultError(f"No vault is open to resolve ${{vault:{name}}} of {scope}")


def _missing() -> _Missing:
    return _Missing()
