"""Run a real Portico (uvicorn, loopback, ephemeral port) inside the test's event loop."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import uvicorn

from portico.app import Portico
from portico.config import Settings
from portico.identity.tls import uvicorn_tls_options
from tests.support.waits import eventually


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_settings(tmp: Path, servers: list[dict[str, Any]], **sections: Any) -> Settings:
    """Settings for a test: its own SQLite file and audit spool under `tmp`."""
    data: dict[str, Any] = {
        "store": {"url": f"sqlite:///{tmp / 'portico.db'}"},
        "audit": {"spool_dir": str(tmp / "spool")},
        "servers": servers,
        # Tests about transport and upstreams run under an open policy; policy tests set their own rules.
        "policy": {"rules": [{"id": "tests-open", "effect": "permit"}]},
    }
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return Settings.model_validate(data)


@dataclass
class Running:
    portico: Portico
    base: str

    @property
    def url(self) -> str:
        return f"{self.base}/mcp"

    def server_url(self, server_id: str) -> str:
        return f"{self.base}/servers/{server_id}/mcp"


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[Running]:
    """Serve on a free port, or on the config's `listen.port` when it names one (tokens are bound to the URL)."""
    port = settings.listen.port if "port" in settings.listen.model_fields_set and settings.listen.port else free_port()
    settings = settings.model_copy(update={"listen": settings.listen.model_copy(update={"port": port})})
    portico = Portico(settings)
    server = uvicorn.Server(
        uvicorn.Config(
            portico,
            host="127.0.0.1",
            port=port,
            lifespan="on",
            log_level="warning",
            access_log=False,
            **uvicorn_tls_options(settings.listen.tls),
        )
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        await eventually(lambda: server.started, 60, 0.02)
        try:
            yield Running(portico, settings.public_url)
        finally:
            server.should_exit = True


@contextmanager
def serve_in_thread(settings: Settings) -> Iterator[Running]:
    """A real Portico on its own event loop in a thread: for module-scoped fixtures shared by many tests."""
    port = free_port()
    settings = settings.model_copy(update={"listen": settings.listen.model_copy(update={"port": port})})
    portico = Portico(settings)
    server = uvicorn.Server(
        uvicorn.Config(
            portico,
            host="127.0.0.1",
            port=port,
            lifespan="on",
            log_level="warning",
            access_log=False,
            **uvicorn_tls_options(settings.listen.tls),
        )
    )
    thread = threading.Thread(target=server.run, name="portico", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("Portico did not start")
        time.sleep(0.02)
    try:
        yield Running(portico, settings.public_url)
    finally:
        server.should_exit = True
        thread.join(30)
