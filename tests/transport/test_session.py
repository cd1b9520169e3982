"""Legacy-era sessions: CSPRNG ids, idle expiry on an injected clock, a bounded count, per-process runtime."""

from __future__ import annotations

import re

import anyio
import anyio.lowlevel
import pytest

from portico.transport.session import MemorySessionStore, SessionRecord, SessionRuntime, new_session_id


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(session_id: str) -> SessionRecord:
    return SessionRecord(session_id, "alice", None, "2025-11-25", {}, None, 0.0)


def test_session_ids_are_128_bit_visible_ascii_and_unique() -> None:
    ids = {new_session_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


@pytest.mark.anyio
async def test_a_session_idle_past_its_timeout_is_gone_and_alive_does_not_refresh_it() -> None:
    clock = Clock()
    store = MemorySessionStore(idle_timeout_s=60, max_sessions=10, clock=clock)
    assert await store.create(record("a"))
    clock.now += 59
    assert await store.alive("a")
    clock.now += 2  # alive() did not refresh the idle timer
    assert not await store.alive("a")
    assert await store.get("a") is None


@pytest.mark.anyio
async def test_using_a_session_keeps_it_alive() -> None:
    clock = Clock()
    store = MemorySessionStore(idle_timeout_s=60, max_sessions=10, clock=clock)
    await store.create(record("a"))
    for _ in range(5):
        clock.now += 50
        assert await store.get("a") is not None


@pytest.mark.anyio
async def test_the_store_refuses_sessions_past_its_limit_until_old_ones_expire() -> None:
    clock = Clock()
    store = MemorySessionStore(idle_timeout_s=60, max_sessions=2, clock=clock)
    assert await store.create(record("a"))
    assert await store.create(record("b"))
    assert not await store.create(record("c"))
    clock.now += 61
    assert await store.create(record("c"))


@pytest.mark.anyio
async def test_ending_a_session_cancels_its_calls_and_closes_its_stream() -> None:
    runtime = SessionRuntime()
    stream = runtime.open_stream("s")
    assert stream is not None
    assert runtime.open_stream("s") is None  # one standing stream per session
    with anyio.CancelScope() as scope:
        runtime.track("s", 1, scope)
        runtime.end("s")
        await anyio.lowlevel.checkpoint()
    assert scope.cancelled_caught
    with pytest.raises(anyio.EndOfStream):
        stream.receive_nowait()
    assert runtime.session_ids() == []
