"""Generic stages that belong to no single component."""

from __future__ import annotations

import logging

import anyio

from portico.errors import INTERNAL_ERROR, PorticoError
from portico.types import CallNext, Exchange, Outcome, Reply, RpcError

log = logging.getLogger("portico.pipeline")


class ErrorStage:
    """Map every exception below it to a JSON-RPC error reply. The one place `except Exception` is allowed.

    A `PorticoError` becomes its own code and public message; anything else becomes -32603 with a generic
    message, and the traceback goes to the process log under the exchange id, never to the client.
    Cancellation is not an error: it propagates.
    """

    async def __call__(self, exchange: Exchange, call_next: CallNext) -> Reply:
        try:
            return await call_next(exchange)
        except PorticoError as exc:
            if exc.detail:
                log.info("exchange %s %s failed: %s", exchange.id, exchange.method, exc.detail)
            outcome = Outcome.DENIED if exc.code == -32001 else Outcome.ERROR
            exchange.notes.setdefault("error_class", type(exc).__name__)
            return Reply.fail(exc.to_rpc(), outcome)
        except anyio.get_cancelled_exc_class():
            raise
        except Exception:
            log.exception("exchange %s %s failed unexpectedly", exchange.id, exchange.method)
            exchange.notes.setdefault("error_class", "internal")
            return Reply.fail(RpcError(INTERNAL_ERROR, f"Internal error (exchange {exchange.id})"))
