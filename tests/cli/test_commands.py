"""The command line: clear one-line errors for bad configs and unsafe binds; exit codes a script can test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PORTICO = Path(sys.executable).parent / "portico"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(PORTICO), *args], capture_output=True, text=True, timeout=60)


def test_check_names_the_key_and_line_of_an_invalid_config_and_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "portico.yaml"
    config.write_text("servers:\n  - id: fine\n    url: http://127.0.0.1:9/mcp\n    timeout_s: soon\n")
    result = run("check", "--config", str(config))
    assert result.returncode == 2
    assert "servers[0].timeout_s (line 4)" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_accepts_a_valid_config(tmp_path: Path) -> None:
    config = tmp_path / "portico.yaml"
    config.write_text("servers:\n  - id: fine\n    command: [echo]\n")
    result = run("check", "--config", str(config))
    assert result.returncode == 0
    assert "1 servers" in result.stderr


def test_serve_refuses_auth_none_on_a_public_address(tmp_path: Path) -> None:
    config = tmp_path / "portico.yaml"
    config.write_text("auth: none\n")
    result = run("serve", "--config", str(config), "--host", "0.0.0.0", "--port", "0")
    assert result.returncode == 2
    assert "only allowed while bound to loopback" in result.stderr


def test_a_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    result = run("serve", "--config", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert "cannot read config file" in result.stderr
