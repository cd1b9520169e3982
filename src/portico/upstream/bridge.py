"""Era translation, legacy upstream → modern client: server requests become `InputRequiredResult`s (MRTR).

A handshake-era upstream asks for sampling, elicitation or roots *during* a call, on the call's stream. A
2026-07-28 client cannot take server requests; it expects the call to end with `resultType: input_required`
and to retry with `inputResponses`. So the upstream call is suspended: it keeps running in the background,
waiting for answers, while the client gets an `InputRequiredResult` whose `requestState` names the suspension
(HMAC-signed and bound to the caller, since the spec treats `requestState` as attacker-controlled). The retry
delivers the answers and waits for the next round or the final result.

Suspensions are per process (bounded in number and in time); a deployment with several replicas needs sticky
routing for these retries — the one piece of call state that cannot live in a shared store.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import Any

import anyio
import anyio.abc

from portico.errors import SERVER_REQUEST_CAPABILITY, InvalidParamsError, NoBackChannelError, PorticoError
from portico.types import JSON, Exchange

log = logging.getLogger("portico.upstream.bridge")

STATE_PREFIX = "portico1."
SUSPEND_TTL_S = 300.0
MAX_SUSPENDED = 1000
_ids = itertools.count(1)


class MissingCapabilityError(NoBackChannelError):
    """The client did not declare the capability the upstream's request needs (the upstream is told too)."""


@dataclass(eq=False)
class _Suspension:
    id: str
    subject: str
    deadline: float
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    asked: dict[str, tuple[JSON, anyio.Event, list[JSON]]] = field(default_factory=dict)
    changed: anyio.Event = field(default_factory=anyio.Event)
    final: JSON | None = None
    failure: PorticoError | None = None
    sink: _SuspendingSink | None = None
    round: int = 0  # bumped every time the client is asked: a state from an earlier round is refused

    def wake(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()


class _SuspendingSink:
    """The upstream call's sink: notifications go to the current client request, requests suspend the call."""

    def __init__(self, suspension: _Suspension, exchange: Exchange) -> None:
        self._suspension = suspension
        self.client = exchange  # the client request currently waiting (changes on every retry)

    async def notify(self, message: JSON) -> None:
        await self.client.sink.notify(message)

    async def request(self, method: str, params: JSON | None) -> JSON:
        capability = SERVER_REQUEST_CAPABILITY.get(method)
        if capability is None or capability not in self.client.client_capabilities:
            failure = MissingCapabilityError(method, f"The client must declare the {capability or method} capability")
            self._suspension.failure = failure
            self._suspension.wake()
            raise failure
        key = f"r{next(_ids)}"
        answered = anyio.Event()
        answer: list[JSON] = []
        request: JSON = {"method": method}
        if params is not None:
            request["params"] = params
        self._suspension.asked[key] = (request, answered, answer)
        self._suspension.wake()
        await answered.wait()
        return answer[0]

    async def poll(self, retry_ms: int) -> None:
        return None


class Bridge:
    """The suspended calls of this process."""

    def __init__(self, spawn: Callable[[Callable[[], Coroutine[Any, Any, None]]], None]) -> None:
        self._spawn = spawn
        self._key = secrets.token_bytes(32)
        self._suspended: dict[str, _Suspension] = {}

    def owns(self, params: JSON) -> bool:
        state = params.get("requestState")
        return isinstance(state, str) and state.startswith(STATE_PREFIX)

    async def call(self, exchange: Exchange, send: Callable[[Exchange], Awaitable[JSON]]) -> JSON:
        """Start the upstream call `send(exchange)`; return its response or the first `InputRequiredResult`."""
        self._expire()
        if len(self._suspended) >= MAX_SUSPENDED:
            raise PorticoError("Too many calls are waiting for client input; try again later")
        suspension = _Suspension(
            f"{next(_ids):x}{secrets.token_hex(4)}", exchange.principal.subject, time.monotonic() + SUSPEND_TTL_S
        )
        sink = suspension.sink = _SuspendingSink(suspension, exchange)
        upstream_exchange = replace(exchange, sink=sink)

        async def run() -> None:
            with suspension.scope:
                try:
                    suspension.final = await send(upstream_exchange)
                except PorticoError as exc:
                    suspension.failure = suspension.failure or exc
            suspension.wake()

        self._suspended[suspension.id] = suspension
        self._spawn(run)
        return await self._next(suspension)

    async def resume(self, exchange: Exchange) -> JSON:
        """A retry carrying our `requestState`: deliver `inputResponses`, then wait for the next step.

        Raises:
            InvalidParamsError: the state is forged, expired, or another principal's.
        """
        state = str(exchange.params.get("requestState"))
        suspension_id, round_ = self._verify(state, exchange.principal.subject)
        suspension = self._suspended.get(suspension_id)
        if suspension is None or suspension.subject != exchange.principal.subject or suspension.round != round_:
            raise InvalidParamsError("Invalid params: requestState is unknown or expired")
        responses = exchange.params.get("inputResponses")
        responses = responses if isinstance(responses, dict) else {}
        for key, (_, answered, answer) in list(suspension.asked.items()):
            if key in responses and not answered.is_set():
                answer.append({"result": responses[key]})
                answered.set()
                del suspension.asked[key]
        if suspension.sink is not None:
            suspension.sink.client = exchange  # progress and logs now belong to this request
        return await self._next(suspension)

    async def _next(self, suspension: _Suspension) -> JSON:
        while True:
            if suspension.failure is not None:
                self._end(suspension)
                raise suspension.failure
            if suspension.final is not None:
                self._end(suspension)
                return suspension.final
            if suspension.asked:
                suspension.round += 1
                requests = {key: request for key, (request, _, _) in suspension.asked.items()}
                result: JSON = {
                    "resultType": "input_required",
                    "inputRequests": requests,
                    "requestState": self._sign(suspension),
                }
                return {"result": result}
            try:
                with anyio.fail_after(max(0.0, suspension.deadline - time.monotonic())):
                    await suspension.changed.wait()
            except (anyio.get_cancelled_exc_class(), TimeoutError):
                # The client went away (or we timed out) while the call ran: on the modern wire that cancels it.
                self._end(suspension)
                raise

    def _end(self, suspension: _Suspension) -> None:
        self._suspended.pop(suspension.id, None)
        suspension.scope.cancel()

    def _mac(self, suspension_id: str, round_: int, subject: str) -> str:
        message = f"{suspension_id}:{round_}:{subject}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]

    def _sign(self, suspension: _Suspension) -> str:
        mac = self._mac(suspension.id, suspension.round, suspension.subject)
        return f"{STATE_PREFIX}{suspension.id}.{suspension.round}.{mac}"

    def _verify(self, state: str, subject: str) -> tuple[str, int]:
        parts = state.removeprefix(STATE_PREFIX).split(".")
        if len(parts) != 3 or not parts[1].isdigit():
            raise InvalidParamsError("Invalid params: requestState failed verification")
        suspension_id, round_, mac = parts[0], int(parts[1]), parts[2]
        if not hmac.compare_digest(mac, self._mac(suspension_id, round_, subject)):
            raise InvalidParamsError("Invalid params: requestState failed verification")
        return suspension_id, round_

    def _expire(self) -> None:
        now = time.monotonic()
        for suspension in [s for s in self._suspended.values() if s.deadline < now]:
            log.info("suspended call %s expired waiting for client input", suspension.id)
            self._end(suspension)
