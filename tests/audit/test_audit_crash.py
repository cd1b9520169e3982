"""Kill -9 a real process mid-stream: every record whose `append` returned is in the database after restart."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream
from sqlalchemy import func, select

from portico.audit import AuditLog, AuditSettings
from portico.audit.verify import verify
from portico.store import Store
from portico.store.tables import audit_records
from tests.audit.crash_writer import COMMITTED_FIRST
from tests.audit.support import records

pytestmark = pytest.mark.anyio
WRITER = Path(__file__).with_name("crash_writer.py")
KILL_AFTER_ACKS = 300


async def _count(store: Store) -> int:
    async with store.engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(audit_records)) or 0)


@pytest.mark.requirement("audit:acked-survives-kill-9")
async def test_every_acknowledged_record_survives_a_sigkill(store: Store, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    acked: list[str] = []
    node = ""
    command = [sys.executable, str(WRITER), store.settings.url, str(spool), "100000"]
    with anyio.fail_after(60):
        async with await anyio.open_process(command, stdout=subprocess.PIPE) as proc:
            assert proc.stdout is not None
            lines = BufferedByteReceiveStream(proc.stdout)
            flushed = False
            while True:
                try:
                    line = (await lines.receive_until(b"\n", 1024)).decode()
                except (anyio.EndOfStream, anyio.IncompleteRead):
                    break  # the process is gone and its output drained: acks printed before the kill count too
                if line.startswith("node "):
                    node = line.split()[1]
                elif line == "flushed":
                    flushed = True
                elif line.startswith("acked "):
                    acked.append(line.split()[1])
                if flushed and len(acked) == KILL_AFTER_ACKS and proc.returncode is None:
                    proc.send_signal(signal.SIGKILL)
            assert await proc.wait() == -signal.SIGKILL
    assert len(acked) >= KILL_AFTER_ACKS
    # Only the purposely flushed records reached the database before the kill; the rest were only spooled.
    assert await _count(store) == COMMITTED_FIRST

    settings = AuditSettings(spool_dir=spool, flush_interval_ms=10)
    async with AuditLog(store, settings, env={}) as log:
        assert log.node == node  # same spool, same chain
        stored = {r.id for r in await records(store)}
        missing = [i for i in acked if i not in stored]
        assert missing == []
        log.append(id="after-restart", subject="s", method="ping", outcome="ok")
    report = await verify(store)
    assert report.ok, report.summary()
    chain = await records(store)
    assert [r.seq for r in chain] == list(range(1, len(chain) + 1))
    assert chain[-1].id == "after-restart"
