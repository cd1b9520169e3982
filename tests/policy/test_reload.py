"""Policy edited at run time: `portico serve` re-reads the policy section on SIGHUP; a broken file changes
nothing. A real `portico serve` process, its config edited on disk."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.support.portico import free_port
from tests.support.wire import modern_call, rpc_answer
from tests.upstreams.launch import stdio_argv

PORTICO = Path(sys.executable).parent / "portico"
PERMIT_ALL = "  rules: [{id: open, effect: permit}]\n"
NO_ADD = "  rules: [{id: open, effect: permit}, {id: no-add, effect: forbid, tools: [add]}]\n"


def write_config(path: Path, port: int, policy: str) -> None:
    path.write_text(
        f"listen: {{port: {port}}}\n"
        f'store: {{url: "sqlite:///{path.parent / "portico.db"}"}}\n'
        f'audit: {{spool_dir: "{path.parent / "spool"}"}}\n'
        f"servers:\n  - {{id: echo, command: {json.dumps(stdio_argv('echo'))}}}\n"
        f"policy:\n{policy}"
    )


def tool_names(base: str) -> set[str]:
    body, headers = modern_call("tools/list", {})
    with httpx2.Client() as http:
        reply = http.post(f"{base}/mcp", content=body, headers=headers)
    return {tool["name"] for tool in rpc_answer(reply)["result"]["tools"]}


def wait_for(check: object, what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except (httpx2.HTTPError, KeyError, ValueError):
            pass
        time.sleep(0.1)  # polling another process over HTTP: nothing to wait on but the clock
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str, subprocess.Popen[bytes]]]:
    port = free_port()
    config = tmp_path / "portico.yaml"
    write_config(config, port, PERMIT_ALL)
    process = subprocess.Popen(
        [str(PORTICO), "serve", "--config", str(config), "--log-level", "info"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: "echo__add" in tool_names(base), "Portico to list echo's tools", 60)
        yield config, base, process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(30)


def test_sighup_applies_an_edited_policy_and_a_broken_one_changes_nothing(
    served: tuple[Path, str, subprocess.Popen[bytes]],
) -> None:
    config, base, process = served
    port = int(base.rsplit(":", 1)[1])
    write_config(config, port, NO_ADD)
    process.send_signal(signal.SIGHUP)
    wait_for(lambda: "echo__add" not in tool_names(base), "the forbid rule to hide echo__add")
    assert "echo__echo" in tool_names(base)

    config.write_text(config.read_text().replace("effect: forbid", "effect: sometimes"))
    process.send_signal(signal.SIGHUP)
    time.sleep(1.0)  # the bad reload must have been attempted; it leaves nothing observable but a log line
    assert "echo__add" not in tool_names(base)
    os.killpg(process.pid, signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert b"policy not reloaded, the previous policy stays in force" in stderr
    assert b"effect" in stderr


CARD = "4111 1111 1111 1111"
NO_CARDS = "dlp:\n  rules: [{id: no-cards, action: block, direction: request, detectors: [card]}]\n"


def echo_card(base: str) -> dict[str, object]:
    body, headers = modern_call("tools/call", {"name": "echo__echo", "arguments": {"text": f"card {CARD}"}})
    with httpx2.Client() as http:
        return rpc_answer(http.post(f"{base}/mcp", content=body, headers=headers))


def test_sighup_applies_edited_dlp_rules_too_and_a_broken_rule_changes_nothing(
    served: tuple[Path, str, subprocess.Popen[bytes]],
) -> None:
    config, base, process = served
    port = int(base.rsplit(":", 1)[1])
    assert "result" in echo_card(base)
    write_config(config, port, PERMIT_ALL)
    config.write_text(config.read_text() + NO_CARDS)
    process.send_signal(signal.SIGHUP)
    wait_for(lambda: "no-cards" in json.dumps(echo_card(base).get("error")), "the DLP rule to block the card")

    config.write_text(config.read_text().replace("detectors: [card]", "detectors: [ccard]"))
    process.send_signal(signal.SIGHUP)
    time.sleep(1.0)  # the bad reload must have been attempted; it leaves nothing observable but a log line
    assert "no-cards" in json.dumps(echo_card(base).get("error"))
    os.killpg(process.pid, signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert b"policy not reloaded, the previous policy stays in force" in stderr
    assert b"ccard" in stderr
