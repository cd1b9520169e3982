"""The terminal stage: forward an exchange to its upstream server."""

from __future__ import annotations

from portico.errors import NotFoundError
from portico.types import Exchange, Outcome, Reply, RpcError
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


class UpstreamTerminal:
    def __init__(self, pool: UpstreamPool) -> None:
        self._pool = pool

    async def __call__(self, exchange: Exchange) -> Reply:
        if exchange.server_id is None:
            raise NotFoundError("Nothing to route this request to")
        upstream = self._pool.get(exchange.server_id)
        params = exchange.params
        key = _TARGET_PARAM.get(exchange.method)
        if key is not None and exchange.target is not None and params.get(key) != exchange.target:
            params = {**params, key: exchange.target}
        response = await upstream.request(exchange, exchange.method, params)
        error = response.get("error")
        if error is not None:
            if not isinstance(error, dict):
                error = {"code": -32603, "message": "Upstream error"}
            return Reply(
                error=RpcError(int(error.get("code", -32603)), str(error.get("message", "")), error.get("data")),
                outcome=Outcome.ERROR,
            )
        result = response.get("result")
        return Reply.ok(result if isinstance(result, dict) else {})
