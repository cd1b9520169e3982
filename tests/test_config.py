"""The config loader: validation errors name the key and the line; env overrides; secrets only by reference."""

from __future__ import annotations

from pathlib import Path

import pytest

from portico.config import check_bind, load, resolve_secret
from portico.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "portico.yaml"
    path.write_text(text)
    return path


def test_a_valid_file_loads_with_defaults_filled_in(tmp_path: Path) -> None:
    settings = load(write(tmp_path, "servers:\n  - id: a\n    url: http://127.0.0.1:9/mcp\n"))
    assert settings.servers[0].kind == "streamable_http"
    assert settings.servers[0].timeout_s == 30.0
    assert settings.listen.host == "127.0.0.1"


@pytest.mark.parametrize(
    ("text", "key", "line"),
    [
        ("listen:\n  port: 99999\n", "listen.port", 2),
        ("servers:\n  - id: ok\n    url: http://x/mcp\n  - id: Bad_Id\n    url: http://x/mcp\n", "servers[1].id", 4),
        ("servers:\n  - id: a\n    url: http://x/mcp\n    timeout_s: -1\n", "servers[0].timeout_s", 4),
        ("servers:\n  - id: a\n", "servers[0]", 2),
        ("catalog:\n  separator: '/'\n", "catalog.separator", 2),
        ("listen:\n  hots: 1.2.3.4\n", "listen.hots", 2),
        ("servers:\n  - id: a\n    url: http://x\n    headers:\n      Authorization: Bearer abc\n", "servers[0]", 2),
    ],
)
def test_an_invalid_file_names_the_key_and_the_line(tmp_path: Path, text: str, key: str, line: int) -> None:
    with pytest.raises(ConfigError) as caught:
        load(write(tmp_path, text))
    assert f"{key} (line {line})" in caught.value.public


def test_a_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(write(tmp_path, "servers:\n  - id: a\n    url: [unclosed\n"))
    assert "line" in caught.value.public


def test_duplicate_server_ids_are_refused(tmp_path: Path) -> None:
    text = "servers:\n  - id: a\n    url: http://x/mcp\n  - id: a\n    command: [echo]\n"
    with pytest.raises(ConfigError, match="duplicate server id"):
        load(write(tmp_path, text))


def test_environment_overrides_nested_keys_and_servers_by_id(tmp_path: Path) -> None:
    path = write(tmp_path, "servers:\n  - id: git-hub\n    url: http://x/mcp\n")
    env = {"PORTICO_LISTEN__PORT": "9100", "PORTICO_SERVERS__GIT_HUB__TIMEOUT_S": "5", "PORTICO_AUDIT_KEY": "k"}
    settings = load(path, env)
    assert settings.listen.port == 9100
    assert settings.servers[0].timeout_s == 5


def test_a_secret_reference_resolves_from_the_environment_or_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("from-file\n")
    assert resolve_secret("${env:TOKEN}", {"TOKEN": "from-env"}) == "from-env"
    assert resolve_secret(f"${{file:{secret}}}") == "from-file"
    with pytest.raises(ConfigError, match="MISSING is not set"):
        resolve_secret("${env:MISSING}", {})


def test_auth_none_is_refused_on_a_non_loopback_address(tmp_path: Path) -> None:
    settings = load(write(tmp_path, "auth: none\n"))
    check_bind(settings, "127.0.0.1")
    check_bind(settings, "::1")
    with pytest.raises(ConfigError, match="only allowed while bound to loopback"):
        check_bind(settings, "0.0.0.0")
