"""`portico policy explain`: the decision, the deciding rule, the reason, every rule in a table; exit 0/1/2."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from portico.cli.policy import app

CONFIG = """\
servers: []
policy:
  networks:
    office: [10.20.0.0/16]
  rules:
    - id: eng-github
      effect: permit
      description: engineers use GitHub with MFA
      servers: [github]
      groups: [eng]
      mfa: true
    - id: ops-hours
      effect: permit
      servers: [ops]
      time: {days: [mon, tue, wed, thu, fri], start: "09:00", end: "17:00", tz: Europe/Berlin}
    - id: no-destructive
      effect: forbid
      annotations: {destructiveHint: true}
      unless: {networks: [office], device: enrolled}
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "portico.yaml"
    path.write_text(CONFIG)
    return path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["explain", *args])
    return result.exit_code, result.output


def test_a_permitted_call_exits_0_with_the_rule_reason_and_every_rule(config: Path) -> None:
    code, out = run("alice", "github", "search", "-c", str(config), "-g", "eng", "--mfa",
                    "--annotation", "readOnlyHint=true")  # fmt: skip
    assert code == 0
    assert out.startswith("PERMIT  alice → github/search (tools, ")
    assert "rule:   eng-github\n" in out
    assert "reason: permitted by rule eng-github (met: group eng, MFA)\n" in out
    assert "annotations: destructiveHint=false, idempotentHint=false, openWorldHint=true, readOnlyHint=true" in out
    table = out[out.index("rules") :]
    for rule in ("eng-github", "ops-hours", "no-destructive"):
        assert rule in table
    assert "decides" in table
    assert "✗ tool lacks destructiveHint=true" in table
    assert "✗ server is not ops" in table


def test_a_denied_call_exits_1_with_the_forbid_reason(config: Path) -> None:
    code, out = run("alice", "github", "delete_repo", "-c", str(config), "-g", "eng", "--mfa", "--ip", "10.20.1.1",
                    "--device", "revoked")  # fmt: skip
    assert code == 1
    assert out.startswith("DENY  alice → github/delete_repo")
    assert "rule:   no-destructive\n" in out
    assert "forbidden by rule no-destructive: tool github/delete_repo has destructiveHint=true" in out
    assert "not exempt: lacks an enrolled device" in out
    assert "applies" in out  # eng-github applies, but the forbid decides


@pytest.mark.parametrize(
    ("args", "code", "rule"),
    [
        pytest.param(["--device", "enrolled", "--ip", "10.20.0.9"], 0, "eng-github", id="enrolled_device_in_office"),
        pytest.param(["--device", "enrolled", "--ip", "8.8.8.8"], 1, "no-destructive", id="enrolled_device_off_site"),
        pytest.param(["--annotation", "destructiveHint=false"], 0, "eng-github", id="declared_not_destructive"),
    ],
)
def test_device_network_and_annotation_options_change_the_decision(
    config: Path, args: list[str], code: int, rule: str
) -> None:
    got, out = run("alice", "github", "delete_repo", "-c", str(config), "-g", "eng", "--mfa", *args)
    assert (got, f"rule:   {rule}\n" in out) == (code, True)


@pytest.mark.parametrize(
    ("at", "code"),
    [("2026-03-04T16:59+01:00", 0), ("2026-03-04T17:00+01:00", 1), ("2026-03-04T15:59", 0), ("2026-03-07T12:00", 1)],
)
def test_at_sets_the_moment_and_a_time_without_offset_is_utc(config: Path, at: str, code: int) -> None:
    got, _ = run("bob", "ops", "restart", "-c", str(config), "--annotation", "readOnlyHint=true", "--at", at)
    assert got == code


def test_kind_groups_and_implicit_deny_reason(config: Path) -> None:
    code, out = run("bob", "github", "summarize", "-c", str(config), "--kind", "prompts", "-g", "sales", "-g", "eng")
    assert code == 1
    assert "reason: no rule permits bob to get github/summarize (rule eng-github requires MFA)\n" in out


def test_a_config_without_a_policy_section_denies_with_no_rules(tmp_path: Path) -> None:
    path = tmp_path / "portico.yaml"
    path.write_text("servers: []\n")
    code, out = run("alice", "github", "search", "-c", str(path))
    assert code == 1
    assert "rule:   policy.default" in out
    assert "(no rules)" in out


def test_names_are_printed_literally_not_as_markup(config: Path) -> None:
    code, out = run("[bold]eve[/bold]", "github", "search", "-c", str(config))
    assert code == 1
    assert "DENY  [bold]eve[/bold] → github/search" in out


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        pytest.param(None, [], "cannot read config file", id="missing_file"),
        pytest.param("policy: [unclosed\n", [], "(line 2)", id="bad_yaml"),
        pytest.param("policy:\n  rules:\n    - id: x\n      effect: allow\n", [], "policy.rules[0].effect (line 4)",
                     id="invalid_policy_names_key_and_line"),
        pytest.param("policy:\n  rules:\n    - {id: x, effect: permit, networks: [lab]}\n", [], "policy (line 1)",
                     id="cross_reference_error"),
        pytest.param(CONFIG, ["--at", "yesterday"], "--at", id="bad_time"),
        pytest.param(CONFIG, ["--ip", "10.0.0.300"], "--ip", id="bad_ip"),
        pytest.param(CONFIG, ["--annotation", "destructiveHint"], "--annotation", id="bad_annotation"),
    ],
)  # fmt: skip
def test_config_and_option_errors_exit_2(tmp_path: Path, content: str | None, args: list[str], message: str) -> None:
    path = tmp_path / "portico.yaml"
    if content is not None:
        path.write_text(content)
    code, out = run("alice", "github", "search", "-c", str(path), *args)
    assert code == 2
    assert message in out


def test_an_unknown_device_state_is_a_usage_error(config: Path) -> None:
    code, _ = run("alice", "github", "search", "-c", str(config), "--device", "managed")
    assert code == 2
