"""Bounded waits for state that lives in another thread or process (no event can cross to us from there)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

T = TypeVar("T")


async def eventually(predicate: Callable[[], bool], limit_s: float = 30, every_s: float = 0.05) -> None:
    """Return once `predicate()` holds; fail (TimeoutError) after `limit_s`. Never a bare sleep."""
    with anyio.fail_after(limit_s):
        while not predicate():  # noqa: ASYNC110 (polls state owned by another thread or process)
            await anyio.sleep(every_s)


async def until(probe: Callable[[], Awaitable[T]], holds: Callable[[T], bool], limit_s: float = 20) -> T:
    """Call `probe()` (a request to another process) until `holds` its answer; return that answer."""
    with anyio.fail_after(limit_s):
        while not holds(answer := await probe()):  # noqa: ASYNC110 (the state is in another process)
            await anyio.sleep(0.05)
    return answer
