"""Compose stages into one callable, assembled in exactly one place (`portico.app.build_pipeline`)."""

from __future__ import annotations

from collections.abc import Sequence

from portico.types import CallNext, Exchange, Reply, Stage


def compose(stages: Sequence[Stage], terminal: CallNext) -> CallNext:
    """Return `call(exchange)` running `stages` in order, ending at `terminal`.

    Each stage receives the rest of the chain as `call_next`; the closures are built once, not per call.
    """
    call: CallNext = terminal
    for stage in reversed(stages):
        call = _link(stage, call)
    return call


def _link(stage: Stage, call_next: CallNext) -> CallNext:
    async def call(exchange: Exchange) -> Reply:
        return await stage(exchange, call_next)

    call.__qualname__ = f"{type(stage).__name__}.__call__"
    return call


class Pipeline:
    """The assembled chain plus the names of its stages (shown by `/readyz` and the docs test)."""

    def __init__(self, stages: Sequence[Stage], terminal: CallNext) -> None:
        self.stage_names = [type(s).__name__ for s in stages]
        self._call = compose(stages, terminal)

    async def __call__(self, exchange: Exchange) -> Reply:
        return await self._call(exchange)
