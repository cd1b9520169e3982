"""`portico audit verify|tail|export` through Typer's runner, against both backends."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest
from typer.testing import CliRunner, Result

from portico.audit import AuditLog
from portico.cli.audit import app
from portico.store import Store
from tests.audit.support import append_many, flushed, sql

pytestmark = pytest.mark.anyio


async def invoke(*args: str) -> Result:
    """Run the CLI in a worker thread: each command runs its own event loop, as it does from a shell."""
    return await anyio.to_thread.run_sync(lambda: CliRunner().invoke(app, list(args)))


async def _filled(log: AuditLog, count: int = 4) -> None:
    append_many(log, count, subject="[bold red]carol\x1b[2J")
    await flushed(log)


async def test_verify_exits_0_when_the_log_is_intact(audit_log: AuditLog, store: Store) -> None:
    await _filled(audit_log)
    result = await invoke("verify", "--db", store.settings.url)
    assert result.exit_code == 0, result.output
    assert "intact: 4 records in 1 chain" in result.output


async def test_verify_exits_1_naming_the_first_bad_record(audit_log: AuditLog, store: Store) -> None:
    await _filled(audit_log)
    await sql(store, "DELETE FROM audit_records WHERE seq = 2")
    result = await invoke("verify", "--db", store.settings.url)
    assert result.exit_code == 1
    assert f"chain {audit_log.node}: missing: seq 2 missing before seq 3" in result.output


async def test_verify_reads_the_store_from_a_config_file(audit_log: AuditLog, store: Store, tmp_path: Path) -> None:
    await _filled(audit_log)
    config = tmp_path / "portico.yaml"
    config.write_text(f"store:\n  url: {store.settings.url}\naudit:\n  flush_interval_ms: 5\nservers: []\n")
    result = await invoke("verify", "--config", str(config))
    assert result.exit_code == 0, result.output


async def test_tail_prints_the_newest_records_without_obeying_their_markup(audit_log: AuditLog, store: Store) -> None:
    await _filled(audit_log, 5)
    result = await invoke("tail", "--db", store.settings.url, "-n", "2")
    assert result.exit_code == 0, result.output
    assert f"{audit_log.node[:8]}:4" in result.output
    assert f"{audit_log.node[:8]}:5" in result.output
    assert f"{audit_log.node[:8]}:3" not in result.output
    assert "[bold red]carol" in result.output  # shown literally, not rendered
    assert "\x1b[2J" not in result.output  # a subject cannot clear the auditor's screen


async def test_export_writes_json_lines_to_a_file(audit_log: AuditLog, store: Store, tmp_path: Path) -> None:
    await _filled(audit_log, 3)
    out = tmp_path / "audit.jsonl"
    result = await invoke("export", "--db", store.settings.url, "--out", str(out))
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["seq"] for line in lines] == [1, 2, 3]
    assert all(len(line["hash"]) == 64 for line in lines)


async def test_export_to_stdout_honours_since(audit_log: AuditLog, store: Store) -> None:
    await _filled(audit_log, 2)
    result = await invoke("export", "--db", store.settings.url, "--since", "2999-01-01T00:00:00Z")
    assert result.exit_code == 0, result.output
    assert "exported 0 records" in result.output
    result = await invoke("export", "--db", store.settings.url, "--since", "2000-01-01")
    assert result.stdout.count('"hash"') == 2


async def test_a_bad_since_is_a_usage_error(store: Store) -> None:
    result = await invoke("export", "--db", store.settings.url, "--since", "yesterday")
    assert result.exit_code == 2
    assert "ISO 8601" in result.output


async def test_a_missing_database_is_reported_and_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    result = await invoke("verify", "--db", f"sqlite:///{missing}")
    assert result.exit_code == 2
    assert "No database" in result.output
    assert not missing.exists()


async def test_an_invalid_config_section_names_the_key(tmp_path: Path) -> None:
    config = tmp_path / "portico.yaml"
    config.write_text("store:\n  url: mysql://x/y\n")
    result = await invoke("verify", "--config", str(config))
    assert result.exit_code == 2
    assert "url" in result.output
