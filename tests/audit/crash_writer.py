"""A Portico-like process for test_audit_crash: appends records through a real AuditLog and says which
`append` calls have returned ("acked <id>"), until the test kills it with SIGKILL.

Usage: python crash_writer.py STORE_URL SPOOL_DIR COUNT
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import anyio.lowlevel

from portico.audit import AuditLog, AuditSettings
from portico.store import StoreSettings, open_store

COMMITTED_FIRST = 50  # flushed to the database on purpose; everything after lives only in the spool


async def main(url: str, spool_dir: str, count: int) -> None:
    store = await open_store(StoreSettings(url=url))
    # The flusher is (nearly) never due: records stay spooled unless flushed on purpose.
    settings = AuditSettings(spool_dir=Path(spool_dir), flush_interval_ms=60_000, batch_max=10_000)
    async with AuditLog(store, settings, env={}) as log:
        print(f"node {log.node}", flush=True)
        for i in range(count):
            log.append(id=f"c{i}", subject="crash-test", method="tools/call", outcome="ok", latency_us=i)
            print(f"acked c{i}", flush=True)
            if i + 1 == COMMITTED_FIRST:
                await log.flush()
                print("flushed", flush=True)
            await anyio.lowlevel.checkpoint()  # let the flusher run, as a server's loop would between requests
        print("done", flush=True)
        await anyio.sleep_forever()


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]))
