"""Three stages backed by the catalog.

`RouteStage` (early in the chain) resolves what an exchange addresses: the server and the upstream's own name
for a tool, prompt or resource, so later stages (policy, DLP) can judge it. `CatalogStage` (just before the
upstream terminal) answers what Portico knows itself: the handshake, discovery, ping and every list, filtered
by the `visible` predicates that enforcement stages put in `exchange.notes` — so a tool a caller may not call
is a tool it cannot see. `PinStage` (after policy) hides and refuses tools held by pinning
(`portico.catalog.pins`): after policy, so a caller who may not use a tool learns nothing of its review state.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

import anyio
import orjson
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, LATEST_HANDSHAKE_VERSION, MODERN_PROTOCOL_VERSIONS

from portico.catalog.catalog import Catalog, Entry, Kind
from portico.catalog.pins import quarantined
from portico.errors import RESOURCE_NOT_FOUND_LEGACY, InvalidParamsError, NotFoundError
from portico.transport.notify import ChangeHub
from portico.types import JSON, CallNext, Decision, Era, Exchange, Reply
from portico.upstream.envelope import LOG_LEVELS
from portico.upstream.model import META_SERVER_INFO, PORTAL_INFO
from portico.upstream.pool import UpstreamPool

Visible = Callable[[Entry], bool]

_LISTS: dict[str, Kind] = {
    "tools/list": "tools",
    "prompts/list": "prompts",
    "resources/list": "resources",
    "resources/templates/list": "resourceTemplates",
}


def add_visibility(exchange: Exchange, predicate: Visible) -> None:
    """For enforcement stages: hide catalog entries from this exchange's listings."""
    exchange.notes.setdefault("visible", []).append(predicate)


class RouteStage:
    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    async def __call__(self, exchange: Exchange, call_next: CallNext) -> Reply:
        method = exchange.method
        params = exchange.params
        if method in ("tools/call", "prompts/get"):
            kind: Kind = "tools" if method == "tools/call" else "prompts"
            name = params.get("name")
            if not isinstance(name, str):
                raise InvalidParamsError("Invalid params: `name` must be a string")
            entry = self._catalog.resolve(kind, exchange.scope, name)
            if entry is None:
                raise NotFoundError(f"Unknown {'tool' if kind == 'tools' else 'prompt'}: {_clip(name)}")
            exchange.server_id, exchange.target = entry.server_id, entry.name
            exchange.notes["entry"] = entry
            if kind == "tools":
                exchange.notes["input_schema"] = entry.definition.get("inputSchema")
        elif method in ("resources/read", "resources/subscribe", "resources/unsubscribe"):
            uri = params.get("uri")
            if not isinstance(uri, str):
                raise InvalidParamsError("Invalid params: `uri` must be a string")
            found = self._catalog.resolve_resource(exchange.scope, uri)
            if found is None:
                error = NotFoundError("Resource not found", data={"uri": _clip(uri)})
                if exchange.era is Era.LEGACY:
                    error.code = RESOURCE_NOT_FOUND_LEGACY
                raise error
            exchange.server_id, exchange.target = found
        elif method == "completion/complete":
            self._route_completion(exchange)
        else:
            exchange.server_id = exchange.scope
        return await call_next(exchange)

    def _route_completion(self, exchange: Exchange) -> None:
        ref = exchange.params.get("ref")
        if not isinstance(ref, dict):
            raise InvalidParamsError("Invalid params: `ref` must be an object")
        if ref.get("type") == "ref/prompt" and isinstance(ref.get("name"), str):
            entry = self._catalog.resolve("prompts", exchange.scope, ref["name"])
            if entry is None:
                raise NotFoundError("Unknown prompt")
            exchange.server_id = entry.server_id
            exchange.params = {**exchange.params, "ref": {**ref, "name": entry.name}}
        elif ref.get("type") == "ref/resource" and isinstance(ref.get("uri"), str):
            found = self._catalog.resolve_resource(exchange.scope, ref["uri"])
            if found is None:
                raise NotFoundError("Resource not found")
            exchange.server_id = found[0]
            exchange.params = {**exchange.params, "ref": {**ref, "uri": found[1]}}
        else:
            raise InvalidParamsError("Invalid params: unknown completion reference")


