"""Assemble Portico from its settings: the components, the one stage chain, and the ASGI app. No logic here.

    ASGI:   /mcp  /servers/{id}/mcp  →  McpEndpoint  →  pipeline
            /healthz /readyz /metrics
    chain:  Audit → Metrics → Errors → Route → Policy → Public (anonymous callers) → Pins → Inspection (WAF)
            → DLP → Catalog (lists, handshake) → Upstream terminal

Identity and per-address rate limits act before the chain (the Gate, on the HTTP request); every enforcement
stage sits between Route and Catalog, here and only here.
"""

from __future__ import annotations

import gc
import logging
import re
import secrets
import signal
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from portico.audit.log import AuditLog
from portico.audit.stage import AuditStage
from portico.catalog.catalog import Catalog, Kind
from portico.catalog.pins import PinBook
from portico.catalog.stage import CatalogStage, PinStage, RouteStage
from portico.codemode.accounting import portal_tokens
from portico.codemode.engine import Engine
from portico.codemode.stage import CodeMode, CodeModeStage
from portico.config import Settings, resolve_secret
from portico.config import load as load_config
from portico.connect import ConnectApp, open_connect
from portico.dlp.stage import DlpStage
from portico.errors import ConfigError, PorticoError
from portico.identity.authserver.app import AuthServer
from portico.identity.authserver.model import ExternalLoginLink
from portico.identity.authserver.settings import AuthServerSettings
from portico.identity.context.resolver import ContextResolver
from portico.identity.devices import DeviceRegistry
from portico.identity.gate import Gate
from portico.identity.keys import KeyRing
from portico.identity.resource import PRM_PREFIX, ResourceServer, resource_urls
from portico.identity.sso.app import PATH_PREFIX as SSO_PREFIX
from portico.identity.sso.app import SsoLogin
from portico.identity.sso.settings import SsoProviderSettings
from portico.identity.tokens import TokenIssuer, TokenVerifier
from portico.identity.users import UserDirectory
from portico.inspection.public import PublicAccess, PublicPolicyStage
from portico.inspection.stage import InspectionStage, build_inspection_stage
from portico.keyfile import load_or_create
from portico.metrics import Metrics, MetricsStage
from portico.pipeline import ErrorStage, Pipeline
from portico.policy import CompiledPolicy, compile_policy
from portico.policy.settings import PolicySettings
from portico.policy.stage import PolicyStage
from portico.store.db import Store, open_store
from portico.transport.cors import Cors, is_public_oauth
from portico.transport.endpoint import McpEndpoint
from portico.transport.guard import HostGuard
from portico.transport.notify import ChangeHub
from portico.transport.session import MemorySessionStore, SessionRuntime
from portico.types import JSON, CallNext, Stage
from portico.upstream.bridge import Bridge
from portico.upstream.model import Health
from portico.upstream.pool import UpstreamPool
from portico.upstream.stage import UpstreamTerminal
from portico.vault import Vault
from portico.vault.refs import parse_vault_ref

log = logging.getLogger("portico")

_SERVER_PATH = re.compile(r"^/servers/([a-z0-9][a-z0-9-]{0,47})/mcp/?$")
_LIST_CHANGED: dict[Kind, str] = {
    "tools": "notifications/tools/list_changed",
    "prompts": "notifications/prompts/list_changed",
    "resources": "notifications/resources/list_changed",
    "resourceTemplates": "notifications/resources/list_changed",
}
STARTUP_CONNECT_WAIT_S = 20.0
JANITOR_INTERVAL_S = 60.0
KEY_WATCH_INTERVAL_S = 5.0
MIN_CLIENT_SECRET_CHARS = 16


