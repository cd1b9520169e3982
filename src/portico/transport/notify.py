"""Change notifications to connected clients: catalog `list_changed` and resource updates.

Legacy-era clients get them on their session's standing GET stream; modern clients on `subscriptions/listen`
streams (acknowledged first, each frame tagged with the subscription id, only the kinds they asked for).
A server's changes reach the portal's clients and that server's own per-server clients, nobody else.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from portico.transport.session import SessionRuntime, SessionStore
from portico.transport.sink import HttpSink, sse_frame
from portico.types import JSON, Exchange, Reply

log = logging.getLogger("portico.transport")

SUBSCRIPTION_ID = "io.modelcontextprotocol/subscriptionId"
_FILTER_KEY = {
    "notifications/tools/list_changed": "toolsListChanged",
    "notifications/prompts/list_changed": "promptsListChanged",
    "notifications/resources/list_changed": "resourcesListChanged",
}
MAX_BUFFERED = 256


@dataclass(slots=True, eq=False)
class _Listener:
    scope: str | None
    honored: JSON
    uris: frozenset[str]
    stream: MemoryObjectSendStream[JSON]


@dataclass(slots=True)
class ChangeHub:
    runtime: SessionRuntime
    sessions: SessionStore
    _listeners: set[_Listener] = field(default_factory=set)
    _session_scopes: dict[str, str | None] = field(default_factory=dict)
    _session_uris: dict[str, dict[str, tuple[str, str]]] = field(default_factory=dict)

    def publish(self, server_id: str, method: str, params: JSON, public_uri: str | None = None) -> None:
        """Fan a change of `server_id` out to every interested client (never blocks)."""
        for listener in list(self._listeners):
            if listener.scope not in (None, server_id) or not _wanted(listener, method, params, public_uri):
                continue
            try:
                listener.stream.send_nowait({"method": method, "params": params, "public_uri": public_uri})
            except (anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
                listener.stream.close()  # a client that stopped reading re-listens and refetches
                self._listeners.discard(listener)
        scopes = self._session_scopes
        uris = self._session_uris

        def accept(session_id: str) -> bool:
            if session_id not in scopes or scopes[session_id] not in (None, server_id):
                return False
            if method == "notifications/resources/updated":
                uri = public_uri if scopes[session_id] is None else params.get("uri")
                return uri in uris.get(session_id, ())
            return True

        out_params = params if public_uri is None else {**params, "uri": public_uri}
        frame = sse_frame({"jsonrpc": "2.0", "method": method, "params": out_params})
        self.runtime.broadcast(frame, accept)

    def subscribe_session(self, session_id: str, uri: str, target: tuple[str, str], on: bool) -> None:
        """Record a legacy session's resource subscription (`uri` as the client named it, `target` upstream)."""
        uris = self._session_uris.setdefault(session_id, {})
        if on:
            uris[uri] = target
        else:
            uris.pop(uri, None)

    def is_subscribed(self, session_id: str, uri: str) -> bool:
        return uri in self._session_uris.get(session_id, {})

    def forget_session(self, session_id: str) -> list[tuple[str, str]]:
        """Drop an ended session's subscriptions; returns the upstream (server, uri) pairs it held."""
        return list(self._session_uris.pop(session_id, {}).values())

    async def standing_stream(self, session_id: str, scope: str | None, sink: HttpSink) -> None:
        """Serve a legacy GET stream until the client goes away."""
        stream = self.runtime.open_stream(session_id)
        if stream is None:
            await sink.finish(
                409,
                b'{"jsonrpc":"2.0","id":null,"error":{"code":-32600,'
                b'"message":"Conflict: a stream is already open for this session"}}',
            )
            return
        self._session_scopes[session_id] = scope
        try:
            await sink.write(b": stream open\n\n")
            async with stream:
                async for frame in stream:
                    await sink.write(frame)
        finally:
            self._session_scopes.pop(session_id, None)

    async def listen(self, exchange: Exchange, permitted: list[str] | None = None) -> Reply:
        """Serve a modern `subscriptions/listen` until the client closes the stream.

        `permitted`, when given, is the part of the requested `resourceSubscriptions` the caller may read: only
        those are acknowledged and delivered.
        """
        requested = exchange.params.get("notifications")
        requested = requested if isinstance(requested, dict) else {}
        honored: JSON = {k: True for k in _FILTER_KEY.values() if requested.get(k) is True}
        uris = requested.get("resourceSubscriptions") if permitted is None else permitted
        if isinstance(uris, list) and all(isinstance(u, str) for u in uris) and uris:
            honored["resourceSubscriptions"] = list(uris)
        meta = {SUBSCRIPTION_ID: exchange.request_id}
        send, receive = anyio.create_memory_object_stream[JSON](MAX_BUFFERED)
        listener = _Listener(exchange.scope, honored, frozenset(honored.get("resourceSubscriptions", [])), send)
        self._listeners.add(listener)
        try:
            await exchange.sink.notify(
                {
                    "jsonrpc": "2.0",
                    "method": "notifications/subscriptions/acknowledged",
                    "params": {"notifications": honored, "_meta": meta},
                }
            )
            async with receive:
                async for event in receive:
                    params: JSON = {"_meta": meta}
                    if event["method"] == "notifications/resources/updated":
                        params["uri"] = event["public_uri"] or event["params"].get("uri")
                    await exchange.sink.notify({"jsonrpc": "2.0", "method": event["method"], "params": params})
        finally:
            self._listeners.discard(listener)
            send.close()
        return Reply.ok({"_meta": meta})


def _wanted(listener: _Listener, method: str, params: JSON, public_uri: str | None) -> bool:
    key = _FILTER_KEY.get(method)
    if key is not None:
        return bool(listener.honored.get(key))
    if method == "notifications/resources/updated":
        uri = public_uri if listener.scope is None else params.get("uri")
        return uri in listener.uris
    return False
