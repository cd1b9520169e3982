"""The connector base: supervision, health, and the one interface the pipeline uses.

A connector's life is a loop run by `supervise()`: connect (bounded by `connect_timeout_s`), serve until the
connection breaks, back off, repeat, until Portico shuts down. While it is not ready, `request` fails at once
with `UpstreamUnavailableError` so callers of a dead server are not held up, and other servers are unaffected.
"""

from __future__ import annotations

import abc
import collections
import logging
import random
from collections.abc import Awaitable, Callable, Mapping

import anyio

from portico.config import ServerSettings, resolve_secret
from portico.errors import UpstreamError, UpstreamTimeoutError, UpstreamUnavailableError
from portico.types import JSON, Era, Exchange
from portico.upstream.model import Health, HealthReport, UpstreamInfo
from portico.vault.model import VaultError
from portico.vault.refs import SecretReader, resolve_server_secrets

log = logging.getLogger("portico.upstream")
_jitter = random.Random()  # own generator: reconnect jitter must not disturb (or be disturbed by) global random

# (server_id, method, params) of a notification the upstream sent outside any call: list_changed and
# resources/updated feed the catalog and subscriptions.
NotificationListener = Callable[[str, str, JSON], Awaitable[None]]


class Upstream(abc.ABC):
    """One upstream server. Subclasses implement `_connect` and `_send`."""

    def __init__(self, settings: ServerSettings, on_notification: NotificationListener | None = None) -> None:
        self.settings = settings
        self.id = settings.id
        self.health = HealthReport(Health.STARTING if settings.enabled else Health.DISABLED)
        self.info: UpstreamInfo | None = None
        self._on_notification = on_notification
        self._broken = anyio.Event()
        self._watched: collections.Counter[str] = collections.Counter()  # resource URIs clients subscribed to
        self.first_attempt = anyio.Event()  # set once the first connect attempt has ended, either way
        self.connected = anyio.Event()
        self.secrets: SecretReader | None = None  # the vault, bound by UpstreamPool.bind_secrets at start-up

    # ------------------------------------------------------------------------------------------- public

    @property
    def ready(self) -> bool:
        return self.health.state is Health.READY

    async def request(self, exchange: Exchange, method: str, params: JSON) -> JSON:
        """Send one request upstream for `exchange`; return the JSON-RPC response (`result` or `error`).

        Messages the upstream sends meanwhile (progress, logs, sampling/elicitation requests) go to
        `exchange.sink`.

        Raises:
            UpstreamUnavailableError: not connected, or the connection broke during the call.
            UpstreamTimeoutError: no answer within `timeout_s` (the upstream is told to cancel).
        """
        if not self.ready:
            raise UpstreamUnavailableError(f"Upstream server {self.id!r} is unavailable", detail=self.health.last_error)
        try:
            with anyio.fail_after(self.settings.timeout_s):
                return await self._send(exchange, method, params)
        except TimeoutError as exc:
            raise UpstreamTimeoutError(
                f"Upstream server {self.id!r} did not answer within {self.settings.timeout_s:g} s"
            ) from exc

    def mark_broken(self, reason: str) -> None:
        """Called by a subclass when the connection is lost; the supervisor reconnects."""
        if self.health.state is Health.READY:
            log.warning("upstream %s: connection lost: %s", self.id, reason)
        self.health.last_error = reason
        if self.health.state is not Health.DISABLED:
            self.health.state = Health.DOWN
        self._broken.set()

    async def supervise(self) -> None:
        """Run until cancelled: connect, serve, reconnect with exponential backoff and jitter."""
        if not self.settings.enabled:
            self.first_attempt.set()
            return
        backoff = self.settings.restart.initial_backoff_s
        while True:
            self._broken = anyio.Event()
            try:
                async with anyio.create_task_group() as tg:
                    with anyio.fail_after(self.settings.connect_timeout_s):
                        self.info = await self._connect(tg)
                    self.health.state = Health.READY
                    self.health.last_error = None
                    self.health.connects += 1
                    self.connected.set()
                    self.first_attempt.set()
                    backoff = self.settings.restart.initial_backoff_s
                    log.info("upstream %s: ready (%s)", self.id, self.info.protocol_version)
                    await self._on_ready()
                    await self._broken.wait()
                    tg.cancel_scope.cancel()
            except Exception as exc:  # the supervisor is this upstream's boundary: nothing may escape to Portico
                self.mark_broken(self._describe(exc))
            finally:
                self.connected = anyio.Event()
                with anyio.CancelScope(shield=True):
                    await self._disconnect()
            self.first_attempt.set()
            self.health.state = Health.DOWN
            self.health.restarts += 1
            await anyio.sleep(backoff * (0.8 + 0.4 * _jitter.random()))
            backoff = min(backoff * 2, self.settings.restart.max_backoff_s)

    def _describe(self, exc: BaseException) -> str:
        while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
            exc = exc.exceptions[0]
        if isinstance(exc, TimeoutError):
            return f"connect timed out after {self.settings.connect_timeout_s:g} s"
        if isinstance(exc, UpstreamError):
            return exc.detail or exc.public
        if not isinstance(exc, OSError):
            log.warning("upstream %s: unexpected failure", self.id, exc_info=exc)
        return f"{type(exc).__name__}: {exc}"

    # ------------------------------------------------------------------------------- for subclasses

    async def resolve_values(self, mapping: Mapping[str, str]) -> dict[str, str]:
        """Headers or environment with `${vault:…}`, `${env:…}` and `${file:…}` resolved (call at connect time).

        Raises:
            UpstreamUnavailableError: a vault secret is missing or unreadable (public names scope and name).
            ConfigError: an `${env:…}` / `${file:…}` reference cannot be resolved.
        """
        try:
            return await resolve_server_secrets(self.secrets or _NO_VAULT, self.id, mapping, other=resolve_secret)
        except VaultError as exc:
            raise UpstreamUnavailableError(
                f"Upstream server {self.id!r}: credential unavailable", detail=exc.public
            ) from exc

    @abc.abstractmethod
    async def _connect(self, tg: anyio.abc.TaskGroup) -> UpstreamInfo:
        """Connect and handshake; background readers go into `tg` (cancelled when the connection ends)."""

    @abc.abstractmethod
    async def _send(self, exchange: Exchange, method: str, params: JSON) -> JSON:
        """Send one request and wait for its response."""

    async def _disconnect(self) -> None:  # noqa: B027 (optional hook)
        """Release what `_connect` acquired. Must not raise."""

    async def _on_ready(self) -> None:
        for uri in list(self._watched):  # a new connection (or session) starts with no subscriptions upstream
            await self._set_subscription(uri, True)
        await self.notify_listener("notifications/portico/connected", {})

    async def watch_resource(self, uri: str, on: bool) -> None:
        """Reference-counted resource subscription: the upstream is asked once, however many clients watch.

        Raises:
            UpstreamError: the upstream refused the (un)subscription.
        """
        if on:
            self._watched[uri] += 1
            if self._watched[uri] == 1 and self.ready:
                await self._set_subscription(uri, True)
        elif self._watched.get(uri, 0) > 0:
            self._watched[uri] -= 1
            if self._watched[uri] == 0:
                del self._watched[uri]
                if self.ready:
                    await self._set_subscription(uri, False)

    async def _set_subscription(self, uri: str, on: bool) -> None:
        """Tell the upstream (default: the handshake-era `resources/(un)subscribe` on the shared session)."""
        method = "resources/subscribe" if on else "resources/unsubscribe"
        response = await self.request(Exchange.internal(method, Era.LEGACY), method, {"uri": uri})
        if "error" in response:
            raise UpstreamError(f"Upstream server {self.id!r} refused the subscription", detail=str(response["error"]))

    async def notify_listener(self, method: str, params: JSON) -> None:
        if self._on_notification is not None:
            await self._on_notification(self.id, method, params)


class _NoVault:
    async def get(self, scope: str, name: str) -> str:
        raise VaultError(f"No vault is open to resolve ${{vault:{name}}} of {scope}")


_NO_VAULT = _NoVault()
