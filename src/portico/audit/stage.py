"""`AuditStage`: the first stage of the pipeline, so every exchange is recorded, whoever answers it.

Sits outermost (Audit → Errors → Identity → …): it sees the final `Reply` of every exchange, including denials
and errors turned into replies by the errors stage behind it. Recording happens after `call_next` returns and
before the reply goes back to the transport; that is what makes "acknowledged" imply "spooled".
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import orjson

from portico.audit.log import AuditLog
from portico.types import CallNext, Decision, Exchange, Outcome, Reply

# Methods whose `params.arguments` are caller-supplied values: digested, never stored.
_ARGUMENT_METHODS = frozenset({"tools/call", "prompts/get"})


class AuditStage:
    """Record each exchange in the audit log once it has a reply.

    Other stages contribute through `exchange.notes`: `"decision"` (a `portico.types.Decision`) fills
    decision/rule/reason, and `"audit_extra"` (a small dict of JSON values, no client input) is stored as `extra`.
    """

    def __init__(self, log: AuditLog) -> None:
        self.log = log

    async def __call__(self, exchange: Exchange, call_next: CallNext) -> Reply:
        """Run the rest of the chain, then record the exchange.

        Raises:
            AuditError: the record could not be spooled; the call must not be acknowledged.
            BaseException: whatever `call_next` raised (after recording the exchange as an error).
        """
        try:
            reply = await call_next(exchange)
        except BaseException as exc:  # cancellation included: the exchange happened and must be on record
            self._record(exchange, None, {"exception": type(exc).__name__})
            raise
        self._record(exchange, reply, None)
        return reply

    def _record(self, exchange: Exchange, reply: Reply | None, failure: dict[str, Any] | None) -> None:
        latency_us = (time.perf_counter_ns() - exchange.started_ns) // 1000
        decision = exchange.notes.get("decision")
        if not isinstance(decision, Decision):
            decision = None
        arguments = exchange.params.get("arguments") if exchange.method in _ARGUMENT_METHODS else None
        noted = exchange.notes.get("audit_extra")
        extra = dict(noted) if isinstance(noted, dict) else {}
        if failure:
            extra.update(failure)
        outcome, error_code, response_bytes = Outcome.ERROR, None, 0
        if reply is not None:
            outcome = reply.outcome
            if reply.error is not None:
                error_code = reply.error.code
            if reply.encoded is None and reply.result is not None:
                # Unencodable: the transport fails to send it too, and reports that; the size stays 0 here.
                with contextlib.suppress(TypeError):
                    reply.encoded = orjson.dumps(reply.result)
            response_bytes = len(reply.encoded) if reply.encoded is not None else 0
        principal = exchange.principal
        self.log.append(
            id=exchange.id,
            parent_id=exchange.parent_id,
            subject=principal.subject,
            client_id=principal.client_id,
            authenticated_by=principal.authenticated_by,
            ip=principal.ip,
            session_id=exchange.session_id,
            scope=exchange.scope,
            method=exchange.method,
            server_id=exchange.server_id,
            target=exchange.target,
            decision=None if decision is None else ("allow" if decision.allowed else "deny"),
            rule=None if decision is None else decision.rule,
            reason=None if decision is None else decision.reason,
            outcome=outcome.value,
            error_code=error_code,
            latency_us=latency_us,
            request_bytes=exchange.request_bytes,
            response_bytes=response_bytes,
            args_digest=self.log.digest_args(arguments) if isinstance(arguments, dict) else None,
            arg_keys=sorted(arguments) if isinstance(arguments, dict) else (),
            protocol_version=exchange.protocol_version,
            era=exchange.era.value,
            extra=extra or None,
        )