def _served(entry: Entry) -> bool:
    return entry.held is None


class PinStage:
    """Hide held tools from listings and refuse calls to them (`QuarantinedError`, a denial)."""

    async def __call__(self, exchange: Exchange, call_next: CallNext) -> Reply:
        """Raises:
        QuarantinedError: the tool is new and unapproved, or changed since it was approved.
        """
        method = exchange.method
        if method == "tools/call":
            entry = exchange.notes.get("entry")
            if isinstance(entry, Entry) and entry.held is not None:
                error = quarantined(entry.public if exchange.scope is None else entry.name, entry.held)
                exchange.notes["decision"] = Decision(False, "pinning", error.public)
                exchange.notes.setdefault("audit_extra", {})["held"] = entry.held.value
                raise error
        elif method == "tools/list":
            add_visibility(exchange, _served)
        return await call_next(exchange)


class CatalogStage:
    def __init__(self, catalog: Catalog, pool: UpstreamPool, page_size: int, hub: ChangeHub) -> None:
        self._catalog = catalog
        self._pool = pool
        self._page_size = page_size
        self._hub = hub

    async def __call__(self, exchange: Exchange, call_next: CallNext) -> Reply:
        method = exchange.method
        kind = _LISTS.get(method)
        if kind is not None:
            return Reply.ok(self._list(exchange, kind))
        if method == "initialize":
            return Reply.ok(self._initialize(exchange))
        if method == "server/discover":
            return Reply.ok(self._discover(exchange))
        if method == "logging/setLevel":
            level = exchange.params.get("level")
            if level not in LOG_LEVELS:
                raise InvalidParamsError("Invalid params: unknown logging level")
            if exchange.session_id is not None:
                await self._hub.sessions.set_log_level(exchange.session_id, level)
            return Reply.ok({})
        if method == "ping":
            return Reply.ok({})
        if method == "subscriptions/listen":
            return await self._listen(exchange)
        if method in ("resources/subscribe", "resources/unsubscribe") and exchange.session_id is not None:
            return await self._subscription(exchange)
        return await call_next(exchange)

    async def _subscription(self, exchange: Exchange) -> Reply:
        """A legacy session's resources/(un)subscribe: Portico holds one upstream subscription per resource
        (reference-counted in the connector) and routes `notifications/resources/updated` per session."""
        assert exchange.session_id is not None
        assert exchange.server_id is not None
        uri = str(exchange.params.get("uri"))
        target = (exchange.server_id, exchange.target or uri)
        on = exchange.method == "resources/subscribe"
        if on != self._hub.is_subscribed(exchange.session_id, uri):
            await self._pool.get(target[0]).watch_resource(target[1], on)
            self._hub.subscribe_session(exchange.session_id, uri, target, on)
        return Reply.ok({})

    async def _listen(self, exchange: Exchange) -> Reply:
        """A modern `subscriptions/listen`: watch the requested resources upstream for as long as it lasts."""
        notifications = exchange.params.get("notifications")
        uris = notifications.get("resourceSubscriptions") if isinstance(notifications, dict) else None
        may_read = exchange.notes.get("may_read")  # set by the policy stage: only readable resources are watched
        watched: list[tuple[str, str]] = []
        permitted: list[str] = []
        try:
            for uri in uris if isinstance(uris, list) else []:
                found = self._catalog.resolve_resource(exchange.scope, uri) if isinstance(uri, str) else None
                if found is not None and (may_read is None or may_read(*found)):
                    await self._pool.get(found[0]).watch_resource(found[1], True)
                    watched.append(found)
                    permitted.append(uri)
            return await self._hub.listen(exchange, permitted if may_read is not None else None)
        finally:
            with anyio.CancelScope(shield=True):
                for server_id, uri in watched:
                    await self._pool.get(server_id).watch_resource(uri, False)

    def server_info(self, scope: str | None) -> JSON:
        """The serverInfo an endpoint presents (what `server_identity` returns first, without its scans)."""
        if scope is None:
            return PORTAL_INFO
        info = self._pool.get(scope).info
        if info is not None:
            return info.server_info or PORTAL_INFO
        return {**PORTAL_INFO, "name": f"portico/{scope}"}

    def server_identity(self, scope: str | None) -> tuple[JSON, JSON, str | None]:
        """(serverInfo, capabilities, instructions) that an endpoint presents."""
        if scope is not None:
            upstream = self._pool.get(scope)
            if upstream.info is not None:
                capabilities = dict(upstream.info.capabilities)
                for key in ("tools", "prompts", "resources"):
                    if isinstance(capabilities.get(key), dict):
                        capabilities[key] = {**capabilities[key], "listChanged": True}
                return self.server_info(scope), capabilities, upstream.info.instructions
            return self.server_info(scope), _portal_capabilities(False), None
        subscribe = any(
            isinstance(u.info.capabilities.get("resources"), dict)
            and bool(u.info.capabilities["resources"].get("subscribe"))
            for u in self._pool
            if u.info is not None
        )
        instructions = "Portico portal: tools and prompts are named <server>__<name>; call them by that name."
        return PORTAL_INFO, _portal_capabilities(subscribe), instructions

    def _initialize(self, exchange: Exchange) -> JSON:
        requested = exchange.params.get("protocolVersion")
        version = requested if requested in HANDSHAKE_PROTOCOL_VERSIONS else LATEST_HANDSHAKE_VERSION
        info, capabilities, instructions = self.server_identity(exchange.scope)
        result: JSON = {"protocolVersion": version, "capabilities": capabilities, "serverInfo": info}
        if instructions:
            result["instructions"] = instructions
        return result

    def _discover(self, exchange: Exchange) -> JSON:
        info, capabilities, instructions = self.server_identity(exchange.scope)
        capabilities = {k: v for k, v in capabilities.items() if k != "logging"}
        result: JSON = {
            "supportedVersions": list(MODERN_PROTOCOL_VERSIONS),
            "capabilities": capabilities,
            "ttlMs": 0,
            "resultType": "complete",
            "cacheScope": "private",
            "_meta": {META_SERVER_INFO: info},
        }
        if instructions:
            result["instructions"] = instructions
        return result

    def _list(self, exchange: Exchange, kind: Kind) -> JSON:
        entries = self._catalog.entries(kind, exchange.scope)
        predicates: list[Visible] = exchange.notes.get("visible", [])
        if predicates:
            entries = [e for e in entries if all(p(e) for p in predicates)]
        offset = _decode_cursor(exchange.params.get("cursor"))
        page = entries[offset : offset + self._page_size]
        public = exchange.scope is None
        result: JSON = {kind: [e.portal_definition if public else e.definition for e in page]}
        if offset + self._page_size < len(entries):
            result["nextCursor"] = _encode_cursor(offset + self._page_size)
        if exchange.era is Era.MODERN:
            result["ttlMs"] = 0
            result["resultType"] = "complete"
            result["cacheScope"] = "private"
            result["_meta"] = {META_SERVER_INFO: self.server_info(exchange.scope)}
        return result


def _portal_capabilities(subscribe: bool) -> JSON:
    return {
        "tools": {"listChanged": True},
        "prompts": {"listChanged": True},
        "resources": {"listChanged": True, "subscribe": subscribe},
        "completions": {},
        "logging": {},
    }


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"o": offset})).decode().rstrip("=")


def _decode_cursor(cursor: object) -> int:
    if cursor is None:
        return 0
    offset: object = None
    if isinstance(cursor, str) and len(cursor) < 256:
        try:
            data = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        except (ValueError, orjson.JSONDecodeError):
            data = None
        offset = data.get("o") if isinstance(data, dict) else None
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise InvalidParamsError("Invalid params: unknown or malformed cursor")
    return offset


def _clip(text: str) -> str:
    """Client input echoed in an error is cut short and stripped of control characters."""
    clean = "".join(ch if ch.isprintable() else "?" for ch in text[:64])
    return clean + ("…" if len(text) > 64 else "")
