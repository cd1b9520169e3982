"""The terminal stage: forward an exchange to its upstream server."""

from __future__ import annotations

from mcp_types.methods import CACHEABLE_METHODS, INPUT_REQUIRED_METHODS

from portico.errors import NotFoundError, UpstreamError
from portico.types import JSON, Era, Exchange, Outcome, Reply, RpcError
from portico.upstream.base import Upstream
from portico.upstream.bridge import Bridge
from portico.upstream.model import META_SERVER_INFO, PORTAL_INFO
from portico.upstream.pool import UpstreamPool

# The param that names the target, per forwarded method; the route stage has put the upstream's own name in
# `exchange.target`, which replaces the portal's (namespaced) name here.
_TARGET_PARAM = {
    "tools/call": "name",
    "prompts/get": "name",
    "resources/read": "uri",
    "resources/subscribe": "uri",
    "resources/unsubscribe": "uri",
}


MAX_INPUT_ROUNDS = 8


def _modern_result(exchange: Exchange, result: JSON) -> JSON:
    """What a 2026-07-28 client is owed whatever the upstream's era: cache hints on cacheable results, and on
    the portal, the portal's own identity (an upstream's would leak which server answered, and contradict
    `server/discover`)."""
    if "resultType" not in result:
        result = {**result, "resultType": "complete"}
    if exchange.method in CACHEABLE_METHODS and "ttlMs" not in result:
        result = {**result, "ttlMs": 0, "cacheScope": "private"}
    meta = result.get("_meta")
    if exchange.scope is None:
        result = {**result, "_meta": {**(meta if isinstance(meta, dict) else {}), META_SERVER_INFO: PORTAL_INFO}}
    return result


def _input_required(response: JSON) -> bool:
    result = response.get("result")
    return isinstance(result, dict) and result.get("resultType") == "input_required"


class UpstreamTerminal:
    def __init__(self, pool: UpstreamPool, bridge: Bridge) -> None:
        self._pool = pool
        self._bridge = bridge

    async def __call__(self, exchange: Exchange) -> Reply:
        if exchange.server_id is None:
            raise NotFoundError("Nothing to route this request to")
        upstream = self._pool.get(exchange.server_id)
        params = exchange.params
        key = _TARGET_PARAM.get(exchange.method)
        if key is not None and exchange.target is not None and params.get(key) != exchange.target:
            params = {**params, key: exchange.target}
        if self._bridged(exchange, upstream):
            if self._bridge.owns(params):
                response = await self._bridge.resume(exchange)
            else:
                response = await self._bridge.call(exchange, lambda ex: upstream.request(ex, ex.method, params))
        else:
            response = await upstream.request(exchange, exchange.method, params)
        if exchange.era is Era.LEGACY:
            response = await self._fulfil_input_requests(exchange, upstream, params, response)
        error = response.get("error")
        if error is not None:
            if not isinstance(error, dict):
                error = {"code": -32603, "message": "Upstream error"}
            return Reply(
                error=RpcError(int(error.get("code", -32603)), str(error.get("message", "")), error.get("data")),
                outcome=Outcome.ERROR,
            )
        result = response.get("result")
        result = result if isinstance(result, dict) else {}
        if exchange.era is Era.MODERN:
            result = _modern_result(exchange, result)
        return Reply.ok(result)

    @staticmethod
    def _bridged(exchange: Exchange, upstream: Upstream) -> bool:
        """A modern client's call to an upstream that only speaks the handshake era needs MRTR translation."""
        return (
            exchange.era is Era.MODERN
            and exchange.method in INPUT_REQUIRED_METHODS
            and upstream.info is not None
            and Era.MODERN not in upstream.info.eras
        )

    async def _fulfil_input_requests(
        self, exchange: Exchange, upstream: Upstream, params: JSON, response: JSON
    ) -> JSON:
        """Era translation, modern upstream → legacy client: ask the client each `inputRequests` entry as a
        server-to-client request on its stream, then retry upstream with the answers (bounded rounds)."""
        for _ in range(MAX_INPUT_ROUNDS):
            if not _input_required(response):
                return response
            result = response["result"]
            requests = result.get("inputRequests") or {}
            if not isinstance(requests, dict):
                raise UpstreamError(f"Upstream server {upstream.id!r} sent malformed inputRequests")
            answers: JSON = {}
            for key, request in requests.items():
                if not isinstance(request, dict) or not isinstance(request.get("method"), str):
                    raise UpstreamError(f"Upstream server {upstream.id!r} sent malformed inputRequests")
                answer = await exchange.sink.request(request["method"], request.get("params"))
                if "result" not in answer:
                    return {"error": answer.get("error") or {"code": -32603, "message": "The client refused"}}
                answers[key] = answer["result"]
            params = {**params, "inputResponses": answers}
            if isinstance(result.get("requestState"), str):
                params["requestState"] = result["requestState"]
            else:
                params.pop("requestState", None)
            response = await upstream.request(exchange, exchange.method, params)
        raise UpstreamError(f"Upstream server {upstream.id!r} asked for input more than {MAX_INPUT_ROUNDS} times")
