"""Documentation cannot drift: every setting and every CLI command is documented."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from portico.cli.main import app
from portico.config import load
from portico.reference import render

ROOT = Path(__file__).resolve().parent.parent


def test_the_configuration_reference_matches_the_settings_models() -> None:
    committed = (ROOT / "docs" / "configuration.md").read_text()
    assert committed == render(), "docs/configuration.md is stale: regenerate it with `portico reference`"


def test_every_cli_command_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    group = typer.main.get_group(app)
    missing = []
    for name, command in group.commands.items():
        subcommands = getattr(command, "commands", None)
        names = [f"portico {name} {sub}" for sub in subcommands] if subcommands else [f"portico {name}"]
        missing += [n for n in names if n not in readme]
    assert not missing, f"undocumented commands: {missing}"


def test_every_yaml_example_in_the_readme_is_a_valid_config(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", readme, flags=re.DOTALL)
    assert blocks
    for index, block in enumerate(blocks):
        path = tmp_path / f"example-{index}.yaml"
        path.write_text(block)
        load(path, env={})  # raises ConfigError naming the key and line