@dataclass
class Portico:
    """A running (or ready to run) Portico: every component, reachable for tests and the CLI."""

    settings: Settings
    metrics: Metrics = field(default_factory=Metrics)
    store: Store | None = None
    audit: AuditLog | None = None
    vault: Vault | None = None
    config_path: Path | None = None  # where `settings` came from: SIGHUP re-reads its policy section

    def __post_init__(self) -> None:
        s = self.settings
        self.runtime = SessionRuntime()
        self.sessions = MemorySessionStore(s.sessions.idle_timeout_s, s.sessions.max_sessions)
        self.hub = ChangeHub(self.runtime, self.sessions)
        self.pool = UpstreamPool(s.servers, self._on_upstream_notification)
        self.catalog = Catalog(self.pool, s.catalog, [server.id for server in s.servers])
        self.catalog.on_change(self._on_catalog_change)
        self._refreshing: dict[str, anyio.Event] = {}
        self._tg: anyio.abc.TaskGroup | None = None
        self.guard = HostGuard(s.http, s.listen.host)
        self.cors = Cors(self.guard)
        self.policy: CompiledPolicy = compile_policy(s.policy)  # a run-time edit assigns a new compiled policy
        self.resource_server: ResourceServer | None = None  # set by `running()` when auth is oauth
        self.auth_server: AuthServer | None = None
        self.sso: SsoLogin | None = None
        self.connect: ConnectApp | None = None  # per-user upstream OAuth: /connect/<server>
        self.token_issuer: TokenIssuer | None = None
        self.keyring: KeyRing | None = None
        self.public = PublicAccess.from_settings(s, self.metrics)  # anonymous callers of public servers
        self.gate = Gate(None, public=self.public)
        self.context: ContextResolver | None = None  # set by `running()`
        self.devices: DeviceRegistry | None = None
        self.pins: PinBook | None = None  # set by `running()`: tool pins (rug-pull guard)
        self._dlp: DlpStage | None = None  # set by `build_pipeline()`; SIGHUP swaps in new rules
        self._inspection: InspectionStage | None = None
        self.codemode = CodeMode(s.codemode, _engine_factories(s), self.metrics)
        self._counting = self._recount = False  # Code Mode token gauges: one count at a time, the latest wins

    # ------------------------------------------------------------------------------------ the chain

    def build_pipeline(self) -> Pipeline:
        inspection = self._inspection = build_inspection_stage(self.settings, self.metrics)
        dlp = self._dlp = DlpStage.from_settings(self.settings, self.metrics)
        stages: list[Stage] = []
        if self.audit is not None:
            stages.append(AuditStage(self.audit))
        catalog_stage = CatalogStage(self.catalog, self.pool, self.settings.catalog.page_size, self.hub)
        stages += [
            MetricsStage(self.metrics),
            ErrorStage(),
            CodeModeStage(self.codemode, self.catalog, lambda: self.pipeline, catalog_stage.server_info),
            RouteStage(self.catalog),
            PolicyStage(lambda: self.policy, lambda: datetime.now(UTC)),
            PublicPolicyStage(lambda: self.settings.policy, lambda: datetime.now(UTC)),
            PinStage(),
            inspection,
            dlp,
            catalog_stage,
        ]
        terminal: CallNext = UpstreamTerminal(self.pool, Bridge(self.runtime.spawn))
        return Pipeline(stages, terminal)

    # -------------------------------------------------------------------------------------- running

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Portico]:
        """Open the store and audit log, connect upstreams, fill the catalog; undo all of it on exit."""
        async with AsyncExitStack() as stack:
            self.store = await open_store(self.settings.store)
            stack.push_async_callback(self.store.close)
            self.audit = AuditLog(self.store, self.settings.audit)
            await self.audit.start()
            stack.push_async_callback(self.audit.stop)
            self.vault = Vault(self.store, self.settings.vault)
            self.pool.bind_secrets(self.vault)
            self.pins = PinBook(self.store, self.audit)
            await self.pins.load()
            self.catalog.guard(self.pins, {server.id: server.pinning for server in self.settings.servers})
            self._open_context()
            if self.settings.auth == "oauth":
                await self._open_identity()
                if self.sso is not None:
                    stack.push_async_callback(self.sso.aclose)
            signed_in = self.auth_server.signed_in_subject if self.auth_server is not None else None
            self.connect = open_connect(self.settings, self.vault, self.pool, signed_in, audit=self.audit)
            if self.connect is not None:
                stack.push_async_callback(self.connect.aclose)
            self.pipeline = self.build_pipeline()
            stack.push_async_callback(self.codemode.aclose)
            self.endpoint = McpEndpoint(
                pipeline=self.pipeline,
                sessions=self.sessions,
                runtime=self.runtime,
                guard=self.guard,
                max_body_bytes=self.settings.http.max_body_bytes,
                schema_lookup=self._input_schema,
                standing_stream=self.hub.standing_stream,
                on_session_end=self._session_ended,
                authenticate=self.gate,
                body_limit=self.public.body_limit,
            )
            async with anyio.create_task_group() as tg:
                self._tg = tg
                self.runtime.bind(tg)
                await self.pool.start(tg, STARTUP_CONNECT_WAIT_S)
                with anyio.move_on_after(STARTUP_CONNECT_WAIT_S):
                    for upstream in self.pool:
                        if upstream.ready:
                            await self._refresh(upstream.id)
                tg.start_soon(self._refresh_timer)
                tg.start_soon(self._follow_pins, self.pins)
                tg.start_soon(self._start_codemode)
                tg.start_soon(self._janitor)
                if self.auth_server is not None:
                    tg.start_soon(self.auth_server.run)
                if self.keyring is not None:
                    tg.start_soon(self._follow_key_rotations, self.keyring)
                if self.config_path is not None and threading.current_thread() is threading.main_thread():
                    tg.start_soon(self._reload_on_sighup)
                gc.freeze()  # start-up objects live for the whole run: keep them out of every collection
                try:
                    yield self
                finally:
                    tg.cancel_scope.cancel()  # each supervisor disconnects its upstream (shielded) as it ends

    # -------------------------------------------------------------------------------- run-time policy

    def reload_policy(self, policy: PolicySettings) -> None:
        """Enforce `policy` from the next decision on; clients are told their lists may have changed."""
        self.policy = compile_policy(policy)
        self.settings = self.settings.model_copy(update={"policy": policy})
        for upstream in self.pool:
            self.hub.publish(upstream.id, "notifications/tools/list_changed", {})
            self.hub.publish(upstream.id, "notifications/prompts/list_changed", {})
            self.hub.publish(upstream.id, "notifications/resources/list_changed", {})

    def reload_policy_from_file(self) -> bool:
        """Re-read `policy:`, `dlp:` and `inspection:` from the config file. All three apply, or none: an invalid
        file, or a section that does not compile, changes nothing (the error is logged)."""
        if self.config_path is None:
            return False
        try:
            fresh = load_config(self.config_path)
            dlp = DlpStage.from_settings(fresh)
            inspection = build_inspection_stage(fresh, self.metrics)
        except ConfigError as exc:
            log.error("policy not reloaded, the previous policy stays in force: %s", exc.public)
            return False
        kept = {"policy": self.settings.policy, "dlp": self.settings.dlp, "inspection": self.settings.inspection}
        if fresh.model_copy(update={**kept, "listen": self.settings.listen}) != self.settings:
            log.warning(
                "only the policy, dlp and inspection sections are reloaded on SIGHUP; restart Portico to apply "
                "other changes"
            )
        if self._dlp is not None and self._inspection is not None:
            self._dlp.adopt(dlp)
            self._inspection.adopt(inspection)
        self.settings = self.settings.model_copy(update={"dlp": fresh.dlp, "inspection": fresh.inspection})
        self.reload_policy(fresh.policy)
        log.info(
            "policy, dlp and inspection reloaded from %s: %d policy rules, %d dlp rules",
            self.config_path,
            len(fresh.policy.rules),
            len(fresh.dlp.rules),
        )
        return True

    async def _reload_on_sighup(self) -> None:
        with anyio.open_signal_receiver(signal.SIGHUP) as signals:
            async for _ in signals:
                self.reload_policy_from_file()

    def _open_context(self) -> None:
        """Client IP, country and device facts for every request (the device registry only when configured)."""
        assert self.store is not None
        s = self.settings
        if s.devices.cert_sources:
            self.devices = DeviceRegistry(
                self.store,
                ttl_s=s.devices.cache_ttl_s,
                max_entries=s.devices.cache_entries,
                last_seen_interval_s=s.devices.last_seen_interval_s,
            )
        self.context = ContextResolver(s.network, s.devices, self.devices)
        self.gate = Gate(None, self.context, self.metrics, self.public)

    async def _open_identity(self) -> None:
        """The authorization server and the resource server; the signing keys are created on first use."""
        assert self.store is not None
        assert self.vault is not None
        s = self.settings
        tokens = s.token_settings
        keyring = KeyRing.open(tokens)
        self.keyring = keyring
        self.token_issuer = TokenIssuer(keyring, tokens)
        enabled = [server.id for server in s.servers if server.enabled]
        users = UserDirectory(self.store, self.vault, s.identity.users)
        providers = [await self._resolved_provider(provider) for provider in s.identity.sso]
        links = [ExternalLoginLink(p.id, p.display_name, f"{s.public_url}{SSO_PREFIX}{p.id}") for p in providers]
        self.auth_server = AuthServer(
            await self._resolved_server_settings(),
            tokens,
            self.token_issuer,
            keyring,
            self.store,
            users,
            resources=lambda: resource_urls(s.public_url, enabled),
            audit=self.audit,
            external_logins=links,
        )
        if providers:
            state_key = load_or_create(s.identity.sso_state_key_file, lambda: secrets.token_hex(32))
            self.sso = SsoLogin(
                providers,
                s.public_url,
                self.auth_server.complete_external_login,
                state_key=bytes.fromhex(state_key),
                audit=self.audit,
            )
        verifier = TokenVerifier(keyring, tokens, is_revoked=self.auth_server.is_revoked)
        self.resource_server = ResourceServer(s.public_url, tokens.issuer, verifier, lambda: enabled)
        self.gate = Gate(self.resource_server, self.context, self.metrics, self.public)

    async def _resolved_provider(self, provider: SsoProviderSettings) -> SsoProviderSettings:
        """An SSO provider with its client secret reference resolved (vault scope `sso:<id>`)."""
        assert self.vault is not None
        name = parse_vault_ref(provider.client_secret)
        secret = (
            await self.vault.get(f"sso:{provider.id}", name)
            if name is not None
            else resolve_secret(provider.client_secret)
        )
        return provider.model_copy(update={"client_secret": secret})

    async def _resolved_server_settings(self) -> AuthServerSettings:
        """`identity.server` with each configured client's secret reference resolved (vault scope
        `oauth-client:<client_id>`, or `${env:…}` / `${file:…}`)."""
        assert self.vault is not None
        server = self.settings.identity.server
        clients = []
        for client in server.clients:
            if client.secret is None:
                clients.append(client)
                continue
            name = parse_vault_ref(client.secret)
            secret = (
                await self.vault.get(f"oauth-client:{client.client_id}", name)
                if name is not None
                else resolve_secret(client.secret)
            )
            if len(secret) < MIN_CLIENT_SECRET_CHARS:
                raise ConfigError(
                    f"identity.server.clients ({client.client_id}): the secret must be at least "
                    f"{MIN_CLIENT_SECRET_CHARS} characters"
                )
            clients.append(client.model_copy(update={"secret": secret}))
        return server.model_copy(update={"clients": clients})

    async def _follow_key_rotations(self, keyring: KeyRing) -> None:
        """Re-read the signing key file when another process (`portico token rotate-keys`, a replica) changed it."""
        assert keyring.path is not None
        seen = _mtime(keyring.path)
        while True:
            await anyio.sleep(KEY_WATCH_INTERVAL_S)
            now = _mtime(keyring.path)
            if now != seen:
                try:
                    keyring.reload()
                    seen = now
                    log.info("identity: signing keys reloaded (current kid %s)", keyring.current.kid)
                except PorticoError as exc:
                    log.error("identity: the signing key file could not be reloaded, keeping the keys: %s", exc.public)

    async def _janitor(self) -> None:
        """End the per-process state of sessions that expired without a DELETE (most clients never send one)."""
        while True:
            await anyio.sleep(JANITOR_INTERVAL_S)
            for session_id in self.runtime.session_ids():
                if not await self.sessions.alive(session_id):
                    self.runtime.end(session_id)
                    await self._session_ended(session_id)

    async def _refresh_timer(self) -> None:
        while True:
            await anyio.sleep(self.settings.catalog.refresh_interval_s)
            for upstream in self.pool:
                self._schedule_refresh(upstream.id)

    async def _start_codemode(self) -> None:
        """Warm the Code Mode engine's sandboxes in the background (a first run would otherwise start them)."""
        try:
            await self.codemode.start()
        except PorticoError as exc:
            log.error("Code Mode engine did not start (runs will fail until it does): %s", exc.detail or exc.public)

    async def _follow_pins(self, pins: PinBook) -> None:
        """Pick up tool approvals made by `portico tools approve` or another replica."""
        while True:
            await anyio.sleep(self.settings.catalog.pin_sync_interval_s)
            try:
                changed = await pins.sync()
            except PorticoError as exc:  # the store is away: holds stay as they were (fail closed)
                log.warning("tool pins not re-read: %s", exc.detail or exc.public)
                continue
            await self.catalog.reapply_pins(changed)

    def _schedule_refresh(self, server_id: str) -> None:
        if self._tg is not None and server_id not in self._refreshing:
            self._refreshing[server_id] = anyio.Event()
            self._tg.start_soon(self._refresh, server_id)

    async def _refresh(self, server_id: str) -> None:
        try:
            upstream = self.pool.get(server_id)
            await self.catalog.refresh(upstream)
            self.metrics.catalog_tools.labels(server_id).set(len(self.catalog.entries("tools", server_id)))
        except Exception:  # a failed refresh keeps the last good lists; the next trigger retries
            log.exception("catalog refresh of %s failed", server_id)
        finally:
            done = self._refreshing.pop(server_id, None)
            if done is not None:
                done.set()

    async def _on_upstream_notification(self, server_id: str, method: str, params: JSON) -> None:
        if method.endswith("/list_changed") or method == "notifications/portico/connected":
            self._schedule_refresh(server_id)
        elif method == "notifications/resources/updated" and isinstance(params.get("uri"), str):
            entry = self.catalog.resolve("resources", server_id, params["uri"])
            self.hub.publish(server_id, method, params, entry.public if entry else params["uri"])

    async def _on_catalog_change(self, server_id: str, kinds: frozenset[Kind]) -> None:
        for method in sorted({_LIST_CHANGED[k] for k in kinds}):
            self.hub.publish(server_id, method, {})
        if "tools" in kinds and self.settings.codemode.mode != "off" and self._tg is not None:
            self._tg.start_soon(self._count_tokens)

    async def _count_tokens(self) -> None:
        """Refresh the native vs Code Mode token gauges (off the event loop: the first count loads the encoding)."""
        if self._counting:
            self._recount = True
            return
        self._counting = True
        try:
            while True:
                self._recount = False
                servers = [server.id for server in self.settings.servers if server.enabled]
                rows = await anyio.to_thread.run_sync(portal_tokens, self.catalog, servers, self.settings.codemode)
                if not self._recount:
                    break
        except Exception:  # an observer: a failed count leaves the gauges as they were
            log.exception("Code Mode token count failed")
            return
        finally:
            self._counting = False
        for row in rows:
            self.metrics.codemode_tokens.labels(row.portal, "native").set(row.native)
            self.metrics.codemode_tokens.labels(row.portal, "codemode").set(
                row.python if self.settings.codemode.engine == "python" else row.javascript
            )

    async def _session_ended(self, session_id: str) -> None:
        for server_id, uri in self.hub.forget_session(session_id):
            try:
                await self.pool.get(server_id).watch_resource(uri, False)
            except PorticoError as exc:
                log.info("unsubscribing %s from %s after its session ended failed: %s", uri, server_id, exc.public)

    def _input_schema(self, scope: str | None, name: str) -> Any:
        entry = self.catalog.resolve("tools", scope, name)
        return entry.definition.get("inputSchema") if entry is not None else None

    # ------------------------------------------------------------------------------------------ ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        server: str | None = None
        match = _SERVER_PATH.match(path) if path not in ("/mcp", "/mcp/") else None
        if path in ("/mcp", "/mcp/") or (match is not None and (server := match.group(1)) in self.pool):
            if scope["method"] == "OPTIONS":
                await self.cors.preflight(scope, send, mcp=True)
            else:
                await self.endpoint(scope, receive, self.cors.mcp_send(scope, send), server)
            return
        if is_public_oauth(path) and (path.startswith(PRM_PREFIX) or self.auth_server is not None):
            if scope["method"] == "OPTIONS":
                await self.cors.preflight(scope, send, mcp=False)
                return
            send = self.cors.public_send(scope, send)
        if path.startswith(PRM_PREFIX):
            await self._protected_resource_metadata(scope, send, path)
        elif self.auth_server is not None and self.auth_server.handles(path):
            await self._browser_facing(self.auth_server, scope, receive, send)
        elif self.sso is not None and self.sso.handles(path):
            await self._browser_facing(self.sso, scope, receive, send)
        elif self.connect is not None and self.connect.handles(path):
            await self._browser_facing(self.connect, scope, receive, send)
        elif path == "/healthz":
            await _json(send, 200, {"status": "ok"})
        elif path == "/readyz":
            await self._readyz(send)
        elif path == "/metrics":
            for upstream in self.pool:
                self.metrics.upstream_up.labels(upstream.id).set(1 if upstream.ready else 0)
            await _send(send, 200, self.metrics.render(), b"text/plain; version=0.0.4; charset=utf-8")
        else:
            await _json(send, 404, {"error": "not found"})

    async def _browser_facing(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        """Sign-in pages and OAuth endpoints: the same Host check as the MCP endpoint (DNS rebinding), and the
        client's address as the connection context resolves it (X-Forwarded-For only from trusted proxies)."""
        if not self.guard.host_ok(_header(scope, b"host")):
            await _send(send, 421, b"Invalid Host header", b"text/plain")
            return
        if self.context is not None:  # the client's address behind trusted proxies, for throttles and the audit
            facts = await self.context.resolve(scope)
            if facts.ip is not None:
                scope = {**scope, "client": (facts.ip, 0)}
        await app(scope, receive, send)

    async def _protected_resource_metadata(self, scope: Scope, send: Send, path: str) -> None:
        """RFC 9728 metadata, readable from any origin (browser-based clients discover it cross-origin)."""
        document = self.resource_server.metadata_for_path(path) if self.resource_server is not None else None
        if scope["method"] not in ("GET", "HEAD"):
            await _send(send, 405, b"", b"text/plain", [(b"allow", b"GET")])
        elif document is None:
            await _json(send, 404, {"error": "not found"})
        else:
            cache = [(b"cache-control", b"public, max-age=3600")]
            await _send(send, 200, orjson.dumps(document), b"application/json", cache)

    async def _readyz(self, send: Send) -> None:
        upstreams = {u.id: u.health.to_json() for u in self.pool}
        enabled = [u for u in self.pool if u.health.state is not Health.DISABLED]
        ready = all(u.ready for u in enabled)
        body = {
            "status": "ready" if ready else "degraded",
            "upstreams": upstreams,
            "pipeline": self.pipeline.stage_names,
        }
        # Degraded still serves every healthy server's tools: 200, so one dead upstream doesn't pull the portal
        # out of a load balancer. Only "nothing at all is reachable" is 503.
        status = 200 if ready or any(u.ready for u in enabled) or not enabled else 503
        await _json(send, status, body)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        await receive()  # lifespan.startup
        started = False
        try:
            async with self.running():
                started = True
                await send({"type": "lifespan.startup.complete"})
                await receive()  # lifespan.shutdown
        except Exception as exc:
            log.exception("Portico failed")
            if not started:
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
        await send({"type": "lifespan.shutdown.complete"})


async def _json(send: Send, status: int, body: JSON) -> None:
    await _send(send, status, orjson.dumps(body), b"application/json")


async def _send(
    send: Send, status: int, body: bytes, content_type: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    head = [(b"content-type", content_type), *(headers or [])]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime_ns / 1e9
    except OSError:
        return None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def build_app(settings: Settings) -> Portico:
    return Portico(settings)


def _engine_factories(settings: Settings) -> dict[str, Callable[[], Engine]]:
    """Code Mode engines, built on first use (importing neither V8 nor Monty before)."""
    workers = settings.codemode.workers

    def javascript() -> Engine:
        from portico.codemode.js import JsEngine

        return JsEngine(warm_workers=min(2, workers), max_workers=workers)

    def python() -> Engine:
        from portico.codemode.python import PythonEngine

        return PythonEngine(min_workers=1, max_workers=workers)

    return {"javascript": javascript, "python": python}
